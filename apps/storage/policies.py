"""Row-level data policies as the query engine sees them: which series a principal may read.

Every read of points or series goes through the query engine (or the series selectors beside it), which asks
`data_scope_for(principal)` and applies the scope in SQL. A scope is a union of grants; a grant is one
conjunction (an organisation's sources or some of them, label conditions, optionally a set of metrics). The
access app installs the provider that turns a user's policies into a scope (apps/access/scopes.py).

A scope is canonical (grants deduplicated and sorted, a grant for a whole organisation absorbing the narrower
ones of that organisation) and hashable, so equal access gives equal `cache_key()` values: live feeds and result
caches are shared exactly between principals whose effective access is the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class DataAccessDenied(Exception):
    """The principal may not read data at all."""


@dataclass(frozen=True, order=True)
class Grant:
    """One conjunction of what may be read.

    `organization_id` None matches any organisation (only system scopes and tests use it); `source_ids` None means
    every source of the organisation; `labels` are (key, values) pairs, each key's values OR-ed and the keys AND-ed
    (a series without the key does not match); `metrics` None means every metric.
    """

    organization_id: int | None = None
    source_ids: tuple[int, ...] | None = None
    labels: tuple[tuple[str, tuple[str, ...]], ...] = ()
    metrics: tuple[str, ...] | None = None

    @classmethod
    def build(
        cls,
        *,
        organization_id: int | None = None,
        source_ids: Iterable[int] | None = None,
        labels: Mapping[str, Iterable[str]] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> Grant:
        """A grant in canonical form (sorted, deduplicated)."""
        return cls(
            organization_id=organization_id,
            source_ids=None if source_ids is None else tuple(sorted(set(source_ids))),
            labels=tuple(
                sorted((str(key), tuple(sorted({str(v) for v in values}))) for key, values in (labels or {}).items())
            ),
            metrics=None if metrics is None else tuple(sorted(set(metrics))),
        )

    @property
    def whole_organization(self) -> bool:
        """Whether the grant reads everything of its organisation."""
        return self.source_ids is None and not self.labels and self.metrics is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "organization": self.organization_id,
            "sources": None if self.source_ids is None else list(self.source_ids),
            "labels": {key: list(values) for key, values in self.labels},
            "metrics": None if self.metrics is None else list(self.metrics),
        }


@dataclass(frozen=True)
class DataScope:
    """What a principal may read: None for `grants` reads everything; an empty tuple reads nothing."""

    grants: tuple[Grant, ...] | None = None

    @classmethod
    def everything(cls) -> DataScope:
        return cls(grants=None)

    @classmethod
    def nothing(cls) -> DataScope:
        return cls(grants=())

    @classmethod
    def of(cls, grants: Iterable[Grant]) -> DataScope:
        """The union of grants, canonical: deduplicated, sorted, narrower grants of a wholly granted organisation
        dropped (a grant with `organization_id` None and nothing else reads everything)."""
        unique = set(grants)
        if any(grant.organization_id is None and grant.whole_organization for grant in unique):
            return cls.everything()
        whole = {grant.organization_id for grant in unique if grant.whole_organization}
        kept = {grant for grant in unique if grant.whole_organization or grant.organization_id not in whole}
        return cls(grants=tuple(sorted(_grants_merged(kept), key=_grant_sort_key)))

    @property
    def unrestricted(self) -> bool:
        return self.grants is None

    @property
    def empty(self) -> bool:
        return self.grants == ()

    def may_cover_source(self, source_id: int, organization_id: int | None = None) -> bool:
        """Whether series of this source may be in the scope (labels and metrics aside)."""
        if self.grants is None:
            return True
        for grant in self.grants:
            if grant.organization_id is not None and organization_id is not None:
                if grant.organization_id != organization_id:
                    continue
            elif grant.organization_id is not None and grant.source_ids is None:
                return True  # the caller does not know the source's organisation: stay on the safe (wider) side
            if grant.source_ids is None or source_id in grant.source_ids:
                return True
        return False

    def as_dict(self) -> dict[str, Any]:
        return {"grants": None if self.grants is None else [grant.as_dict() for grant in self.grants]}

    def cache_key(self) -> str:
        """A short, stable key: equal for equal scopes, in every process and across restarts."""
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _grants_merged(grants: set[Grant]) -> set[Grant]:
    """Fewer grants for the same union: grants that differ only in the values of one label, only in their sources
    or only in their metrics become one grant with the union of those (exact: the other conditions are equal).

    A user with a policy per device or per facility then costs the engine one condition, not one per policy.
    """
    merged = set(grants)
    changed = True
    while changed and len(merged) > 1:
        changed = False
        keys = sorted({key for grant in merged for key, _ in grant.labels})
        for key in keys:
            merged, did = _merge_by(merged, lambda grant, key=key: _without_label(grant, key), _union_label(key))
            changed = changed or did
        merged, did = _merge_by(
            merged,
            lambda grant: None if grant.source_ids is None else (grant.organization_id, grant.labels, grant.metrics),
            lambda group: Grant.build(
                organization_id=group[0].organization_id,
                source_ids=[source for grant in group for source in grant.source_ids],
                labels=dict(group[0].labels),
                metrics=group[0].metrics,
            ),
        )
        changed = changed or did
        merged, did = _merge_by(
            merged,
            lambda grant: None if grant.metrics is None else (grant.organization_id, grant.source_ids, grant.labels),
            lambda group: Grant.build(
                organization_id=group[0].organization_id,
                source_ids=group[0].source_ids,
                labels=dict(group[0].labels),
                metrics=[metric for grant in group for metric in grant.metrics],
            ),
        )
        changed = changed or did
    return merged


def _without_label(grant: Grant, key: str) -> tuple | None:
    """What a grant is besides its values of `key` (None when it has no condition on `key`)."""
    if key not in dict(grant.labels):
        return None
    others = tuple(pair for pair in grant.labels if pair[0] != key)
    return (grant.organization_id, grant.source_ids, grant.metrics, others)


def _union_label(key: str) -> Callable[[list[Grant]], Grant]:
    def union(group: list[Grant]) -> Grant:
        labels = dict(group[0].labels)
        labels[key] = [value for grant in group for value in dict(grant.labels)[key]]
        return Grant.build(
            organization_id=group[0].organization_id,
            source_ids=group[0].source_ids,
            labels=labels,
            metrics=group[0].metrics,
        )

    return union


def _merge_by(
    grants: set[Grant], signature: Callable[[Grant], tuple | None], combine: Callable[[list[Grant]], Grant]
) -> tuple[set[Grant], bool]:
    groups: dict[tuple, list[Grant]] = {}
    result: set[Grant] = set()
    for grant in grants:
        key = signature(grant)
        if key is None:
            result.add(grant)
        else:
            groups.setdefault(key, []).append(grant)
    changed = False
    for group in groups.values():
        if len(group) > 1:
            result.add(combine(sorted(group, key=_grant_sort_key)))
            changed = True
        else:
            result.add(group[0])
    return result, changed


def _grant_sort_key(grant: Grant) -> tuple:
    return (
        grant.organization_id is None,
        grant.organization_id or 0,
        grant.source_ids is not None,
        grant.source_ids or (),
        grant.labels,
        grant.metrics is not None,
        grant.metrics or (),
    )


@dataclass(frozen=True)
class Principal:
    """A user acting in one organisation (a token bound to it, the organisation chosen in the UI, a report's
    recipient for one organisation's report): only that organisation's policies apply."""

    user: Any
    organization_id: int | None = None

    @property
    def is_authenticated(self) -> bool:
        return bool(getattr(self.user, "is_authenticated", False))

    @property
    def is_active(self) -> bool:
        return bool(getattr(self.user, "is_active", False))

    @property
    def pk(self) -> Any:
        return self.user.pk


DataScopeProvider = Callable[[Any], DataScope]


def _authenticated_users_read_everything(principal: Any) -> DataScope:
    return DataScope.everything()


_provider: DataScopeProvider = _authenticated_users_read_everything


def data_scope_provider_set(provider: DataScopeProvider) -> DataScopeProvider:
    """Install the function that turns a principal into a DataScope (the access app calls this)."""
    global _provider
    _provider = provider
    return provider


def data_scope_provider_get() -> DataScopeProvider:
    """The installed provider (tests restore it after swapping)."""
    return _provider


def data_scope_for(principal: Any) -> DataScope:
    """The scope for a principal (a user or a Principal); anonymous or inactive principals may read nothing."""
    if principal is None or not getattr(principal, "is_authenticated", False) or not principal.is_active:
        raise DataAccessDenied("Sign in or send an API token to read data.")
    return _provider(principal)
