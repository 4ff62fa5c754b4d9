"""The live WebSocket endpoint, /ws/live/. Consumers only authenticate, join groups and forward."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

CLOSE_UNAUTHENTICATED = 4401


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """One connection per page. Today it answers pings (for the client's connection indicator);
    panel subscriptions are added with live dashboards."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Closing before accept refuses the handshake (HTTP 403).
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.accept()
        await self.send_json({"type": "hello", "user": user.get_username(), "time": _now()})

    async def receive_json(self, content: Any, **kwargs) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_json({"type": "error", "message": "Messages must be JSON objects with a 'type' field."})
            return
        if content["type"] == "ping":
            await self.send_json({"type": "pong", "id": content.get("id"), "time": _now()})
            return
        await self.send_json(
            {"type": "error", "id": content.get("id"), "message": f"Unknown message type {content['type']!r}."}
        )

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        # Malformed JSON gets an error message instead of dropping the connection.
        try:
            return json.loads(text_data)
        except ValueError:
            return None


def _now() -> str:
    return datetime.now(UTC).isoformat()
