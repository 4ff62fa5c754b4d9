"""What the migration installs on TimescaleDB: hypertable, hierarchical real-time aggregates (per series and per
label value), and one job per maintenance task with one owner each."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from apps.storage.backends import backend_for
from apps.storage.backends.timescaledb import TABLES, TimescaleBackend
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
    labels = {tier.labels_table for tier in TIERS_FINE_TO_COARSE}
    assert set(found) == {"points_1m", "points_1h", "points_1d"} | labels
    assert all(materialized_only is False for materialized_only, _ in found.values())
    # Each tier is built from the one below it: raw -> 1m -> 1h -> 1d; label tiers from 1m joined to the labels.
    sources = {"points_1m_labels": "points_1m", "points_1h_labels": "points_1m_labels",
               "points_1d_labels": "points_1h_labels"}  # fmt: skip
    for tier in TIERS_FINE_TO_COARSE:
        for table, source in ((tier.table, tier.source_table), (tier.labels_table, sources[tier.labels_table])):
            definition = " ".join(found[table][1].split())
            assert re.search(rf"FROM \(?{source} ", definition), (table, definition)
    assert "JOIN storage_series_labels" in " ".join(found["points_1m_labels"][1].split())
    columns = rows(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'points_1h'::regclass AND attnum > 0 ORDER BY attnum"
    )
    assert [name for (name,) in columns] == ["bucket", "series_id", "count", "sum", "min", "max", "last", "last_time"]
    columns = rows(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'points_1h_labels'::regclass AND attnum > 0 ORDER BY attnum"
    )
    assert [name for (name,) in columns] == [
        "bucket", "source_id", "metric", "label_key", "label_value", "count", "sum", "min", "max", "last", "last_time",
    ]  # fmt: skip


def _jobs() -> dict[tuple[str, str | None], tuple]:
    """{(procedure, relation): (schedule, scheduled, config as text)} of every job but TimescaleDB's own upkeep."""
    return {
        (proc_name, relation): (schedule, scheduled, config)
        for proc_name, relation, schedule, scheduled, config in rows(
            "SELECT proc_name, coalesce(config->>'relation', hypertable_name), schedule_interval, scheduled, "
            "config::text FROM timescaledb_information.jobs WHERE proc_schema <> '_timescaledb_functions' "
            "OR proc_name LIKE 'policy_%%' AND proc_name <> 'policy_job_stat_history_retention'"
        )
    }


def test_one_owner_per_job_and_no_refresh_policy():
    """The app refreshes (rollup_refresh); TimescaleDB's scheduler drops and compresses, with jobs of ours that take
    the maintenance lock first; TimescaleDB's own policies (which deadlocked with the app's refresh) are gone."""
    jobs = _jobs()
    assert set(jobs) == {("storage_job_compression", "points")} | {("storage_job_retention", table) for table in TABLES}
    assert not any(proc_name.startswith("policy_") for proc_name, _ in jobs)
    assert jobs[("storage_job_compression", "points")][0] == timedelta(hours=12)
    assert all(schedule == timedelta(hours=1) for (name, _), (schedule, _, _) in jobs.items() if "retention" in name)
    # The test settings create them paused (a real server's scheduler would run none mid-test) ...
    assert {scheduled for _, scheduled, _ in jobs.values()} == {False}


def test_in_production_the_scheduler_runs_the_jobs(tsdb, settings):
    settings.STORAGE_TIMESCALEDB_JOBS_SCHEDULED = True
    tsdb.install()
    assert {scheduled for _, scheduled, _ in _jobs().values()} == {True}


def test_an_install_from_before_moves_the_policies_to_our_jobs(tsdb):
    """Databases installed with TimescaleDB's refresh, compression and retention policies lose them on migrate."""
    rows("SELECT add_continuous_aggregate_policy('points_1m', INTERVAL '6 hours', INTERVAL '1 minute', "
         "INTERVAL '1 minute')")  # fmt: skip
    rows("SELECT add_retention_policy('points_1h', INTERVAL '1825 days')")
    rows("SELECT add_compression_policy('points', INTERVAL '7 days')")
    before = _jobs()
    assert ("policy_retention", "points_1h") in before
    tsdb.install()
    assert not any(proc_name.startswith("policy_") for proc_name, _ in _jobs())


def test_compression_segments_by_series(settings):
    assert rows(
        "SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc "
        "FROM timescaledb_information.compression_settings WHERE hypertable_name = 'points' ORDER BY attname"
    ) == [("series_id", 1, None, None), ("time", None, 1, False)]
    assert rows(
        "SELECT (config->>'compress_after')::interval FROM timescaledb_information.jobs "
        "WHERE proc_name = 'storage_job_compression' AND config->>'relation' = 'points'"
    ) == [(timedelta(days=settings.STORAGE_COMPRESS_AFTER_DAYS),)]


def test_retention_policies_have_the_global_defaults(settings):
    backend = backend_for()
    drop_after = {
        table: interval
        for table, interval in rows(
            "SELECT config->>'relation', (config->>'drop_after')::interval FROM timescaledb_information.jobs "
            "WHERE proc_name = 'storage_job_retention'"
        )
    }
    tiers = {
        "points_1m": timedelta(days=settings.STORAGE_ROLLUP_1M_RETENTION_DAYS),
        "points_1h": timedelta(days=settings.STORAGE_ROLLUP_1H_RETENTION_DAYS),
        "points_1d": timedelta(days=settings.STORAGE_ROLLUP_1D_RETENTION_DAYS),
    }
    # Label tiers keep what their per-series tier keeps.
    assert drop_after == {"points": timedelta(days=90), **tiers, **{f"{table}_labels": days for table, days in
                                                                    tiers.items()}}  # fmt: skip
    assert backend.retention_days()["points"] == 90  # TimescaleDB compresses, so raw points are kept longer


def test_install_again_is_a_no_op(tsdb):
    jobs_before = rows("SELECT job_id, proc_name, hypertable_name, config FROM timescaledb_information.jobs ORDER BY 1")
    tsdb.install()
    tsdb.retention_policies_sync()
    assert rows("SELECT job_id, proc_name, hypertable_name, config FROM timescaledb_information.jobs ORDER BY 1") == (
        jobs_before
    )
