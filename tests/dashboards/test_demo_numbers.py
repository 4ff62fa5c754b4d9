"""The demo dashboards show numbers that are right by construction: the demo's history is generated (as `make demo`
does, with the same code, only shorter and smaller), written through the ingest service the API uses, and for every
panel that adds, counts or takes extremes, what the query API answers for the panel's query equals what the
generated records say, per group. Real PostgreSQL and Redis."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command

from apps.dashboards.demo import demo_documents
from apps.ingestion.models import PayloadFormat, Transport
from apps.ingestion.parsers.json_records import json_records_parse
from apps.ingestion.services import batch_ingest
from apps.ingestion.simulator.history import demo_history_write
from apps.sources.models import Source
from tests.conftest import api_client_for
from tests.factories import user_create

pytestmark = pytest.mark.django_db

# What the panels' aggregations mean over a set of records, for those whose total over any range is exact.
REDUCERS = {
    "sum": lambda values: sum(values),
    "count": lambda values: len(values),
    "max": lambda values: max(values),
    "min": lambda values: min(values),
}


class RecordingSink:
    """Writes each batch through the ingest service the HTTP endpoint calls, and keeps the records."""

    def __init__(self, records: dict[str, list[dict[str, Any]]]) -> None:
        self.records = records
        self.sources = {source.slug: source.id for source in Source.objects.all()}

    def write(self, *, source_slug: str, records: list[dict[str, Any]]) -> None:
        result = batch_ingest(
            source_id=self.sources[source_slug],
            parsed=json_records_parse(json.dumps(records).encode()),
            transport=Transport.HTTP,
            payload_format=PayloadFormat.JSON,
        )
        assert result.rejected == 0, result.errors[:3]
        self.records[source_slug].extend(records)

    def close(self) -> None:
        """Nothing is buffered."""


@pytest.fixture
def demo_history():
    """A day of demo history for 5 machines and 0.5 events/s, ending on the hour; returns (records, start, end)."""
    admin = user_create(username="admin", organization="demo", role="admin")
    call_command("demo_data", verbosity=0)
    assert Source.objects.get(slug="demo-factory").organization.slug == "demo"
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    sink = RecordingSink(records)
    demo_history_write(
        sink_factory=lambda: sink,
        now=end,
        days=1,
        seed=7,
        devices=5,
        event_rate=0.5,
        report=lambda line: None,
        parallel=False,
    )
    return admin, records, end - timedelta(days=1), end


def _matches(record: dict[str, Any], filters: dict[str, Any]) -> bool:
    return all(record.get(label) == value for label, value in filters.items())


def _expected(records, query: dict[str, Any], start: datetime, end: datetime) -> dict[tuple, float]:
    groups: dict[tuple, list[float]] = defaultdict(list)
    for record in records[query["source"]]:
        # Compared as instants: as text, "10:00:00.5Z" sorts before "10:00:00Z" (a point half a second after the
        # end counted in, one half a second after the start left out: this test failed now and then by 2 events).
        moment = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
        if not start <= moment < end or query["metric"] not in record:
            continue
        if not _matches(record, query.get("filters", {})):
            continue
        key = tuple(record.get(label) for label in query.get("group_by", []))
        groups[key].append(float(record[query["metric"]]))
    return {key: REDUCERS[query["aggregation"]](values) for key, values in groups.items()}


def _answered(client, query: dict[str, Any], start: datetime, end: datetime) -> dict[tuple, float]:
    spec = {**query, "start": start.isoformat(), "end": end.isoformat(), "bucket": "1h", "limit": 1000}
    response = client.post("/api/v1/query", spec, format="json")
    assert response.status_code == 200, response.content
    answered: dict[tuple, float] = {}
    additive = query["aggregation"] in ("sum", "count")
    reduce = REDUCERS[query["aggregation"]]
    # Without group_by every series answers on its own (as in Grafana); a panel combines them as its aggregation
    # does: counts and sums add up over buckets and series, extremes take the extreme.
    for series in response.json()["series"]:
        values = [value for _, value in series["points"] if value is not None]
        key = tuple(series["labels"].get(label) for label in query.get("group_by", []))
        if key in answered:
            values.append(answered[key])
        answered[key] = sum(values) if additive else reduce(values)
    return answered


def test_every_additive_panel_of_every_demo_dashboard_answers_what_the_data_says(demo_history):
    admin, records, start, end = demo_history
    client = api_client_for(admin)
    checked = []
    for document in demo_documents():
        for panel in document["panels"]:
            for item in panel["queries"]:
                query = {key: value for key, value in item["query"].items() if key not in ("bucket", "start", "limit")}
                if query["aggregation"] not in REDUCERS:
                    continue
                query["filters"] = {
                    label: ("f1" if value == "$facility" else value)
                    for label, value in query.get("filters", {}).items()
                }
                expected = _expected(records, query, start, end)
                assert expected, f"{document['title']} / {panel['title']}: the demo data has nothing for {query}"
                answered = _answered(client, query, start, end)
                assert answered.keys() == expected.keys(), f"{document['title']} / {panel['title']}"
                for key, value in expected.items():
                    assert answered[key] == pytest.approx(value, rel=1e-9), (document["title"], panel["title"], key)
                checked.append((document["title"], panel["key"], item["ref"]))
    titles = {title for title, _, _ in checked}
    assert titles == {"Factory floor", "Marketing", "Executive"}
    assert len(checked) >= 20, checked


def test_the_latest_value_per_machine_is_the_last_generated_one(demo_history):
    admin, records, _start, end = demo_history
    last: dict[str, dict[str, Any]] = {}
    for record in records["demo-factory"]:
        if record["facility"] == "f1":
            last[record["device"]] = record  # oldest first, so the last one stays
    spec = {"source": "demo-factory", "metric": "temperature", "aggregation": "last", "group_by": ["device"],
            "filters": {"facility": "f1"}, "start": (end - timedelta(minutes=5)).isoformat(), "end": end.isoformat(),
            "bucket": "5m"}  # fmt: skip
    response = api_client_for(admin).post("/api/v1/query", spec, format="json")
    answered = {series["labels"]["device"]: series["points"][-1][1] for series in response.json()["series"]}
    assert answered == {device: pytest.approx(record["temperature"]) for device, record in last.items()}
    assert len(answered) == 1  # 5 machines over 5 facilities: one in f1
