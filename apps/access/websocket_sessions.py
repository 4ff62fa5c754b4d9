"""Open WebSockets by the credential that opened them, so that ending the credential ends the socket at once.

A socket is opened with a session cookie or an API token, and keeps running long after the handshake checked
it. Revoking a token, signing out, or reaching a token's or session's expiry must close every socket that
credential opened, on every web process. `websocket_sessions_close` publishes a small message on a Redis
channel; each process's registry (one pub/sub subscription per process, like the live hub's) closes its
matching sockets with CLOSE_CREDENTIALS_ENDED. Expiry needs no message: each socket holds a timer.

The registry also caps open sockets per user across all processes (WEBSOCKET_MAX_CONNECTIONS_PER_USER): each
socket is a member of a Redis sorted set per user, scored with a lease the process renews while it lives, so
a crashed process's sockets stop counting within WEBSOCKET_CONNECTION_LEASE_SECONDS.

Not the channel layer: the live endpoint deliberately runs without one (docs/live.md), and a second pub/sub
subscription per process costs less than a channel-layer receive loop per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as redis_asyncio
from channels.db import database_sync_to_async
from django.conf import settings

from analytics_platform.redis_client import redis_channel, redis_client, redis_key

logger = logging.getLogger(__name__)

# The credential is gone (revoked, expired, signed out): sign in again or use another token.
CLOSE_CREDENTIALS_ENDED = 4401
# Too many open sockets for this user (policy violation, after WebSocket's 1008).
CLOSE_TOO_MANY_CONNECTIONS = 4008

CLOSE_CHANNEL = redis_channel("access", "websocket-closes")
_RETRY_SECONDS = 1.0

# Atomically: forget expired leases, refuse when the user is at the cap, else take a lease.
_LEASE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if tonumber(ARGV[3]) > 0 and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

Closer = Callable[[int, str], Awaitable[None]]


def session_key_digest(session_key: str) -> str:
    """What identifies a session on the pub/sub channel (never the key itself, which is a credential)."""
    return hashlib.sha256(session_key.encode()).hexdigest()


class TooManyConnections(Exception):
    """The user already has the most open sockets allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"too many open connections: at most {limit} per user; close another tab or client.")
        self.limit = limit


@dataclass(eq=False)
class OpenSocket:
    """One open socket and the credential behind it."""

    user_id: int
    token_id: int | None
    session_digest: str | None
    close: Closer
    connection_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    expiry_timer: asyncio.TimerHandle | None = None


def _connections_key(user_id: int) -> str:
    return redis_key("access", "websocket-connections", user_id)


class WebSocketSessions:
    """This process's open sockets: closes them on revocation messages and at expiry, renews their leases."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.redis = redis_asyncio.from_url(settings.REDIS_URL)
        self.sockets: set[OpenSocket] = set()
        self._started: asyncio.Future | None = None
        self._tasks: list[asyncio.Task] = []
        self._lease_script = self.redis.register_script(_LEASE_SCRIPT)

    async def start(self) -> None:
        """Subscribe to the close channel (once) and start renewing leases."""
        if self._started is None:
            self._started = self.loop.create_future()
            self._tasks.append(self.loop.create_task(self._listen(), name="websocket-sessions-listen"))
            self._tasks.append(self.loop.create_task(self._renew_leases(), name="websocket-sessions-leases"))
        # Once subscribed, a revocation published after this point reaches this process.
        await asyncio.shield(self._started)

    async def open(
        self, *, user_id: int, token_id: int | None, session_key: str | None, expires_at: datetime | None, close: Closer
    ) -> OpenSocket:
        """Register a socket; raises TooManyConnections at the per-user cap."""
        await self.start()
        socket = OpenSocket(
            user_id=user_id,
            token_id=token_id,
            session_digest=session_key_digest(session_key) if session_key else None,
            close=close,
        )
        lease_seconds = settings.WEBSOCKET_CONNECTION_LEASE_SECONDS
        now = time.time()
        taken = await self._lease_script(
            keys=[_connections_key(user_id)],
            args=[now, now + lease_seconds, settings.WEBSOCKET_MAX_CONNECTIONS_PER_USER, socket.connection_id,
                  int(lease_seconds) + 1],
        )  # fmt: skip
        if not taken:
            raise TooManyConnections(settings.WEBSOCKET_MAX_CONNECTIONS_PER_USER)
        self.sockets.add(socket)
        if not await database_sync_to_async(_credential_still_valid)(token_id=token_id, session_key=session_key):
            # Revoked or signed out between the handshake's check and this registration: no message will come.
            self._close_soon(socket, "credentials ended")
        elif expires_at is not None:
            delay = max(0.0, (expires_at - datetime.now(UTC)).total_seconds())
            socket.expiry_timer = self.loop.call_later(delay, self._close_soon, socket, "credentials expired")
        return socket

    async def closed(self, socket: OpenSocket) -> None:
        """Forget a socket that has closed and give back its lease."""
        if socket not in self.sockets:
            return
        self.sockets.discard(socket)
        if socket.expiry_timer is not None:
            socket.expiry_timer.cancel()
        with contextlib.suppress(Exception):  # the lease runs out by itself
            await self.redis.zrem(_connections_key(socket.user_id), socket.connection_id)

    def close_matching(
        self, *, user_ids: Iterable[int] = (), token_ids: Iterable[int] = (), session_digests: Iterable[str] = (),
        reason: str,
    ) -> int:  # fmt: skip
        """Close the sockets opened by any of these users, tokens or sessions; returns how many."""
        users, tokens, sessions = set(user_ids), set(token_ids), set(session_digests)
        matching = [
            socket
            for socket in self.sockets
            if socket.user_id in users
            or (socket.token_id is not None and socket.token_id in tokens)
            or (socket.session_digest is not None and socket.session_digest in sessions)
        ]
        for socket in matching:
            self._close_soon(socket, reason)
        return len(matching)

    def _close_soon(self, socket: OpenSocket, reason: str) -> None:
        self.loop.create_task(socket.close(CLOSE_CREDENTIALS_ENDED, reason))

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(CLOSE_CHANNEL)
                if self._started is not None and not self._started.done():
                    self._started.set_result(None)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._apply(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("WebSocket session registry lost its Redis subscription: %s", error)
                if self._started is not None and not self._started.done():
                    self._started.set_exception(error)
                    self._started = None
                    return
                await asyncio.sleep(_RETRY_SECONDS)

    def _apply(self, raw: bytes | str) -> None:
        try:
            message = json.loads(raw)
            self.close_matching(
                user_ids=[int(user_id) for user_id in message.get("users", [])],
                token_ids=[int(token_id) for token_id in message.get("tokens", [])],
                session_digests=[str(digest) for digest in message.get("sessions", [])],
                reason=str(message.get("reason", "credentials ended"))[:100],
            )
        except (ValueError, TypeError, AttributeError):
            logger.error("unreadable WebSocket close message: %r", raw[:200])

    async def _renew_leases(self) -> None:
        interval = settings.WEBSOCKET_CONNECTION_LEASE_SECONDS / 3
        while True:
            await asyncio.sleep(interval)
            if not self.sockets:
                continue
            until = time.time() + settings.WEBSOCKET_CONNECTION_LEASE_SECONDS
            try:
                async with self.redis.pipeline(transaction=False) as pipeline:
                    for socket in list(self.sockets):
                        pipeline.zadd(_connections_key(socket.user_id), {socket.connection_id: until})
                    await pipeline.execute()
            except Exception as error:
                logger.warning("could not renew WebSocket connection leases: %s", error)

    async def stop(self) -> None:
        """Cancel the registry's tasks (tests)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.redis.aclose()


