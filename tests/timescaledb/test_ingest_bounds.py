"""Ingest on TimescaleDB refuses points older than the source keeps raw points (90 days by default there), as on
plain PostgreSQL: a refresh over raw chunks already dropped would wipe the rollups built from them, so such a
backfill could never be rolled up. What is inside the horizon is stored and rolled up by the next refresh."""

from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone

from apps.storage.tiers import TIER_1H, bucket_floor
from tests.ingestion.factories import source_with_key, stored_points
from tests.timescaledb.helpers import materialized_rows


def test_a_backfill_older_than_the_raw_horizon_never_reaches_storage(tsdb, client):
    source, key = source_with_key(raw_retention_days=None)  # TimescaleDB's default: 90 days
    now = timezone.now().replace(microsecond=0)
    inside, outside = now - timedelta(days=89), now - timedelta(days=91)
    body = json.dumps([{"time": outside.isoformat(), "device": "d1", "v": 1.0},
                       {"time": inside.isoformat(), "device": "d1", "v": 2.0}])  # fmt: skip
    response = client.post(
        "/api/v1/sources/plant/ingest", body, content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert response.status_code == 200, response.content
    (error,) = response.json()["errors"]
    assert (error["code"], error["field"]) == ("time_out_of_range", "time")
    assert "keeps raw points (90 days)" in error["message"]
    assert [(point[2], point[3]) for point in stored_points(source=source)] == [(inside, 2.0)]
    tsdb.rollup_refresh()
    hour = bucket_floor(inside, 3600)
    assert [row[:2] for key, row in materialized_rows(TIER_1H).items() if key[1] == hour] == [(1, 2.0)]
