"""Notification delivery against real receivers: retries with backoff, every attempt logged, email through a real
SMTP server (aiosmtpd), Slack-compatible and CMMS payloads, the SSRF guard, redirects not followed."""

from __future__ import annotations

import itertools
import time
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from django.test import override_settings

from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate
from apps.alerts.alerting.services import (
    AlertingError,
    alert_rule_update,
    contact_point_create,
    contact_point_test,
    notification_deliver,
    notifications_flush,
)
from apps.alerts.alerting.url_guard import UnsafeUrl, address_allowed, http_post
from apps.alerts.models import DeliveryAttempt, Notification
from tests.alerts.alerting.conftest import webhook_rule
from tests.alerts.alerting.receivers import Receiver, port_free, receiver_start, receiver_stop
from tests.factories import organization_get

pytestmark = pytest.mark.django_db


@override_settings(ALERTS_DELIVERY_BACKOFF_SECONDS=0.2)
def test_a_failing_webhook_is_retried_with_backoff_and_every_attempt_is_logged(user, factory):
    receiver = receiver_start(Receiver(fail_first=3))
    try:
        rule = webhook_rule(owner=user, url=receiver.url)
        factory.write(0, 95)
        alert_rule_evaluate(rule_id=rule.id, now=factory.at(1))
        notification = Notification.objects.get()
        deadline = time.monotonic() + 10
        while Notification.objects.get().state == "pending" and time.monotonic() < deadline:
            notifications_flush()
            time.sleep(0.02)
    finally:
        receiver_stop(receiver)
    notification.refresh_from_db()
    assert notification.state == "sent"
    attempts = list(DeliveryAttempt.objects.filter(notification=notification).order_by("number"))
    assert [(attempt.ok, attempt.status_code) for attempt in attempts] == [
        (False, 500), (False, 500), (False, 500), (True, 200),
    ]  # fmt: skip
    assert "answered 500" in attempts[0].error
    # Backoff: 0.2 s, 0.4 s, 0.8 s between the attempts (each at least its wait, and growing).
    arrivals = [request.at for request in receiver.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # (50 ms of slack: the wait runs from the failed attempt's end, the arrival is stamped when the request lands)
    assert [gap >= wait - 0.05 for gap, wait in zip(gaps, (0.2, 0.4, 0.8), strict=True)] == [True] * 3, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps
    # Every retry carries the same idempotency key.
    assert len({request.headers["Idempotency-Key"] for request in receiver.requests}) == 1


@override_settings(ALERTS_DELIVERY_MAX_ATTEMPTS=2, ALERTS_DELIVERY_BACKOFF_SECONDS=0.01)
def test_delivery_gives_up_after_the_last_attempt(user, factory):
    receiver = receiver_start(Receiver(fail_first=10, fail_status=503))
    try:
        rule = webhook_rule(owner=user, url=receiver.url)
        factory.write(0, 95)
        alert_rule_evaluate(rule_id=rule.id, now=factory.at(1))
        for _ in range(50):
            notifications_flush()
            time.sleep(0.01)
    finally:
        receiver_stop(receiver)
    notification = Notification.objects.get()
    assert (notification.state, notification.attempts) == ("failed", 2)
    assert "503" in notification.last_error


def test_redirects_are_not_followed(user, factory, receiver):
    target = receiver_start(Receiver())
    receiver.redirect_to = target.url
    try:
        rule = webhook_rule(owner=user, url=receiver.url)
        factory.write(0, 95)
        alert_rule_evaluate(rule_id=rule.id, now=factory.at(1))
        notifications_flush()
    finally:
        receiver_stop(target)
    assert target.requests == []
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.ok, attempt.status_code) == (False, 302)
    assert "redirects are not followed" in attempt.error