async def websocket_credentials(scope: dict[str, Any]) -> dict[str, Any]:
    """The user, token or session and expiry of an authenticated handshake, as `WebSocketSessions.open` takes them."""
    provider_token = scope.get("provider_token")
    if provider_token is not None:
        # An access token from the OpenID Connect provider (apps.sso): the socket ends when the token expires.
        expires_at = datetime.fromtimestamp(int(provider_token.claims["exp"]), UTC)
        return {"user_id": scope["user"].pk, "token_id": None, "session_key": None, "expires_at": expires_at}
    token_id = scope.get("api_token_id")
    if token_id is not None:
        return {
            "user_id": scope["user"].pk,
            "token_id": token_id,
            "session_key": None,
            "expires_at": scope.get("api_token_expires_at"),
        }
    session = scope.get("session")

    def session_identity() -> tuple[str | None, datetime | None]:
        if session is None or not session.session_key:
            return None, None
        return session.session_key, session.get_expiry_date()

    session_key, expires_at = await database_sync_to_async(session_identity)()
    return {"user_id": scope["user"].pk, "token_id": None, "session_key": session_key, "expires_at": expires_at}


def _credential_still_valid(*, token_id: int | None, session_key: str | None) -> bool:
    from importlib import import_module

    from django.contrib.sessions.backends.base import SessionBase

    from apps.access.models import ApiToken

    if token_id is not None:
        token = ApiToken.objects.filter(pk=token_id).only("revoked_at", "expires_at").first()
        return token is not None and token.status == "active"
    if session_key is not None:
        store: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore()
        return store.exists(session_key)
    return True


_registry: WebSocketSessions | None = None


def websocket_sessions() -> WebSocketSessions:
    """The registry of this process's running event loop (created on first use)."""
    global _registry
    loop = asyncio.get_running_loop()
    if _registry is None or _registry.loop is not loop:
        _registry = WebSocketSessions()
    return _registry


def websocket_sessions_close(
    *,
    user_ids: Iterable[int] = (),
    token_ids: Iterable[int] = (),
    session_keys: Iterable[str] = (),
    reason: str,
) -> None:
    """Close, on every web process, the sockets these users, tokens or sessions opened (call after commit)."""
    message: dict[str, Any] = {
        "users": sorted(set(user_ids)),
        "tokens": sorted(set(token_ids)),
        "sessions": sorted({session_key_digest(key) for key in session_keys}),
        "reason": reason,
    }
    try:
        redis_client().publish(CLOSE_CHANNEL, json.dumps(message))
    except Exception:
        # The credential is already refused at every new handshake, but sockets it opened stay open: say so loudly.
        logger.error("could not announce the end of WebSocket credentials; open sockets stay open", exc_info=True)
