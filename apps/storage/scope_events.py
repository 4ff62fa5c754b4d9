"""'Data scope changed' messages: whoever holds a long-lived read (a live WebSocket) re-checks its access.

A live feed resolves its series under the principal's data scope once; without these messages a user removed
from an organisation would keep receiving its points until they reconnected. Whatever changes a scope (data
policies, teams and memberships: apps/access/signals.py, apps/sources/signals.py) calls `scope_changed`; each web
process's live hub closes the affected connections (the browser reconnects and resubscribes, under the new scope).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction

from analytics_platform.redis_client import redis_channel, redis_client, redis_key

logger = logging.getLogger(__name__)

SCOPE_CHANNEL = redis_channel("access", "scope-changes")
# Bumped with every announcement: processes that cache computed scopes (apps/access/scopes.py) key them by it, and
# by scope_generation_bump: processes that cache API tokens (apps/access/token_cache.py) key them by it too.
SCOPE_GENERATION_KEY = redis_key("access", "scope-generation")


def scope_changed(*, user_ids: Iterable[int] | None) -> None:
    """After the current transaction commits, announce that these users' (None: anyone's) scope may have changed."""
    message = json.dumps({"users": None if user_ids is None else sorted(set(user_ids))})

    def publish() -> None:
        try:
            pipeline = redis_client().pipeline(transaction=False)
            pipeline.incr(SCOPE_GENERATION_KEY)
            pipeline.publish(SCOPE_CHANNEL, message)
            pipeline.execute()
        except Exception:  # the change is committed; live connections keep their old scope until they reconnect
            logger.error("could not announce a data scope change; live connections keep their access", exc_info=True)

    transaction.on_commit(publish)


def scope_generation_bump() -> None:
    """After the current transaction commits, bump the generation without announcing a scope change: for changes
    that alter what per-process caches keyed by it hold (API tokens, apps/access/token_cache.py) but not what any
    live connection may read."""

    def bump() -> None:
        try:
            redis_client().incr(SCOPE_GENERATION_KEY)
        except Exception:  # the caches' entries expire on their own (their bound on staleness)
            logger.error("could not bump the access generation; cached tokens live out their expiry", exc_info=True)

    transaction.on_commit(bump)


# The generation a caller has just read itself, in a Redis round trip it makes anyway (shared query answers read it
# with the data generations): scope_generation() answers it instead of asking Redis again.
_generation_read: ContextVar[int | None] = ContextVar("scope_generation_read", default=None)


@contextmanager
def scope_generation_as_read(value: int | None) -> Iterator[None]:
    """Within the block, scope_generation() answers `value`, read from Redis by the caller (None: ask Redis)."""
    token = _generation_read.set(value)
    try:
        yield
    finally:
        _generation_read.reset(token)


def scope_generation() -> int | None:
    """The current scope generation, or None when Redis cannot say (then nothing may be served from a cache)."""
    known = _generation_read.get()
    if known is not None:
        return known
    try:
        value = redis_client().get(SCOPE_GENERATION_KEY)
    except Exception:
        logger.warning("could not read the data scope generation; computing scopes afresh", exc_info=True)
        return None
    return int(value or 0)


def scope_message_users(raw: bytes | str) -> set[int] | None:
    """The user ids of a message, or None for everyone (also for a message that cannot be read: the safe side)."""
    try:
        users = json.loads(raw)["users"]
        return None if users is None else {int(user_id) for user_id in users}
    except (ValueError, KeyError, TypeError):
        return None
