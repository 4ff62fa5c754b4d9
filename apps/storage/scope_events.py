"""'Data scope changed' messages: whoever holds a long-lived read (a live WebSocket) re-checks its access.

A live feed resolves its series under the principal's data scope once; without these messages a user removed
from an organisation would keep receiving its points until they reconnected. Whatever changes a scope (data
policies, teams and memberships: apps/access/signals.py, apps/sources/signals.py) calls `scope_changed`; each web
process's live hub closes the affected connections (the browser reconnects and resubscribes, under the new scope).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from django.db import transaction

from analytics_platform.redis_client import redis_client, redis_key

logger = logging.getLogger(__name__)

SCOPE_CHANNEL = redis_key("access", "scope-changes")
# Bumped with every announcement: processes that cache computed scopes (apps/access/scopes.py) key them by it.
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


def scope_generation() -> int | None:
    """The current scope generation, or None when Redis cannot say (then nothing may be served from a cache)."""
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
