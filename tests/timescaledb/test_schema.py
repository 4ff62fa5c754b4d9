"""What the migration installs on TimescaleDB: hypertable, hierarchical real-time aggregates, policies."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.storage.backends import backend_for
from apps.storage.backends.timescaledb import REFRESH_POLICIES, TimescaleBackend
from apps.storage.tiers import TIERS_FINE_TO_COARSE
from tests.timescaledb.helpers import rows, value

pytestmark = pytest.mark.django_db(transaction=True)


def test_migration_chose_and_recorded_timescaledb():
    assert value("SELECT value FROM storage_meta WHERE key = 'backend'") == "timescaledb"
    assert isinstance(backend_for(), TimescaleBackend)
    assert value("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").startswith("2.")


def test_points_is_a_hypertable_with_one_day_chunks():
    assert rows(
        "SELECT hypertable_name, num_dimensions FROM timescaledb_information.hypertables "
        "WHERE hypertable_schema = 'public'"
    ) == [("points", 1)]
    assert rows(
        "SELECT column_name, dimension_type, time_interval FROM timescaledb_information.dimensions "
        "WHERE hypertable_name = 'points'"
    ) == [("time", "Time", timedelta(days=1))]
    # The primary key makes redeliveries detectable (and upserts possible) on every chunk.
    primary_key = value(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'points'::regclass AND contype = 'p'"
    )
    assert primary_key == 'PRIMARY KEY (series_id, "time")'


def test_continuous_aggregates_are_hierarchical_and_real_time():
    found = {
        name: (materialized_only, definition)
        for name, materialized_only, definition in rows(
            "SELECT view_name, materialized_only, view_definition FROM timescaledb_information.continuous_aggregates"
        )
    }
    assert set(found) == {"points_1m", "points_1h", "points_1d"}
    assert all(materialized_only is False for materialized_only, _ in found.values())
    # Each tier is built from the one below it: raw -> 1m -> 1h -> 1d.
    for tier in TIERS_FINE_TO_COARSE:
        definition = found[tier.table][1]
        assert f"FROM {tier.source_table}" in " ".join(definition.split()), (tier.table, definition)
    columns = rows(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'points_1h'::regclass AND attnum > 0 ORDER BY attnum"
    )
    assert [name for (name,) in columns] == ["bucket", "series_id", "count", "sum", "min", "max", "last", "last_time"]


def test_refresh_policies_per_tier():
    # (jsonb comes back as text through Django's connection, so the config is read in SQL.)
    policies = {
        table: (start_offset, end_offset, schedule)
        for table, start_offset, end_offset, schedule in rows(
            "SELECT hypertable_name, (config->>'start_offset')::interval, (config->>'end_offset')::interval, "
            "schedule_interval FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_refresh_continuous_aggregate'"
        )
    }
    assert policies == {tier.table: REFRESH_POLICIES[tier] for tier in TIERS_FINE_TO_COARSE}


def test_compression_segments_by_series(settings):
    assert rows(
        "SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc "
        "FROM timescaledb_information.compression_settings WHERE hypertable_name = 'points' ORDER BY attname"
    ) == [("series_id", 1, None, None), ("time", None, 1, False)]
    assert rows(
        "SELECT (config->>'compress_after')::interval FROM timescaledb_information.jobs "
        "WHERE proc_name = 'policy_compression' AND hypertable_name = 'points'"
    ) == [(timedelta(days=settings.STORAGE_COMPRESS_AFTER_DAYS),)]


def test_retention_policies_have_the_global_defaults(settings):
    backend = backend_for()
    drop_after = {
        table: interval
        for table, interval in rows(
            "SELECT hypertable_name, (config->>'drop_after')::interval FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention'"
        )
    }
    assert drop_after == {
        "points": timedelta(days=90),
        "points_1m": timedelta(days=settings.STORAGE_ROLLUP_1M_RETENTION_DAYS),
        "points_1h": timedelta(days=settings.STORAGE_ROLLUP_1H_RETENTION_DAYS),
        "points_1d": timedelta(days=settings.STORAGE_ROLLUP_1D_RETENTION_DAYS),
    }
    assert backend.retention_days()["points"] == 90  # TimescaleDB compresses, so raw points are kept longer


def test_install_again_is_a_no_op(tsdb):
    jobs_before = rows("SELECT job_id, proc_name, hypertable_name, config FROM timescaledb_information.jobs ORDER BY 1")
    tsdb.install()
    tsdb.retention_policies_sync()
    assert rows("SELECT job_id, proc_name, hypertable_name, config FROM timescaledb_information.jobs ORDER BY 1") == (
        jobs_before
    )
