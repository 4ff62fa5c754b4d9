"""Webhook signatures: HMAC-SHA256 with the contact point's secret over `<timestamp>.<body>`.

Headers: `X-Alert-Timestamp` (seconds since 1970) and `X-Alert-Signature: sha256=<hex>`. A receiver recomputes
the HMAC over the timestamp header, a dot and the raw body bytes, compares in constant time, and refuses a
timestamp more than a few minutes old (replays). docs/alerting.md has the recipe.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Alert-Timestamp"
SIGNATURE_HEADER = "X-Alert-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, timestamp + "." + body)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The timestamp and signature headers for a body."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def signature_verify(secret: str, body: bytes, *, timestamp: str, received: str, tolerance: int = 300) -> bool:
    """Whether a received signature is right and its timestamp recent (what a receiver does)."""
    try:
        moment = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(time.time() - moment) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, moment, body), received)
