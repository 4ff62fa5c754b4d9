"""In-app notices: an in_app contact point's notification reaches the organisation members' open /ws/alerts/."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

from analytics_platform.asgi import application
from apps.alerts.alerting.services import contact_point_create, contact_point_test
from tests.factories import organization_get, user_create


def _cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}".encode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_in_app_notice_reaches_members_and_not_strangers():
    member = await database_sync_to_async(user_create)(username="carol", role="editor")
    stranger = await database_sync_to_async(user_create)(username="mallory", organization="other-org")
    sockets = []
    for user in (member, stranger):
        cookie = await database_sync_to_async(_cookie)(user)
        communicator = WebsocketCommunicator(
            application,
            "/ws/alerts/",
            headers=[(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie)],
        )
        connected, _ = await communicator.connect()
        assert connected
        assert (await communicator.receive_json_from())["type"] == "hello"
        sockets.append(communicator)

    def send() -> None:
        contact_point = contact_point_create(
            organization=organization_get(), created_by=member, name="screens", kind="in_app", config={}
        )
        assert contact_point_test(contact_point=contact_point, user=member).state == "sent"

    await database_sync_to_async(send)()
    notice = await sockets[0].receive_json_from(timeout=5)
    assert notice["type"] == "alert"
    assert notice["alerts"][0]["labels"]["alertname"] == "TestNotification"
    assert await sockets[1].receive_nothing(timeout=0.5)
    anonymous = WebsocketCommunicator(
        application, "/ws/alerts/", headers=[(b"host", b"localhost"), (b"origin", b"http://localhost")]
    )
    connected, code = await anonymous.connect()
    assert (connected, code) == (False, 4401)
    for communicator in sockets:
        await communicator.disconnect()
