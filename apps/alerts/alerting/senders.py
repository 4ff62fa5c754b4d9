"""How each contact point kind sends a notification: webhook, Slack-compatible webhook, CMMS work order, email,
in-app notice. Each raises DeliveryError (with the HTTP status when there was one) when the message did not
arrive; the caller logs the attempt and retries.
"""

from __future__ import annotations

import json

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.mail import EmailMessage

from apps.alerts.alerting.signing import IDEMPOTENCY_HEADER, signature_headers
from apps.alerts.alerting.url_guard import UnsafeUrl, http_post
from apps.alerts.models import ContactPointKind, Notification


class DeliveryError(Exception):
    """A delivery that did not arrive."""

    def __init__(self, message: str, *, status_code: int | None = None, retry: bool = True) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry = retry


def in_app_group(organization_id: int) -> str:
    """The channel-layer group of an organisation's in-app alert notices."""
    return f"alerts.org.{organization_id}"


def webhook_body(notification: Notification) -> dict:
    """The JSON a webhook receives (see docs/alerting.md)."""
    alerts = notification.payload["alerts"]
    return {
        "version": "1",
        "receiver": notification.contact_point.name,
        "status": notification.status,
        "group_key": notification.group_key,
        "group_labels": notification.payload.get("group_labels", {}),
        "alerts": alerts,
        "notification_id": notification.id,
        "idempotency_key": notification.idempotency_key,
    }


def _summary(notification: Notification) -> tuple[str, str]:
    alerts = notification.payload["alerts"]
    first = alerts[0]
    name = first["labels"].get("alertname", "alert")
    title = f"[{notification.status.upper()}] {name}" + (f" ({len(alerts)} alerts)" if len(alerts) > 1 else "")
    lines = []
    for alert in alerts:
        labels = ", ".join(f"{key}={value}" for key, value in alert["labels"].items() if key != "alertname")
        summary = alert["annotations"].get("summary", "")
        lines.append(f"- {labels}: value {alert['value']} {summary}".rstrip() + f"\n  {alert['link']}")
    return title, "\n".join(lines)


def _post_json(url: str, payload: dict, *, secret: str, idempotency_key: str) -> int:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {IDEMPOTENCY_HEADER: idempotency_key, "User-Agent": "analytics-platform-alerts/1"}
    if secret:
        headers.update(signature_headers(secret, body))
    try:
        answer = http_post(url, body=body, headers=headers)
    except UnsafeUrl as error:
        raise DeliveryError(f"refused: {error}", retry=False) from None
    except OSError as error:
        raise DeliveryError(f"network error: {error}") from None
    if 300 <= answer.status < 400:
        raise DeliveryError(f"answered {answer.status}; redirects are not followed", status_code=answer.status)
    if answer.status >= 300:
        raise DeliveryError(
            f"answered {answer.status}: {answer.body[:200].decode(errors='replace')}", status_code=answer.status
        )
    return answer.status


def _cmms_payload(notification: Notification) -> dict:
    config = notification.contact_point.config
    asset_label = config.get("asset_label", "asset")
    orders = []
    for alert in notification.payload["alerts"]:
        labels = alert["labels"]
        orders.append(
            {
                "external_id": f"{notification.idempotency_key}:{alert['fingerprint'][:12]}",
                "asset": labels.get(asset_label) or labels.get("device") or "",
                "severity": labels.get("severity", ""),
                "priority": {"critical": "high", "warning": "medium"}.get(labels.get("severity", ""), "low"),
                "title": alert["annotations"].get("summary") or labels.get("alertname", "alert"),
                "description": alert["annotations"].get("description", ""),
                "runbook_url": alert["annotations"].get("runbook_url", ""),
                "link": alert["link"],
                "action": "open" if notification.status == "firing" else "close",
                "value": alert["value"],
            }
        )
    return {"status": notification.status, "work_orders": orders, "idempotency_key": notification.idempotency_key}


def notification_send(notification: Notification) -> int | None:
    """Send one notification by its contact point's kind; the HTTP status when there was one."""
    contact_point = notification.contact_point
    config = contact_point.config
    kind = contact_point.kind
    if kind == ContactPointKind.WEBHOOK:
        return _post_json(
            config["url"], webhook_body(notification), secret=config.get("secret", ""),
            idempotency_key=notification.idempotency_key,
        )  # fmt: skip
    if kind == ContactPointKind.CMMS:
        return _post_json(
            config["url"], _cmms_payload(notification), secret=config.get("secret", ""),
            idempotency_key=notification.idempotency_key,
        )  # fmt: skip
    title, text = _summary(notification)
    if kind == ContactPointKind.SLACK:
        return _post_json(
            config["url"], {"text": f"*{title}*\n{text}"}, secret="", idempotency_key=notification.idempotency_key
        )
    if kind == ContactPointKind.EMAIL:
        message = EmailMessage(
            subject=title, body=text, from_email=settings.ALERTS_EMAIL_FROM, to=list(config["addresses"]),
            headers={"X-Alert-Idempotency-Key": notification.idempotency_key},
        )  # fmt: skip
        try:
            message.send(fail_silently=False)
        except OSError as error:
            raise DeliveryError(f"SMTP error: {error}") from None
        return None
    if kind == ContactPointKind.IN_APP:
        layer = get_channel_layer()
        if layer is None:
            raise DeliveryError("no channel layer configured", retry=False)
        async_to_sync(layer.group_send)(
            in_app_group(contact_point.organization_id),
            {"type": "alert.notice", "notice": {"title": title, "status": notification.status,
                                                "alerts": notification.payload["alerts"]}},
        )  # fmt: skip
        return None
    raise DeliveryError(f"unknown contact point kind {kind!r}", retry=False)
