"""Builders for dashboard tests: valid documents and dashboards made through the service."""

from __future__ import annotations

import copy
from typing import Any

from apps.dashboards.models import Dashboard
from apps.dashboards.services import dashboard_create
from tests.factories import DEFAULT_ORGANIZATION_SLUG, organization_get


def panel_document(*, key: str = "p1", panel_type: str = "timeseries", y: int = 0, **changes: Any) -> dict[str, Any]:
    """A valid timeseries panel reading demo-factory temperature filtered by $facility."""
    panel = {
        "key": key,
        "title": f"Panel {key}",
        "type": panel_type,
        "queries": [
            {
                "ref": "A",
                "axis": "left",
                "query": {
                    "source": "demo-factory",
                    "metric": "temperature",
                    "aggregation": "avg",
                    "bucket": "1m",
                    "group_by": ["device"],
                    "filters": {"facility": "$facility"},
                },
            }
        ],
        "options": {"style": "lines", "unit": "°C", "decimals": 1, "thresholds": [{"value": 80, "color": "red"}]},
        "grid": {"x": 0, "y": y, "w": 6, "h": 8},
    }
    panel.update(changes)
    return panel


def dashboard_document(*, title: str = "Plant", panels: int = 2, **changes: Any) -> dict[str, Any]:
    """A valid document in canonical form (what export returns), with `panels` timeseries panels."""
    document = {
        "schema_version": 1,
        "title": title,
        "folder": "Ops",
        "tags": ["factory"],
        "variables": [
            {
                "name": "facility",
                "label": "Facility",
                "source": "demo-factory",
                "metric": "temperature",
                "label_key": "facility",
                "multi": True,
                "default": ["f1"],
            }
        ],
        "time_range": {"start": "-6h", "end": "now"},
        "refresh": "live",
        "panels": [panel_document(key=f"p{index + 1}", y=index * 8) for index in range(panels)],
    }
    document.update(copy.deepcopy(changes))
    return document


def dashboard_make(
    *, title: str = "Plant", owner=None, organization: str = DEFAULT_ORGANIZATION_SLUG, **changes: Any
) -> Dashboard:
    """A dashboard created through the service from `dashboard_document`."""
    return dashboard_create(
        organization=organization_get(slug=organization),
        owner=owner,
        document=dashboard_document(title=title, **changes),
    )
