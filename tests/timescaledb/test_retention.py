"""Retention: one job per table at the longest retention any source asks for, DELETE for shorter ones.

The jobs drop whole chunks in TimescaleDB's scheduler; the tests create them paused (a server's scheduler would run
none mid-test; PGlite has none) and run each one explicitly.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from apps.storage.backends import timescaledb_jobs
from apps.storage.tiers import TIER_1D, TIER_1H, TIER_1M, bucket_floor
from tests.storage.factories import points_store, series_create, source_create
from tests.timescaledb.helpers import materialized_rows, rollup_rows, rows, storage_reinstall, value


def _drop_after() -> dict[str, timedelta]:
    return dict(
        rows(
            "SELECT config->>'relation', (config->>'drop_after')::interval FROM timescaledb_information.jobs "
            "WHERE proc_name = 'storage_job_retention' AND config->>'relation' NOT LIKE '%%_labels'"
        )
    )


def _drop_after_labels() -> dict[str, timedelta]:
    return dict(
        rows(
            "SELECT config->>'relation', (config->>'drop_after')::interval FROM timescaledb_information.jobs "
            "WHERE proc_name = 'storage_job_retention' AND config->>'relation' LIKE '%%_labels'"
        )
    )


def _days(count: int) -> timedelta:
    return timedelta(days=count)


def test_a_longer_override_moves_the_policy_and_back(tsdb, settings):
    defaults = {"points": _days(90), "points_1m": _days(settings.STORAGE_ROLLUP_1M_RETENTION_DAYS),
                "points_1h": _days(settings.STORAGE_ROLLUP_1H_RETENTION_DAYS),
                "points_1d": _days(settings.STORAGE_ROLLUP_1D_RETENTION_DAYS)}  # fmt: skip
    assert _drop_after() == defaults
    keeper = source_create(slug="archive", raw_retention_days=200, rollup_1m_retention_days=120)
    source_create(slug="short", raw_retention_days=3)
    jobs_before = dict(rows("SELECT config->>'relation', job_id FROM timescaledb_information.jobs "
                            "WHERE proc_name = 'storage_job_retention'"))  # fmt: skip
    tiers = {"points_1m": 120, "points_1h": settings.STORAGE_ROLLUP_1H_RETENTION_DAYS,
             "points_1d": settings.STORAGE_ROLLUP_1D_RETENTION_DAYS}  # fmt: skip
    assert tsdb.retention_policies_sync() == {
        "points": 200,
        **tiers,
        **{f"{table}_labels": days for table, days in tiers.items()},
    }
    assert _drop_after() == {**defaults, "points": _days(200), "points_1m": _days(120)}
    jobs_after = dict(rows("SELECT config->>'relation', job_id FROM timescaledb_information.jobs "
                           "WHERE proc_name = 'storage_job_retention'"))  # fmt: skip
    # The same jobs, their configuration changed in place (one job per table, always).
    assert jobs_after == jobs_before
    assert _drop_after_labels()["points_1m_labels"] == _days(120)
    keeper.raw_retention_days = None
    keeper.rollup_1m_retention_days = None
    keeper.save()
    tsdb.retention_apply()  # syncs the policies too
    assert _drop_after() == defaults


@pytest.mark.parametrize("days", [1, 7, 30, 31, 365])
def test_policy_sync_is_idempotent_for_every_length(tsdb, settings, days):
    settings.STORAGE_ROLLUP_1M_RETENTION_DAYS = days
    tsdb.retention_policies_sync()
    assert _drop_after()["points_1m"] == _days(days)
    jobs = rows("SELECT job_id, config FROM timescaledb_information.jobs ORDER BY 1")
    tsdb.retention_policies_sync()
    assert rows("SELECT job_id, config FROM timescaledb_information.jobs ORDER BY 1") == jobs


@pytest.fixture
def short_and_normal(tsdb):
    """Two sources, one keeping raw points 3 days and 1-minute rollups 5 days; 3 points 8, 6, 4, 2 days ago."""
    short = source_create(slug="short", raw_retention_days=3, rollup_1m_retention_days=5)
    normal = source_create(slug="normal")
    ids = {name: series_create(source=source, metric="flow", pipe="p1") for name, source in
           [("short", short), ("normal", normal)]}  # fmt: skip
    today = bucket_floor(timezone.now(), 86_400)
    for series_id in ids.values():
        points_store(series_id, [(today - _days(age) + timedelta(hours=hour), 1.0) for age in [8, 6, 4, 2]
                                 for hour in range(3)])  # fmt: skip
    tsdb.rollup_refresh()
    return {**ids, "today": today}


def test_a_shorter_override_deletes_that_sources_old_rows_and_keeps_its_rollups(tsdb, short_and_normal):
    short_id, normal_id, today = short_and_normal["short"], short_and_normal["normal"], short_and_normal["today"]
    hours_before = rollup_rows(TIER_1H)

    result = tsdb.retention_apply()

    # Raw points of the short source older than 3 days are gone; the rest stays.
    assert result.deleted_rows["points"] == 3 * 3
    assert result.dropped_partitions == []
    raw_days = rows("SELECT series_id, count(*) FROM points GROUP BY 1 ORDER BY 1")
    assert dict(raw_days) == {short_id: 1 * 3, normal_id: 4 * 3}
    # Its 1-minute rollups older than 5 days are gone (from the materialized rows).
    assert result.deleted_rows["points_1m"] == 2 * 3
    minutes = rollup_rows(TIER_1M)
    assert sorted(bucket for series_id, bucket in minutes if series_id == short_id)[0] >= today - _days(5)
    assert len([key for key in minutes if key[0] == normal_id]) == 4 * 3
    # Hourly and daily rollups follow their own (default) retention, also after the next refresh: the
    # deletes must not invalidate the continuous aggregates, or the refresh would recompute those buckets
    # from the points that are gone.
    tsdb.rollup_refresh()
    assert rollup_rows(TIER_1H) == hours_before
    assert {key[0] for key in materialized_rows(TIER_1D)} == {short_id, normal_id}
    assert len([key for key in rollup_rows(TIER_1M) if key[0] == short_id]) == 2 * 3  # 4 and 2 days ago
    assert "points_1h" not in result.deleted_rows


def test_without_the_privilege_retention_still_deletes_and_says_what_it_costs(
    tsdb, short_and_normal, monkeypatch, caplog
):
    """Before TimescaleDB 2.23 the invalidation trigger is turned off with session_replication_role, which needs a
    grant; without it, retention deletes and warns (2.28+ has a setting that needs none)."""
    refused = "DO $$BEGIN RAISE EXCEPTION 'permission denied' USING ERRCODE = 'insufficient_privilege'; END$$"
    monkeypatch.setattr(timescaledb_jobs, "invalidation_skip_sql", lambda cursor: refused)
    short_id = short_and_normal["short"]

    with caplog.at_level(logging.WARNING, logger="apps.storage.backends.timescaledb"):
        result = tsdb.retention_apply()

    assert result.deleted_rows == {"points": 3 * 3, "points_1m": 2 * 3, "points_1m_labels": 2 * 3}
    assert "GRANT SET ON PARAMETER session_replication_role" in caplog.text
    # The cost: the refresh recomputes the short source's buckets from the points that are left.
    tsdb.rollup_refresh()
    assert len([key for key in rollup_rows(TIER_1H) if key[0] == short_id]) == 3  # only 2 days ago is left


def _chunk_count(table: str = "points") -> int:
    return value("SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = %s", [table])


def _lasts(tier) -> set[float]:
    """The `last` values of a tier's materialized rows (each test point's value is its age in days)."""
    return {row[4] for row in materialized_rows(tier).values()}


@pytest.fixture
def aged_points(tsdb):
    """One point 400, 120, 91, 89 and 1 days ago, materialized while an archive source kept 500 days.

    (The hourly tier is refreshed from the minutes only as far back as the minutes are kept.)
    """
    source = source_create(slug="archive", raw_retention_days=500, rollup_1m_retention_days=500)
    tsdb = storage_reinstall()  # installed with the archive's retention: nothing was ever dropped
    series_id = series_create(source=source, metric="flow", pipe="p1")
    today = bucket_floor(timezone.now(), 86_400)
    ages = [400, 120, 91, 89, 1]
    points_store(series_id, [(today - _days(age) + timedelta(hours=1), float(age)) for age in ages])
    tsdb.rollup_refresh()
    for tier in (TIER_1M, TIER_1H, TIER_1D):
        assert _lasts(tier) == {float(age) for age in ages}, tier
    source.raw_retention_days = source.rollup_1m_retention_days = None
    source.save()
    return source


def test_the_retention_job_drops_old_chunks_and_the_rollups_stay(tsdb, aged_points, settings):
    tsdb.retention_policies_sync()
    assert _chunk_count() == 5

    tsdb.retention_job_run("points")

    assert sorted(age for (age,) in rows("SELECT value FROM points")) == [1.0, 89.0]
    assert _chunk_count() == 2
    # TimescaleDB logs the dropped chunks as changed; the refresh must not reach back to them, or the
    # rollups (kept 90 days to 5 years) would be recomputed from nothing.
    tsdb.rollup_refresh()
    all_ages = {1.0, 89.0, 91.0, 120.0, 400.0}
    assert all(_lasts(tier) == all_ages for tier in (TIER_1M, TIER_1H, TIER_1D))
    # Each tier's own job applies its retention: 1-minute rollups are kept 90 days (whole 10-day chunks go).
    assert settings.STORAGE_ROLLUP_1M_RETENTION_DAYS == 90
    tsdb.retention_job_run("points_1m")
    assert {1.0, 89.0} <= _lasts(TIER_1M) <= {1.0, 89.0, 91.0}
    tsdb.rollup_refresh()  # the hourly tier reads the minutes: it must not follow their drop either
    tsdb.retention_job_run("points_1h")
    tsdb.retention_job_run("points_1d")
    assert _lasts(TIER_1H) == all_ages
    assert _lasts(TIER_1D) == all_ages


def test_a_longer_retention_after_a_drop_does_not_refresh_the_dropped_range(tsdb, aged_points):
    tsdb.retention_policies_sync()
    tsdb.retention_job_run("points")  # drops 400, 120 and 91 days ago
    aged_points.raw_retention_days = 500  # and back: the policy moves out again, past the dropped chunks
    aged_points.save()
    tsdb.retention_policies_sync()
    result = tsdb.rollup_refresh()
    assert result["refreshed_from"]["1m"] >= (timezone.now() - _days(91)).isoformat()
    assert _lasts(TIER_1M) == {1.0, 89.0, 91.0, 120.0, 400.0}
    # New late points inside the kept range are still rolled up.
    (series_id,) = {key[0] for key in materialized_rows(TIER_1M)}
    late = bucket_floor(timezone.now(), 86_400) - _days(10)
    points_store(series_id, [(late, 10.0)])
    tsdb.rollup_refresh()
    assert 10.0 in _lasts(TIER_1M)


@pytest.mark.parametrize("table", ["points", "points_1m", "points_1h", "points_1d"])
def test_every_table_has_a_runnable_retention_job(tsdb, table):
    tsdb.retention_job_run(table)  # finds the job by its name and table, and TimescaleDB runs it


# --- how retention deletes stay out of the invalidation logs, per TimescaleDB version --------------------------
def _statements(run) -> list[str]:
    """The SQL statements `run()` sent through Django's connection, as text."""
    sent: list[str] = []

    def capture(execute, statement, params, many, context):
        sent.append(statement if isinstance(statement, str) else statement.as_string(connection.connection))
        return execute(statement, params, many, context)

    with connection.execute_wrapper(capture):
        run()
    return sent


