"""What the live tests share: the raw query they watch, ingesting over HTTP, a token-authenticated client, and
reading points out of data messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from channels.testing import WebsocketCommunicator
from django.test import Client

from analytics_platform.asgi import application

RAW_QUERY = {"source": "plant", "metric": "temperature", "aggregation": "raw", "start": "-10m"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ingest(key: str, records: list[dict], slug: str = "plant") -> None:
    response = Client().post(
        f"/api/v1/sources/{slug}/ingest",
        data=json.dumps(records),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.content


async def connect(token: str) -> WebsocketCommunicator:
    """A client authenticated by `Authorization: Bearer <token>`, past its hello."""
    communicator = WebsocketCommunicator(
        application, "/ws/live/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "hello"
    return communicator


def points(message: dict) -> list[tuple[str, float]]:
    return [(moment, value) for series in message["series"] for moment, value in series["points"]]


def device_points(message: dict) -> list[tuple[str, str, float]]:
    return [
        (series["labels"]["device"], moment, value)
        for series in message["series"]
        for moment, value in series["points"]
    ]
