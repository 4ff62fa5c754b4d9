"""Data policies turned into the query engine's data scope: the one function every reader of data calls.

`data_scope_for_user(user=..., organization=...)` is public: alerting and reports evaluate under a given user's
policies with it (a report is rendered per recipient). The query engine reaches it through the provider installed
in apps.py, with the principal of each request.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from apps.access.models import DataPolicy, Organization
from apps.storage.policies import DataScope, Grant, Principal


def data_scope_for_user(*, user: Any, organization: Organization | int | None = None) -> DataScope:
    """What `user` may read: the union of the policies granting them (directly, through a team, or as a member),
    in every organisation they belong to or only in `organization`. Deny by default: no policy, no data.

    Superusers (platform operators, not organisation roles) read everything.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return DataScope.nothing()
    if user.is_superuser:
        return DataScope.everything()
    policies = DataPolicy.objects.filter(organization__memberships__user=user).filter(
        Q(all_members=True) | Q(users=user) | Q(teams__group__user=user)
    )
    if organization is not None:
        policies = policies.filter(organization_id=getattr(organization, "pk", organization))
    grants = [
        Grant.build(
            organization_id=organization_id,
            source_ids=None if source_id is None else [source_id],
            labels=labels or {},
            metrics=metrics,
        )
        for organization_id, source_id, labels, metrics in policies.values_list(
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