def test_this_build_skips_invalidations_through_its_trigger(tsdb, short_and_normal):
    """The WebAssembly build (a 2.23.0 development snapshot) still logs invalidations with a trigger."""
    sent = _statements(tsdb.retention_apply)
    assert "SET LOCAL session_replication_role = replica" in sent
    assert not any("skip_cagg_invalidation" in statement for statement in sent)


def test_a_server_with_the_skip_setting_uses_it(tsdb, short_and_normal, monkeypatch):
    """TimescaleDB 2.28+ has timescaledb.skip_cagg_invalidation (no privilege needed), preferred over the trigger.

    This build has no such setting: another boolean TimescaleDB setting stands in for it, so the lookup in
    pg_settings and the statement are real; that 2.28 then logs nothing was checked on a real server (the issue).
    """
    monkeypatch.setattr(timescaledb_jobs, "SKIP_SETTING", "timescaledb.enable_cagg_reorder_groupby")
    sent = _statements(tsdb.retention_apply)
    assert "SET LOCAL timescaledb.enable_cagg_reorder_groupby = on" in sent
    assert "SET LOCAL session_replication_role = replica" not in sent


def test_a_server_with_neither_refuses_to_install_and_to_delete(tsdb, short_and_normal):
    """TimescaleDB 2.23.0 to 2.27 record invalidations in C (no trigger) and have no setting to skip them: retention
    would destroy the rollups it keeps, so the backend refuses, saying which versions work."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER ts_cagg_invalidation_trigger ON points")  # what those versions look like
    with pytest.raises(ImproperlyConfigured, match=r"Use TimescaleDB 2\.29 or later"):
        tsdb.retention_apply()
    assert value("SELECT count(*) FROM points") == 2 * 4 * 3  # nothing was deleted
    with pytest.raises(ImproperlyConfigured, match="skip_cagg_invalidation"):
        tsdb.install()
