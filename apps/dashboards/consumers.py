"""The live WebSocket endpoint, /ws/live/. Consumers only authenticate, join feeds and forward.

Protocol (docs/live.md): `subscribe` {id, query, since?} -> `data` {id, series, initial?} messages;
`unsubscribe` {id}; `ping` -> `pong`; refused subscriptions get `error` {id, field, message}.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.access.models import TokenScope
from apps.access.websocket_sessions import (
    CLOSE_TOO_MANY_CONNECTIONS,
    TooManyConnections,
    websocket_credentials,
    websocket_sessions,
)
from apps.dashboards.live import MAX_SUBSCRIPTIONS_PER_CONNECTION, LiveRefused, LiveSubscription, live_hub
from apps.storage.policies import Principal

CLOSE_UNAUTHENTICATED = 4401
# A token without the `read` scope: the live feed only reads (HTTP 403 to the client, as the handshake is refused).
CLOSE_FORBIDDEN = 4403
# The user's data access may have changed: reconnect and subscribe again (the browser client does so at once).
CLOSE_SCOPE_CHANGED = 4009
MAX_CLIENT_ID_LENGTH = 100


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """One connection per page: subscriptions to panel queries, answered by the process's live hub."""

    # No channel layer: the hub sends to its consumers directly (docs/live.md says why). Joining one would cost
    # each connection a Redis receive loop for nothing, and channels_redis's blocking pop (5 s) against
    # redis-py's default 5 s socket timeout closed one connection every 5 s with code 1011.
    channel_layer_alias = None

    async def connect(self) -> None:
        self.subscriptions: dict[str, LiveSubscription] = {}
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Closing before accept refuses the handshake (HTTP 403).
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not socket_token_may_read(self.scope):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # What the socket reads as: a token bound to an organisation reads that organisation's data only, as on REST.
        self.principal = socket_principal(self.scope)
        await self.accept()
        try:
            # Revoking the token, signing out or expiry closes the socket; at most N sockets per user.
            self.open_socket = await websocket_sessions().open(
                **await websocket_credentials(self.scope), close=self._credentials_ended
            )
        except TooManyConnections as error:
            await self.close(code=CLOSE_TOO_MANY_CONNECTIONS, reason=str(error))
            return
        self.user_id = user.pk
        live_hub().connection_add(self.user_id, self._scope_changed)
        await self.send_json({"type": "hello", "user": user.get_username(), "time": _now()})

    async def _scope_changed(self) -> None:
        await self.disconnect(CLOSE_SCOPE_CHANGED)  # nothing more reaches this connection from its feeds
        await self.close(code=CLOSE_SCOPE_CHANGED)

    async def _credentials_ended(self, code: int, reason: str) -> None:
        await self.disconnect(code)
        await self.close(code=code, reason=reason)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "open_socket", None) is not None:
            await websocket_sessions().closed(self.open_socket)
        if getattr(self, "user_id", None) is not None:
            live_hub().connection_remove(self.user_id, self._scope_changed)
        for subscription in getattr(self, "subscriptions", {}).values():
            live_hub().unsubscribe(subscription)
        self.subscriptions = {}

    async def receive_json(self, content: Any, **kwargs) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_json({"type": "error", "message": "Messages must be JSON objects with a 'type' field."})
            return
        kind = content["type"]
        if kind == "ping":
            await self.send_json({"type": "pong", "id": content.get("id"), "time": _now()})
        elif kind == "subscribe":
            await self._subscribe(content)
        elif kind == "unsubscribe":
            await self._unsubscribe(content)
        else:
            message = f"Unknown message type {kind!r}; use subscribe, unsubscribe or ping."
            await self.send_json({"type": "error", "id": content.get("id"), "message": message})

    async def _subscribe(self, content: dict) -> None:
        client_id = content.get("id")
        if not isinstance(client_id, str | int) or isinstance(client_id, bool) or len(str(client_id)) > 100:
            message = f"give the subscription an id (a string of at most {MAX_CLIENT_ID_LENGTH} characters)."
            await self._refuse(client_id if isinstance(client_id, str | int) else None, "id", message)
            return
        if client_id in self.subscriptions:
            live_hub().unsubscribe(self.subscriptions.pop(client_id))  # re-subscribing an id replaces it
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
            await self._refuse(
                client_id, "id", f"at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions per connection."
            )
            return
        try:
            subscription = await live_hub().subscribe(
                sink=self._forward,
                user=self.principal,
                client_id=client_id,
                query=content.get("query"),
                since=content.get("since"),
            )
        except LiveRefused as error:
            await self._refuse(client_id, error.field, error.message)
            return
        self.subscriptions[client_id] = subscription

    async def _unsubscribe(self, content: dict) -> None:
        subscription = self.subscriptions.pop(content.get("id"), None)
        if subscription is None:
            await self._refuse(content.get("id"), "id", "no subscription with this id.")
            return
        live_hub().unsubscribe(subscription)
        await self.send_json({"type": "unsubscribed", "id": content.get("id")})

    async def _forward(self, text: str) -> None:
        await self.send(text_data=text)

    async def _refuse(self, client_id: Any, field: str, message: str) -> None:
        await self.send_json({"type": "error", "id": client_id, "field": field, "message": f"{field}: {message}"})

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        # Malformed JSON gets an error message instead of dropping the connection.
        try:
            return json.loads(text_data)
        except ValueError:
            return None


def socket_token_may_read(scope: dict[str, Any]) -> bool:
    """Whether the handshake's token (API or provider token) carries the `read` scope; sessions always may."""
    scopes = scope.get("api_token_scopes")
    return scopes is None or TokenScope.READ.value in scopes


def socket_principal(scope: dict[str, Any]) -> Any:
    """The socket's principal: the user, bound to the token's organisation when its API token carries one."""
    organization_id = scope.get("api_token_organization_id")
    if organization_id is None:
        return scope["user"]
    return Principal(user=scope["user"], organization_id=organization_id)


def _now() -> str:
    return datetime.now(UTC).isoformat()
