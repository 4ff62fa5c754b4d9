"""Signing out closes the WebSockets that session opened, on every web process."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.dispatch import receiver

from apps.access.websocket_sessions import websocket_sessions_close


@receiver(user_logged_out, dispatch_uid="access_close_session_websockets")
def _signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        transaction.on_commit(lambda: websocket_sessions_close(session_keys=[session_key], reason="signed out"))
