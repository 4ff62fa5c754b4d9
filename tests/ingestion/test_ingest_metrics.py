"""Ingest figures on /metrics: per-process counters, and rates and connector lag read from Redis."""

from __future__ import annotations

import json
import re

import pytest

from apps.ingestion.metrics import connector_state_publish
from apps.ingestion.stats import WINDOW_SECONDS, stats_record
from tests.factories import DEFAULT_ORGANIZATION_SLUG as ORG
from tests.ingestion.factories import source_with_key

pytestmark = pytest.mark.django_db


def _value(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_ingested_and_refused_records_show_on_metrics(client, django_capture_on_commit_callbacks):
    _, key = source_with_key(slug="metered", schema_mode="strict", schema={"measures": {"t": {"max": 5}}})
    before = client.get("/metrics").content.decode()
    stored_before = (
        _value(before, "analytics_ingest_points_total", organization=ORG, source="metered", transport="http") or 0
    )
    records = [{"time": "2026-01-01T00:00:00Z", "t": 1}, {"time": "2026-01-01T00:00:01Z", "t": 9}]
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/api/v1/sources/metered/ingest", json.dumps(records), content_type="application/json",
                               headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert response.json()["rejected"] == 1, response.content
    text = client.get("/metrics").content.decode()
    # Counted after the commit only: a batch whose transaction rolls back is never counted.
    assert (
        _value(text, "analytics_ingest_points_total", organization=ORG, source="metered", transport="http") or 0
    ) == stored_before
    for callback in callbacks:
        callback()
    text = client.get("/metrics").content.decode()
    assert (
        _value(text, "analytics_ingest_points_total", organization=ORG, source="metered", transport="http")
        == stored_before + 1
    )
    assert (
        _value(text, "analytics_ingest_rejected_total", code="out_of_range", organization=ORG, source="metered") or 0
    ) >= 1


def test_rates_and_connector_lag_come_from_redis(client):
    source, _ = source_with_key(slug="rated")
    # A full minute of complete windows, so the rate is 600 points over 60 s; the window in progress has 100 too,
    # so the figure is the same if the clock enters the next window before the scrape.
    import time

    now = time.time()
    for back in range(7):
        stats_record(source_id=source.pk, points=100, records=100, rejected=0, now=now - back * WINDOW_SECONDS)
    connector_state_publish(connector="mqtt:rated", lag=12, lag_seconds=0.5, batches=3)
    text = client.get("/metrics").content.decode()
    assert _value(text, "analytics_ingest_points_per_second", source="rated") == pytest.approx(10.0)
    assert _value(text, "analytics_connector_lag", connector="mqtt:rated") == 12.0
    assert _value(text, "analytics_connector_lag_seconds", connector="mqtt:rated") == 0.5


def test_sources_of_two_organisations_with_one_slug_are_told_apart_on_metrics(client):
    """Slugs are unique per organisation only: two samples labelled source="plant" would make Prometheus refuse the
    whole scrape, so a shared slug is labelled with its organisation."""
    import time

    acme, _ = source_with_key(slug="plant", organization="acme")
    beta, _ = source_with_key(slug="plant", organization="beta")
    source_with_key(slug="alone", organization="beta")
    now = time.time()
    for source, points in ((acme, 100), (beta, 300)):
        for back in range(7):
            moment = now - back * WINDOW_SECONDS
            stats_record(source_id=source.pk, points=points, records=points, rejected=0, now=moment)
    text = client.get("/metrics").content.decode()
    assert _value(text, "analytics_ingest_points_per_second", source="acme/plant") == pytest.approx(10.0)
    assert _value(text, "analytics_ingest_points_per_second", source="beta/plant") == pytest.approx(30.0)
    assert _value(text, "analytics_ingest_points_per_second", source="alone") == 0.0
    assert _value(text, "analytics_ingest_points_per_second", source="plant") is None


def test_the_ingest_counters_of_two_organisations_sharing_a_slug_count_apart(
    client, django_capture_on_commit_callbacks
):
    """The per-process counters carry the organisation too: before, two tenants' "plant" added into one sample."""
    _, acme_key = source_with_key(slug="plant", organization="acme")
    _, beta_key = source_with_key(slug="plant", organization="beta")
    before = client.get("/metrics").content.decode()
    counts = {org: _value(before, "analytics_ingest_points_total", organization=org, source="plant", transport="http")
              or 0 for org in ("acme", "beta")}  # fmt: skip
    for key, points in ((acme_key, 1), (beta_key, 3)):
        records = [{"time": f"2026-01-01T00:00:0{index}Z", "t": index} for index in range(points)]
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/api/v1/sources/plant/ingest", json.dumps(records), content_type="application/json",
                                   headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        assert response.status_code in (200, 202, 204), response.content
    text = client.get("/metrics").content.decode()
    for org, points in (("acme", 1), ("beta", 3)):
        answered = _value(text, "analytics_ingest_points_total", organization=org, source="plant", transport="http")
        assert answered == counts[org] + points, org
