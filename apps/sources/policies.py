"""The data scope that sources impose: people read the series of their organisations' sources only.

Installed as the storage query engine's data-scope provider when the app loads; the access issue's
row-level policies (label restrictions, teams) narrow this further.
"""

from __future__ import annotations

from typing import Any

from apps.sources.selectors import source_ids_for_user
from apps.storage.policies import DataScope


def organization_data_scope(principal: Any) -> DataScope:
    """Superusers read everything; everyone else reads the sources of the organisations they belong to."""
    source_ids = source_ids_for_user(user=principal)
    if source_ids is None:
        return DataScope()
    return DataScope(source_ids=frozenset(source_ids))
