"""Known data for the demo dashboards' sources, so the browser tests know each headline number by construction.

Points sit every 4 minutes from 2 to 50 minutes ago and every 6 hours from 3 hours to 30 days ago: no point is
within minutes of a range's edge (1 hour, 7 days, 30 days), so the page and a later query see the same points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apps.dashboards.demo import BUSINESS, FACTORY, MARKETING
from apps.storage.services import points_write
from tests.ingestion.factories import source_with_key
from tests.storage.factories import series_create

DEVICES = (("press-1", "f1"), ("press-2", "f1"), ("pump-3", "f1"), ("press-4", "f2"))
FACTORY_METRICS = {"temperature": 60.0, "vibration": 2.0, "pressure": 5.0, "flow": 100.0, "power": 30.0}
PAGE_VIEWS = [
    (country, channel, segment) for country in ("US", "DE") for channel in ("web", "ios") for segment in ("b2b", "b2c")
]
PURCHASES = (("US", "b2c"), ("DE", "b2b"), ("FR", "b2c"))
ORDERS = (("emea", "tools"), ("amer", "tools"), ("amer", "parts"))


@dataclass
class DemoData:
    """What was written: (metric, labels, time, value) rows, to count and sum by construction."""

    now: datetime
    rows: list[tuple[str, str, dict, datetime, float]] = field(default_factory=list)

    def select(self, source: str, metric: str, since: timedelta, **labels: str) -> list[tuple[dict, datetime, float]]:
        start = self.now - since
        return [
            (row_labels, moment, value)
            for row_source, row_metric, row_labels, moment, value in self.rows
            if row_source == source
            and row_metric == metric
            and moment >= start
            and all(row_labels.get(key) == expected for key, expected in labels.items())
        ]


def _times(now: datetime) -> list[datetime]:
    recent = [now - timedelta(minutes=2 + 4 * step) for step in range(13)]
    older = [now - timedelta(hours=3 + 6 * step) for step in range(120)]
    return recent + older


def demo_data_write() -> DemoData:
    """Create the three demo sources and write their known points; returns what was written."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    data = DemoData(now=now)
    times = _times(now)
    sources = {slug: source_with_key(slug=slug)[0] for slug in (FACTORY, MARKETING, BUSINESS)}
    points = []

    def series(slug: str, metric: str, labels: dict, value_of) -> None:
        series_id = series_create(source=sources[slug], metric=metric, **labels)
        for index, moment in enumerate(times):
            value = value_of(index)
            points.append((series_id, moment, value))
            data.rows.append((slug, metric, labels, moment, value))

    for device_index, (device, facility) in enumerate(DEVICES):
        for metric, base in FACTORY_METRICS.items():
            labels = {"device": device, "facility": facility}
            series(
                FACTORY, metric, labels, lambda index, base=base, offset=device_index: base + offset + (index % 5) * 0.5
            )
    for country, channel, segment in PAGE_VIEWS:
        labels = {"event": "page_view", "country": country, "channel": channel, "segment": segment}
        series(MARKETING, "count", labels, lambda index: 1.0)
    for country, segment in PURCHASES:
        labels = {"event": "purchase", "country": country, "channel": "web", "segment": segment}
        series(MARKETING, "count", labels, lambda index: 1.0)
        series(MARKETING, "amount", labels, lambda index: 10.0 + (index % 3) * 5)
    series(MARKETING, "count", {"event": "signup", "country": "US", "channel": "web", "segment": "b2c"}, lambda i: 1.0)
    for region, product_line in ORDERS:
        labels = {"kind": "order", "region": region, "product_line": product_line, "currency": "EUR"}
        series(BUSINESS, "amount", labels, lambda index: 100.0 + index % 7)
        series(BUSINESS, "quantity", labels, lambda index: 1.0 + index % 3)
    for currency in ("EUR", "USD"):
        labels = {"kind": "invoice", "region": "emea", "product_line": "tools", "currency": currency}
        series(BUSINESS, "amount", labels, lambda index: 1000.0)
    points_write(points=points)
    return data
