"""Compression: the policy compresses chunks older than STORAGE_COMPRESS_AFTER_DAYS, segmented by series.

Compressed chunks answer the same queries, take redeliveries (upsert) and late points, and feed the
continuous aggregates. Policies are run explicitly: PGlite has no background workers.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.storage.query.engine import query_execute
from apps.storage.query.spec import QuerySpec
from apps.storage.tiers import TIER_1H, bucket_floor
from tests.storage.factories import points_store, series_create, source_create
from tests.timescaledb.helpers import expected_rollups, rollup_rows, rows, value


def _chunks() -> dict:
    """{chunk range start: is_compressed} of the points hypertable."""
    return dict(
        rows(
            "SELECT range_start, is_compressed FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'points' ORDER BY range_start"
        )
    )


@pytest.fixture
def old_and_new(tsdb, settings):
    """Two series with a point every 5 minutes on 3 old days (to be compressed) and over the last 2 hours."""
    settings.STORAGE_COMPRESS_AFTER_DAYS = 7
    source = source_create(slug="plant")
    ids = [series_create(source=source, metric="power", meter=f"m{index}") for index in range(2)]
    today = bucket_floor(timezone.now(), 86_400)
    old_start = today - timedelta(days=12)
    truth = {}
    for number, series_id in enumerate(ids):
        old = [(old_start + timedelta(minutes=5 * step), float(step % 17 + number)) for step in range(3 * 288)]
        new = [(today + timedelta(minutes=5 * step), float(step + number)) for step in range(12)]
        new = [(moment, point) for moment, point in new if moment < timezone.now()]
        points_store(series_id, old + new)
        truth.update({(series_id, moment): point for moment, point in old + new})
    return {"ids": ids, "today": today, "old_start": old_start, "truth": truth}


def _answers(principal, start, end) -> dict:
    """Several engine queries over the data (every tier, raw points, a percentile from raw points)."""
    specs = {
        (aggregation, bucket): QuerySpec(
            metric="power", start=start, end=end, aggregation=aggregation, bucket_seconds=bucket, max_points=10_000
        )
        for aggregation, bucket in [("avg", 3600), ("sum", 86_400), ("max", 300), ("last", 21_600), ("p90", 3600)]
    }
    specs["raw"] = QuerySpec(metric="power", start=start, end=start + timedelta(hours=6), aggregation="raw")
    return {key: query_execute(spec=spec, principal=principal).series for key, spec in specs.items()}


def test_compression_job_compresses_old_chunks_only_and_answers_stay_the_same(tsdb, old_and_new, principal):
    tsdb.rollup_refresh()
    start, end = old_and_new["old_start"] - timedelta(days=1), timezone.now() + timedelta(hours=1)
    before = _answers(principal, start, end)
    assert not any(_chunks().values())

    tsdb.compression_job_run()

    chunks = _chunks()
    cutoff = timezone.now() - timedelta(days=7)
    assert chunks, "no chunks"
    for chunk_start, compressed in chunks.items():
        assert compressed is (chunk_start + timedelta(days=1) <= cutoff), (chunk_start, compressed)
    assert sum(chunks.values()) == 3
    assert _answers(principal, start, end) == before
    # The rollups refresh from compressed chunks too.
    tsdb.rollup_refresh()
    assert rollup_rows(TIER_1H) == expected_rollups(old_and_new["truth"], TIER_1H)
    assert _answers(principal, start, end) == before


def test_writes_into_a_compressed_chunk(tsdb, old_and_new, principal):
    tsdb.compression_job_run()
    series_id = old_and_new["ids"][0]
    old_start = old_and_new["old_start"]
    assert _chunks()[old_start] is True
    # A late point (a new key) and a redelivery with a changed value (an existing key, the upsert path).
    late = points_store(series_id, [(old_start + timedelta(minutes=2), 100.0)])
    assert late.upserted is False
    redelivered = points_store(series_id, [(old_start + timedelta(minutes=5), 50.0), (old_start, 0.0)])
    assert redelivered.upserted is True
    assert rows(
        "SELECT time, value FROM points WHERE series_id = %s AND time < %s ORDER BY time",
        [series_id, old_start + timedelta(minutes=10)],
    ) == [(old_start, 0.0), (old_start + timedelta(minutes=2), 100.0), (old_start + timedelta(minutes=5), 50.0)]
    stored = len([key for key in old_and_new["truth"] if key[0] == series_id])
    assert value("SELECT count(*) FROM points WHERE series_id = %s", [series_id]) == stored + 1
    tsdb.rollup_refresh()
    spec = QuerySpec(metric="power", start=old_start, end=old_start + timedelta(hours=1), aggregation="sum",
                     bucket_seconds=3600, fill="none")  # fmt: skip
    result = query_execute(spec=spec, principal=principal)
    assert result.tier == "1h"
    expected = sum(float(step % 17) for step in range(12)) - 0.0 + 100.0 - 1.0 + 50.0
    assert result.series[0]["points"] == [[old_start.isoformat().replace("+00:00", "Z"), expected]]
    # Compressing again (the policy recompresses what the writes decompressed) keeps the data.
    tsdb.compression_job_run()
    assert value("SELECT sum(value) FROM points WHERE series_id = %s AND time >= %s AND time < %s",
                 [series_id, old_start, old_start + timedelta(hours=1)]) == expected  # fmt: skip


def test_install_again_after_compression_is_a_no_op(tsdb, old_and_new):
    tsdb.compression_job_run()
    jobs = rows("SELECT job_id, config FROM timescaledb_information.jobs ORDER BY 1")
    tsdb.install()
    assert rows("SELECT job_id, config FROM timescaledb_information.jobs ORDER BY 1") == jobs
    assert sum(_chunks().values()) == 3
