"""API tokens read per process, kept exact by the access generation.

Every API request authenticates its token; loading it (with its user and organisation) cost a database query and
the ORM's SQL compilation: about half of a shared query answer's time when forty people open a dashboard at once
(bench/dashboards.py). A token and its user change rarely, so each process keeps what it read, keyed by the key's
digest and the access generation (apps/storage/scope_events.py). Every change that can alter whether a token
authenticates or as whom bumps that generation after it commits: a token saved or deleted (revoked, expired early,
removed with its user or organisation), a user saved for anything but a sign-in's `last_login` (deactivated, made
staff, renamed), a user's permissions or groups changed. The next request in any process then reads the token
again, so a revoked token is refused at once. Reading the generation is one Redis GET; if Redis cannot say, the
token is read from the database. Entries also expire after TOKEN_CACHE_SECONDS, the bound on staleness should a
bump ever be lost with Redis (or a change bypass signals, e.g. `QuerySet.update`).

Each request gets its own copies of the token and its user, so nothing a request sets on them reaches another.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save

from apps.access.models import ApiToken
from apps.storage.scope_events import scope_generation, scope_generation_bump

TOKEN_CACHE_SIZE = 4096
TOKEN_CACHE_SECONDS = 60.0
_tokens: OrderedDict[str, tuple[float, int, ApiToken]] = OrderedDict()
_tokens_lock = threading.Lock()


def api_token_by_digest(digest: str) -> ApiToken | None:
    """The token with this key digest (with its user and organisation loaded), a copy of its own; None if none."""
    generation = scope_generation()
    if generation is None:
        return _token_read(digest)
    now = time.monotonic()
    cached = _tokens.get(digest)
    if cached is not None and cached[1] == generation and now - cached[0] < TOKEN_CACHE_SECONDS:
        return _token_copy(cached[2])
    token = _token_read(digest)
    if token is None:
        return None  # unknown keys are not kept: a guesser must not fill the cache
    with _tokens_lock:
        _tokens[digest] = (now, generation, token)
        _tokens.move_to_end(digest)
        while len(_tokens) > TOKEN_CACHE_SIZE:
            _tokens.popitem(last=False)
    return _token_copy(token)


def api_token_used(digest: str, used_at) -> None:
    """Record on the kept token that its `last_used_at` was written, so the next requests do not write it again."""
    cached = _tokens.get(digest)
    if cached is not None:
        cached[2].last_used_at = used_at


def api_tokens_forget() -> None:
    """Empty this process's token cache (tests)."""
    with _tokens_lock:
        _tokens.clear()


def _token_read(digest: str) -> ApiToken | None:
    return ApiToken.objects.select_related("user", "organization").filter(key_hash=digest).first()


def _token_copy(token: ApiToken) -> ApiToken:
    """A token whose user and organisation are copies too (a shallow model copy would share them)."""
    mine = copy.copy(token)
    mine.user = copy.copy(token.user)
    if token.organization_id is not None:
        mine.organization = copy.copy(token.organization)
    return mine


def _token_changed(sender, **kwargs) -> None:
    scope_generation_bump()


def _user_saved(sender, update_fields=None, **kwargs) -> None:
    # Every sign-in saves last_login alone: that changes nothing a token authenticates with.
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    scope_generation_bump()


def _user_relations_changed(sender, action: str, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        scope_generation_bump()


def token_cache_signals_connect() -> None:
    user_model = get_user_model()
    post_save.connect(_token_changed, sender=ApiToken, dispatch_uid="access.token_cache.token_saved")
    post_delete.connect(_token_changed, sender=ApiToken, dispatch_uid="access.token_cache.token_deleted")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="access.token_cache.user_saved")
    post_delete.connect(_token_changed, sender=user_model, dispatch_uid="access.token_cache.user_deleted")
    for name in ("user_permissions", "groups"):
        through = getattr(user_model, name).through
        m2m_changed.connect(_user_relations_changed, sender=through, dispatch_uid=f"access.token_cache.{name}")
