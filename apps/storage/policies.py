"""Row-level data policies as the query engine sees them: which series a principal may read.

Every read of points goes through the query engine, which asks `data_scope_for(principal)` and
applies the scope to the series it selects. The access app registers the real provider
(organisations, teams and policies); until then every active, authenticated user reads everything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class DataAccessDenied(Exception):
    """The principal may not read data at all."""


@dataclass(frozen=True)
class DataScope:
    """What a principal may read. None for `source_ids` means every source.

    `label_values` restricts series to those whose label has one of the listed values, e.g.
    {"facility": ("f1", "f2")}; a series without that label is not visible.
    """

    source_ids: frozenset[int] | None = None
    label_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def unrestricted(self) -> bool:
        return self.source_ids is None and not self.label_values


DataScopeProvider = Callable[[Any], DataScope]


def _authenticated_users_read_everything(principal: Any) -> DataScope:
    return DataScope()


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
    """The scope for a principal; anonymous or inactive principals may read nothing."""
    if principal is None or not getattr(principal, "is_authenticated", False) or not principal.is_active:
        raise DataAccessDenied("Sign in or send an API token to read data.")
    return _provider(principal)
