"""Data policies turned into the query engine's data scope: the one function every reader of data calls.

`data_scope_for_user(user=..., organization=...)` is public: alerting and reports evaluate under a given user's
policies with it (a report is rendered per recipient). The query engine reaches it through the provider installed
in apps.py, with the principal of each request.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from django.db.models import Q

from apps.access.models import DataPolicy, Organization
from apps.storage.policies import DataScope, Grant, Principal
from apps.storage.scope_events import scope_generation

# Computed scopes per process, keyed by (user, organisation, scope generation): every change that can alter a
# scope (policies, teams, memberships, a user's flags, sources moved or deleted) bumps the generation after it
# commits (apps/storage/scope_events.py), so an entry is never used after such a change. Reading the generation
# is one Redis GET, against a join over policies, teams and memberships per query (bench/storage_policies.py).
# Entries also expire after SCOPE_CACHE_SECONDS, the bound on staleness should a bump ever be lost with Redis.
SCOPE_CACHE_SIZE = 4096
SCOPE_CACHE_SECONDS = 60.0
_scopes: OrderedDict[tuple, tuple[float, DataScope]] = OrderedDict()
_scopes_lock = threading.Lock()


def data_scopes_forget() -> None:
    """Empty this process's scope cache (tests)."""
    with _scopes_lock:
        _scopes.clear()


def data_scope_for_user(*, user: Any, organization: Organization | int | None = None) -> DataScope:
    """What `user` may read: the union of the policies granting them (directly, through a team, or as a member),
    in every organisation they belong to or only in `organization`. Deny by default: no policy, no data.

    Superusers (platform operators, not organisation roles) read everything.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return DataScope.nothing()
    if user.is_superuser:
        return DataScope.everything()
    organization_id = None if organization is None else getattr(organization, "pk", organization)
    generation = scope_generation()
    if generation is None:
        return _data_scope_compute(user, organization_id)
    key = (user.pk, organization_id, generation)
    now = time.monotonic()
    cached = _scopes.get(key)
    if cached is not None and now - cached[0] < SCOPE_CACHE_SECONDS:
        return cached[1]
    scope = _data_scope_compute(user, organization_id)
    with _scopes_lock:
        _scopes[key] = (now, scope)
        _scopes.move_to_end(key)
        while len(_scopes) > SCOPE_CACHE_SIZE:
            _scopes.popitem(last=False)
    return scope


def _data_scope_compute(user: Any, organization_id: int | None) -> DataScope:
    policies = DataPolicy.objects.filter(organization__memberships__user=user).filter(
        Q(all_members=True) | Q(users=user) | Q(teams__group__user=user)
    )
    if organization_id is not None:
        policies = policies.filter(organization_id=organization_id)
    grants = [
        Grant.build(
            organization_id=policy_organization,
            source_ids=None if source_id is None else [source_id],
            labels=labels or {},
            metrics=metrics,
        )
        for policy_organization, source_id, labels, metrics in policies.values_list(
            "organization_id", "source_id", "labels", "metrics"
        ).distinct()
    ]
    return DataScope.of(grants)


def policy_data_scope(principal: Any) -> DataScope:
    """The query engine's provider: a Principal reads under its organisation's policies, a bare user under all of
    their organisations' policies (each grant is bound to its own organisation's sources)."""
    if isinstance(principal, Principal):
        return data_scope_for_user(user=principal.user, organization=principal.organization_id)
    return data_scope_for_user(user=principal)
