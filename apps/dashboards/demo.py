"""Demo dashboards over the simulator's sources (demo-factory, demo-marketing, demo-business).

Metrics follow apps/ingestion/simulator/scenarios.py: in infer mode numbers become metrics and strings labels, so
factory records give temperature, vibration, pressure, flow and power by device and facility; marketing records
give `count` (1 per event) and `amount` (purchases only) by event, segment, channel and country; business records
give amount, quantity (orders) and days_to_due (invoices) by kind, region, product_line and currency.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from apps.access.models import Organization
from apps.dashboards.documents import dashboard_document_clean
from apps.dashboards.models import Dashboard
from apps.dashboards.services import dashboard_create, dashboard_save

FACTORY = "demo-factory"
MARKETING = "demo-marketing"
BUSINESS = "demo-business"
_FACILITY = {"facility": "$facility"}
# A total over the range across every series (counts and sums), and one total per series (bars, pies, tables).
# Totals read the picked range from its start down to a whole minute, whatever their bucket, so panels with
# different buckets total the same span (engine.aggregate_start).
_TOTAL = {"calculation": "sum", "combination": "sum"}
_PER_SERIES_TOTAL = {"calculation": "sum", "combination": "none"}
# Where a machine runs hot: the temperature panels turn orange there, and the demo's "Hot machine" alert rule
# (apps/alerts/demo.py) fires above it, so what a panel shows and what alerts agree. The simulator's machines run
# between about 60 and 80 °C: the hottest minutes of some cross it.
HOT_MACHINE_CELSIUS = 78
_TEMPERATURE_THRESHOLDS = [
    {"value": None, "color": "green"},
    {"value": HOT_MACHINE_CELSIUS, "color": "orange", "label": "warn"},
    {"value": 90, "color": "red", "label": "critical"},
]


def _query(
    source: str,
    metric: str,
    aggregation: str = "avg",
    ref: str = "A",
    axis: str = "left",
    legend: str = "",
    **spec: Any,
) -> dict[str, Any]:
    query = {
        "ref": ref,
        "axis": axis,
        "query": {"source": source, "metric": metric, "aggregation": aggregation, **spec},
    }
    return {**query, "legend": legend} if legend else query


def _panel(key: str, title: str, panel_type: str, grid: tuple[int, int, int, int], queries=(), **options: Any):
    x, y, w, h = grid
    return {
        "key": key,
        "title": title,
        "type": panel_type,
        "queries": list(queries),
        "options": options,
        "grid": {"x": x, "y": y, "w": w, "h": h},
    }


def _factory_floor() -> dict[str, Any]:
    # Each stat: the latest minute of every machine, combined as its title says (the hottest, or the mean).
    stats = [
        ("temperature", "Hottest machine", "max", {"unit": "°C", "thresholds": _TEMPERATURE_THRESHOLDS,
                                                   "combination": "max"}),
        ("vibration", "Vibration", "avg", {"unit": "mm/s", "combination": "mean", "thresholds": [
            {"value": None, "color": "green"}, {"value": 7, "color": "orange"}, {"value": 12, "color": "red"}]}),
        ("pressure", "Pressure", "avg", {"unit": "bar", "combination": "mean", "thresholds": [
            {"value": None, "color": "red"}, {"value": 4, "color": "orange"}, {"value": 5, "color": "green"}]}),
        ("power", "Power per machine", "avg", {"unit": "kW", "combination": "mean",
                                               "thresholds": [{"value": None, "color": "blue"}]}),
    ]  # fmt: skip
    panels = [
        _panel(
            f"stat-{metric}", title, "stat", (index * 3, 0, 3, 4),
            [_query(FACTORY, metric, aggregation, bucket="1m", filters=_FACILITY)],
            sparkline=True, calculation="last_not_null", decimals=1, **options,
        )
        for index, (metric, title, aggregation, options) in enumerate(stats)
    ]  # fmt: skip
    panels += [
        # The "Hot machine" rule's alerts (apps/alerts/demo.py), most urgent first, live.
        _panel("machine-alerts", "Machine alerts", "alertlist", (0, 4, 12, 5), alert_limit=20),
        _panel(
            "temperature-by-device", "Temperature by device", "timeseries", (0, 9, 8, 9),
            [_query(FACTORY, "temperature", bucket="10s", group_by=["device"], filters=_FACILITY, limit=50)],
            style="lines", unit="°C", decimals=1, thresholds=_TEMPERATURE_THRESHOLDS,
        ),
        _panel(
            "power-gauge", "Power per machine", "gauge", (8, 9, 4, 9),
            [_query(FACTORY, "power", bucket="1m", filters=_FACILITY)],
            unit="kW", decimals=1, min=0, max=80, calculation="last_not_null", combination="mean",
            thresholds=[{"value": None, "color": "green"}, {"value": 55, "color": "orange"},
                        {"value": 70, "color": "red"}],
        ),
        _panel(
            "vibration-pressure", "Vibration and pressure by facility", "timeseries", (0, 18, 12, 8),
            [
                _query(FACTORY, "vibration", bucket="1m", group_by=["facility"], filters=_FACILITY,
                       legend="vibration {facility}"),
                _query(FACTORY, "pressure", ref="B", axis="right", bucket="1m", group_by=["facility"],
                       filters=_FACILITY, legend="pressure {facility}"),
            ],
            style="lines", unit="mm/s", unit_right="bar", decimals=2,
        ),
        _panel(
            "machine-state", "Machine state (from power)", "state_timeline", (0, 26, 12, 10),
            [_query(FACTORY, "power", bucket="1m", group_by=["device"], filters=_FACILITY, limit=50)],
            # A machine drawing under 1 kW is stopped; under 8 kW it idles; above that it runs.
            states={"0": {"label": "down", "color": "red"}, "1": {"label": "idle", "color": "orange"},
                    "8": {"label": "running", "color": "green"}},
        ),
        _panel(
            # One row per device (joined by its labels), one column per metric: each metric's latest value.
            "latest-by-device", "Latest values by device", "table", (0, 36, 12, 10),
            [
                {**_query(FACTORY, metric, "last", ref=ref, start="-5m", bucket="1m", group_by=["device", "facility"],
                          filters=_FACILITY, limit=100, legend=metric), "unit": unit}
                for ref, metric, unit in zip(
                    "ABCDE", ("temperature", "vibration", "pressure", "flow", "power"),
                    ("°C", "mm/s", "bar", "l/min", "kW"), strict=True,
                )
            ],
            decimals=2, table_mode="join", calculation="last_not_null", combination="none",
        ),
        _panel(
            "temperature-heatmap", "Temperature heatmap", "heatmap", (0, 46, 12, 10),
            [_query(FACTORY, "temperature", bucket="1m", group_by=["device"], filters=_FACILITY, limit=100)],
            unit="°C", decimals=1, min=20, max=100, color_scheme="inferno",
        ),
    ]  # fmt: skip
    return {
        "title": "Factory floor",
        "folder": "Demo",
        "tags": ["demo", "factory"],
        "variables": [
            {
                "name": "facility",
                "label": "Facility",
                "source": FACTORY,
                "metric": "temperature",
                "label_key": "facility",
                "multi": True,
                "default": ["f1"],
            },
        ],
        "time_range": {"start": "-1h", "end": "now"},
        "refresh": "live",
        "panels": panels,
    }


def _marketing() -> dict[str, Any]:
    panels = [
        _panel("events-total", "Events", "stat", (0, 0, 3, 4),
               [_query(MARKETING, "count", "sum", bucket="5m")], sparkline=True, decimals=0, **_TOTAL),
        _panel("purchases-total", "Purchases", "stat", (3, 0, 3, 4),
               [_query(MARKETING, "amount", "count", bucket="5m")], sparkline=True, decimals=0, **_TOTAL),
        _panel("revenue-total", "Revenue", "stat", (6, 0, 3, 4),
               [_query(MARKETING, "amount", "sum", bucket="5m")], sparkline=True, decimals=0, **_TOTAL),
        _panel("signups-total", "Signups", "stat", (9, 0, 3, 4),
               [_query(MARKETING, "count", "sum", bucket="5m", filters={"event": "signup"})],
               sparkline=True, decimals=0, **_TOTAL),
        # Per bucket: a minute over the last hours, wider over days (the hover says which), so no "per minute" title.
        _panel("events-by-segment", "Events by segment", "timeseries", (0, 4, 8, 8),
               [_query(MARKETING, "count", "sum", bucket="1m", group_by=["segment"], legend="{segment}")],
               style="areas", stack=True, decimals=0),
        _panel("revenue-by-segment-share", "Revenue by segment", "pie", (8, 4, 4, 8),
               [_query(MARKETING, "amount", "sum", bucket="5m", group_by=["segment"], legend="{segment}")],
               decimals=0, **_PER_SERIES_TOTAL),
        _panel("revenue-per-minute", "Revenue and purchases", "timeseries", (0, 12, 8, 8),
               # amount exists on purchases only: grouping by event sums every series into one line.
               [_query(MARKETING, "amount", "sum", bucket="1m", group_by=["event"], legend="revenue"),
                _query(MARKETING, "amount", "count", ref="B", axis="right", bucket="1m", group_by=["event"],
                       legend="purchases")],
               style="bars", decimals=0, unit_right="purchases", overrides=[{"match": "purchases", "style": "lines"}]),
        _panel("events-by-channel", "Events by channel", "bar", (8, 12, 4, 8),
               [_query(MARKETING, "count", "sum", bucket="5m", group_by=["channel"], legend="{channel}")],
               decimals=0, **_PER_SERIES_TOTAL),
        _panel("purchases-by-country", "Purchases by country", "table", (0, 20, 12, 8),
               [_query(MARKETING, "amount", "count", bucket="5m", group_by=["country"], legend="purchases"),
                _query(MARKETING, "amount", "sum", ref="B", bucket="5m", group_by=["country"], legend="revenue")],
               decimals=0, table_mode="join", **_PER_SERIES_TOTAL),
    ]  # fmt: skip
    return {
        "title": "Marketing",
        "folder": "Demo",
        "tags": ["demo", "marketing"],
        "variables": [],
        "time_range": {"start": "-3h", "end": "now"},
        "refresh": "live",
        "panels": panels,
    }


def _executive() -> dict[str, Any]:
    invoices = {"kind": "invoice"}
    orders = {"kind": "order"}
    notes = (
        "## How to read this dashboard\n\n"
        "* **Invoiced revenue** sums `amount` of ERP invoices per day, split by currency (EUR and USD are not "
        "converted).\n"
        "* **Orders** counts ERP orders per day by region; weekends are quiet by design.\n"
        "* **Web revenue** is purchases on the website and apps (source `demo-marketing`).\n\n"
        "Daily buckets are UTC days. Data comes from the demo simulator: `manage.py simulate --scenario all`."
    )
    # The stats total the range the picker chose (30 days by default): their titles name no period of their own.
    panels = [
        _panel("invoiced-total", "Invoiced", "stat", (0, 0, 3, 4),
               [_query(BUSINESS, "amount", "sum", bucket="1d", filters=invoices)],
               sparkline=True, decimals=0, **_TOTAL),
        _panel("orders-total", "Orders", "stat", (3, 0, 3, 4),
               [_query(BUSINESS, "amount", "count", bucket="1d", filters=orders)],
               sparkline=True, decimals=0, **_TOTAL),
        _panel("web-revenue-total", "Web revenue", "stat", (6, 0, 3, 4),
               [_query(MARKETING, "amount", "sum", bucket="1d")], sparkline=True, decimals=0, **_TOTAL),
        _panel("hottest-machine", "Peak temperature", "stat", (9, 0, 3, 4),
               [_query(FACTORY, "temperature", "max", bucket="1d")], sparkline=True, decimals=1,
               calculation="max", combination="max", unit="°C", thresholds=_TEMPERATURE_THRESHOLDS),
        _panel("revenue-per-day", "Invoiced revenue per day", "timeseries", (0, 4, 8, 8),
               [_query(BUSINESS, "amount", "sum", bucket="1d", filters=invoices, group_by=["currency"],
                       legend="{currency}")],
               style="bars", stack=True, decimals=0),
        _panel("notes", "Notes", "text", (8, 4, 4, 16), markdown=notes),
        _panel("orders-per-day", "Orders per day by region", "timeseries", (0, 12, 8, 8),
               [_query(BUSINESS, "amount", "count", bucket="1d", filters=orders, group_by=["region"],
                       legend="{region}")],
               style="bars", stack=True, decimals=0),
        _panel("order-value-by-line", "Order value by product line", "bar", (0, 20, 6, 8),
               [_query(BUSINESS, "amount", "sum", bucket="1d", filters=orders, group_by=["product_line"],
                       legend="{product_line}")],
               decimals=0, **_PER_SERIES_TOTAL),
        _panel("web-revenue-per-day", "Web revenue and signups per day", "timeseries", (6, 20, 6, 8),
               [_query(MARKETING, "amount", "sum", bucket="1d", group_by=["event"], legend="revenue"),
                _query(MARKETING, "count", "sum", ref="B", axis="right", bucket="1d", filters={"event": "signup"},
                       group_by=["event"], legend="signups")],
               style="lines", decimals=0, unit_right="signups"),
    ]  # fmt: skip
    return {
        "title": "Executive",
        "folder": "Demo",
        "tags": ["demo", "business"],
        "variables": [],
        "time_range": {"start": "-30d", "end": "now"},
        "refresh": "5m",
        "panels": panels,
    }


DEMO_DOCUMENTS = (_factory_floor, _marketing, _executive)


def demo_documents() -> list[dict[str, Any]]:
    """The demo dashboards' documents: Factory floor, Marketing, Executive."""
    return [build() for build in DEMO_DOCUMENTS]


DEMO_MESSAGE = "Demo dashboard"
DEMO_UPDATE_MESSAGE = "Demo dashboard updated"


@transaction.atomic
def demo_dashboards_create(*, organization: Organization, owner: AbstractBaseUser | None) -> list[Dashboard]:
    """Create the demo dashboards in the organisation; returns all three.

    One the organisation already has (by title) is brought up to this release's document when nobody has changed
    it since the demo saved it (its current version is the demo's), so `make demo` on an existing database shows
    the fixed panels; one a person has saved since is theirs and left alone.
    """
    dashboards = []
    for document in demo_documents():
        existing = Dashboard.objects.filter(organization=organization, title=document["title"]).first()
        if existing is None:
            dashboards.append(
                dashboard_create(organization=organization, owner=owner, document=document, message=DEMO_MESSAGE)
            )
            continue
        current = existing.versions.filter(version=existing.version).first()
        by_demo = current is not None and current.message in (DEMO_MESSAGE, DEMO_UPDATE_MESSAGE)
        if by_demo and current.document != dashboard_document_clean(document):
            existing = dashboard_save(dashboard=existing, document=document, user=None, message=DEMO_UPDATE_MESSAGE)
        dashboards.append(existing)
    return dashboards