@override_settings(ALERTS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES=False)
def test_in_production_private_destinations_are_refused_after_resolution(user, factory, receiver):
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "::ffff:127.0.0.1", "0.0.0.0"):
        assert not address_allowed(address), address
    assert address_allowed("93.184.215.14")
    # "localhost" is a name: it is refused for what it resolves to.
    with pytest.raises(UnsafeUrl, match="private, loopback or link-local"):
        http_post(receiver.url.replace("127.0.0.1", "localhost"), body=b"{}", headers={})
    # An address written as such is refused when the contact point is made; a name when it is used.
    with pytest.raises(AlertingError, match="private"):
        webhook_rule(owner=user, url=receiver.url)
    rule = webhook_rule(owner=user, url=receiver.url.replace("127.0.0.1", "localhost"))
    factory.write(0, 95)
    alert_rule_evaluate(rule_id=rule.id, now=factory.at(1))
    notifications_flush()
    assert receiver.requests == []
    notification = Notification.objects.get()
    assert notification.state == "failed"  # not retried: it would be refused again
    assert "refused" in DeliveryAttempt.objects.get().error


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def test_email_goes_through_a_real_smtp_server(user, factory):
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port_free())
    controller.start()
    try:
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=controller.port,
        ):
            contact_point = contact_point_create(
                organization=organization_get(), created_by=user, name="night shift", kind="email",
                config={"addresses": ["ops@example.com"]},
            )  # fmt: skip
            rule = webhook_rule(owner=user, url="http://127.0.0.1:1/unused")
            alert_rule_update(rule=rule, data={"contact_points": [contact_point.id]})
            factory.write(0, 95)
            alert_rule_evaluate(rule_id=rule.id, now=factory.at(1))
            notifications_flush()
    finally:
        controller.stop()
    assert len(mailbox.messages) == 1
    recipients, content = mailbox.messages[0]
    message = message_from_bytes(content)
    assert recipients == ["ops@example.com"]
    assert message["Subject"] == "[FIRING] Hot press"
    assert "device=press-7" in message.get_payload()
    assert message["X-Alert-Idempotency-Key"] == Notification.objects.get().idempotency_key


def test_slack_and_cmms_payloads(user, factory, receiver):
    slack = contact_point_create(
        organization=organization_get(), created_by=user, name="slack", kind="slack", config={"url": receiver.url}
    )
    cmms = contact_point_create(
        organization=organization_get(), created_by=user, name="cmms", kind="cmms",
        config={"url": receiver.url, "secret": "k", "asset_label": "device"},
    )  # fmt: skip
    rule = webhook_rule(
        owner=user, url=receiver.url, severity="critical",
        annotations={"summary": "Press {{ labels.device }} too hot", "runbook_url": "https://wiki/presses"},
    )  # fmt: skip
    alert_rule_update(rule=rule, data={"contact_points": [slack.id, cmms.id]})
    factory.write(0, 95)
    alert_rule_evaluate(rule_id=rule.id, now=factory.at(1))
    notifications_flush()
    bodies = {("text" in request.json()): request.json() for request in receiver.requests}
    assert "*[FIRING] Hot press*" in bodies[True]["text"]
    order = bodies[False]["work_orders"][0]
    assert (order["asset"], order["severity"], order["priority"], order["action"]) == (
        "press-7", "critical", "high", "open",
    )  # fmt: skip
    assert order["runbook_url"] == "https://wiki/presses"
    assert order["title"] == "Press press-7 too hot"
    assert order["link"].endswith(f"/alerts/rules/{rule.id}?instance={order['link'].rsplit('=', 1)[1]}")


def test_send_test_delivers_now_and_logs_the_attempt(user, receiver):
    contact_point = contact_point_create(
        organization=organization_get(), created_by=user, name="hook", kind="webhook",
        config={"url": receiver.url, "secret": "x"},
    )  # fmt: skip
    notification = contact_point_test(contact_point=contact_point, user=user)
    assert notification.state == "sent"
    assert receiver.requests[0].json()["alerts"][0]["labels"]["alertname"] == "TestNotification"
    assert notification_deliver(notification_id=notification.id) == "skipped"  # sent rows are never sent again
