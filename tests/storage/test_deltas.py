"""Late points as deltas (plain PostgreSQL): cheap to write, exact to query, folded by the refresh in bounded
steps without holding up live refreshes, visible as a backlog on /metrics, and safe beside re-aggregating writes."""

from __future__ import annotations

import threading
from datetime import timedelta

import pyarrow as pa
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from psycopg import sql

from apps.storage.backends import backend_for, postgres
from apps.storage.backends.deltas import deltas_fold, label_delta_table
from apps.storage.columns import PointColumns, time_micros
from apps.storage.query.engine import query_execute
from apps.storage.query.spec import QuerySpec
from apps.storage.selectors import rollup_backlog
from apps.storage.services import points_write
from apps.storage.tiers import BUCKET_ORIGIN, TIER_1M, TIERS_FINE_TO_COARSE, bucket_floor
from tests.factories import user_create
from tests.storage.conftest import storage_tables_reset
from tests.storage.factories import series_create, source_create
from tests.storage.races import writes_during_paused_step
from tests.waiting import database_thread, lock_waiters, wait_for


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (a fixed table name)
        return cursor.fetchone()[0]


def _raw_hourly_sums(start, end) -> dict:
    """The same answer computed from the raw points, the way the oracle would: per device, per hour."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.labels->>'device', date_bin('1 hour', p.time, %s), sum(p.value) FROM points p "
            "JOIN storage_series s ON s.id = p.series_id WHERE p.time >= %s AND p.time < %s "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            [BUCKET_ORIGIN, bucket_floor(start, 3600), end],
        )
        sums: dict = {}
        for device, moment, value in cursor.fetchall():
            sums.setdefault(device, []).append([moment.isoformat().replace("+00:00", "Z"), value])
        return sums


def _hourly_sums(user, start, end) -> dict:
    spec = QuerySpec(metric="m", start=start, end=end, aggregation="sum", bucket_seconds=3600, fill="none",
                     max_points=10_000, limit=100, group_by=("device",))  # fmt: skip
    return {item["labels"]["device"]: item["points"] for item in query_execute(spec=spec, principal=user).series}


@pytest.fixture
def plant(db, settings):
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 60
    now = bucket_floor(timezone.now(), 60)
    storage_tables_reset(watermark=now - timedelta(days=3))
    source = source_create(slug="deltas")
    ids = [series_create(source=source, metric="m", device=f"d{index}") for index in range(3)]
    user = user_create(username="reader")
    start = now - timedelta(days=3)
    # Three days of one point per series per 10 minutes, rolled up.
    points_write(points=[(series_id, start + timedelta(minutes=10 * step), 1.0) for series_id in ids
                         for step in range(3 * 144)])  # fmt: skip
    backend_for().rollup_refresh(now=now)
    return {"ids": ids, "user": user, "start": start, "now": now}


def test_a_backfill_is_appended_and_answered_exactly_before_and_after_the_fold(
    plant, django_capture_on_commit_callbacks
):
    start, now, ids = plant["start"], plant["now"], plant["ids"]
    assert _hourly_sums(plant["user"], start, now) == _raw_hourly_sums(start, now)
    backfill = [(series_id, start + timedelta(minutes=10 * step, seconds=30), 2.0) for series_id in ids
                for step in range(3 * 144)]  # fmt: skip
    rows_before = _count("points_1h")
    with django_capture_on_commit_callbacks(execute=True):  # as if committed: cached query buckets are dropped
        points_write(points=backfill)
    assert _count("points_1h") == rows_before  # the write re-aggregated nothing
    assert _count("points_1m_delta") == len(backfill)
    expected = _raw_hourly_sums(start, now)
    assert _hourly_sums(plant["user"], start, now) == expected  # read from rows plus deltas
    # A bounded drain folds a part and leaves the rest: the answer stays exact in between.
    folded, left = backend_for().deltas_drain(seconds=0, rows_per_transaction=100)
    assert left
    assert folded > 0
    assert _hourly_sums(plant["user"], start, now) == expected
    backend_for().deltas_drain(seconds=60)
    assert _count("points_1m_delta") == 0
    assert _hourly_sums(plant["user"], start, now) == expected


def test_a_drain_step_folds_the_most_recently_written_deltas_and_keeps_the_oldest(plant):
    """The drain sweeps a delta table from its heap's end (TID ranges, no sort of the table): the last backfill
    written goes first, the first one stays until the sweep reaches it, and answers are exact at each step."""
    start, now, ids = plant["start"], plant["now"], plant["ids"]
    first_day = [(series_id, start + timedelta(minutes=10 * step, seconds=30), 2.0) for series_id in ids
                 for step in range(144)]  # fmt: skip
    last_hour = [(ids[0], now - timedelta(hours=2, minutes=-minute, seconds=-45), 3.0) for minute in range(50)]
    points_write(points=first_day)
    points_write(points=last_hour)
    expected = _raw_hourly_sums(start, now)
    folded, left = backend_for().deltas_drain(seconds=0, rows_per_transaction=100)
    assert folded > 0
    assert left
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), min(bucket) FROM points_1m_delta WHERE bucket >= %s", [start])
        remaining, oldest = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM points_1m_delta WHERE bucket >= %s", [now - timedelta(hours=2)])
        assert cursor.fetchone()[0] == 0  # the last write's deltas are folded
    assert 0 < remaining < len(first_day)
    assert oldest == bucket_floor(first_day[0][1], 60)  # the first write's first deltas are still there
    assert _hourly_sums(plant["user"], start, now) == expected


def test_deltas_written_while_a_sweep_goes_on_are_folded_by_the_next_one(plant):
    """Pages appended behind a sweep's start are the next sweep's: the drain ends only when no delta is left."""
    start, now, ids = plant["start"], plant["now"], plant["ids"]
    points_write(points=[(ids[0], start + timedelta(minutes=minute, seconds=30), 2.0) for minute in range(2000)])
    assert backend_for().deltas_drain(seconds=0, rows_per_transaction=100)[1]  # a sweep under way
    points_write(points=[(ids[1], start + timedelta(minutes=minute, seconds=40), 4.0) for minute in range(2000)])
    expected = _raw_hourly_sums(start, now)
    assert _hourly_sums(plant["user"], start, now) == expected
    assert backend_for().deltas_drain(seconds=60, rows_per_transaction=100)[1] is False
    for table in ("points_1m_delta", "points_1m_labels_delta", "points_1h_labels_delta", "points_1d_labels_delta"):
        assert _count(table) == 0, table
    assert _hourly_sums(plant["user"], start, now) == expected


def _pending() -> frozenset[str]:
    with connection.cursor() as cursor:
        return backend_for().deltas_pending(cursor)


def _hourly_sql(user, start, end) -> str:
    spec = QuerySpec(metric="m", start=start, end=end, aggregation="sum", bucket_seconds=3600, fill="none",
                     max_points=10_000, limit=100, group_by=("device",))  # fmt: skip
    return query_execute(spec=spec, principal=user).sql


def test_queries_read_a_delta_table_only_while_its_pending_flag_is_set(plant, django_capture_on_commit_callbacks):
    """A late write flags the tables it appends to; the drain clears a flag once the table is empty, and queries
    then leave the table (and its dead rows) alone, with the same exact answer."""
    start, now, ids = plant["start"], plant["now"], plant["ids"]
    assert _pending() == frozenset()  # the plant's points were live when written: no deltas
    assert "_delta" not in _hourly_sql(plant["user"], start, now)
    with django_capture_on_commit_callbacks(execute=True):  # as if committed: cached query buckets are dropped
        points_write(points=[(ids[0], start + timedelta(minutes=minute, seconds=30), 2.0) for minute in range(600)])
    every = {"points_1m_delta", "points_1m_labels_delta", "points_1h_labels_delta", "points_1d_labels_delta"}
    assert _pending() == every
    assert "_delta" in _hourly_sql(plant["user"], start, now)
    expected = _raw_hourly_sums(start, now)
    assert _hourly_sums(plant["user"], start, now) == expected
    # The 1-day label deltas (2 rows) are emptied at once, the per-series minutes are not.
    backend_for().deltas_drain(seconds=0, rows_per_transaction=100)
    assert "points_1d_labels_delta" not in _pending()
    assert "points_1m_delta" in _pending()
    backend_for().deltas_drain(seconds=60)
    assert _pending() == frozenset()
    assert "_delta" not in _hourly_sql(plant["user"], start, now)
    assert _hourly_sums(plant["user"], start, now) == expected
    with django_capture_on_commit_callbacks(execute=True):  # the next late write flags them again
        points_write(points=[(ids[1], start + timedelta(seconds=45), 7.0)])
    assert {"points_1m_delta", "points_1d_labels_delta"} <= _pending()
    assert _hourly_sums(plant["user"], start, now) == _raw_hourly_sums(start, now)


def test_a_backlog_does_not_hold_up_the_live_refresh(plant, settings, monkeypatch):
    settings.STORAGE_DELTAS_DRAIN_SECONDS = 0  # one drain transaction a run, so the backlog outlives the run
    monkeypatch.setattr(postgres, "DELTAS_FOLD_ROWS", 100)
    start, now, ids = plant["start"], plant["now"], plant["ids"]
    points_write(points=[(ids[0], start + timedelta(seconds=second), 5.0) for second in range(30, 86_400, 60)])
    points_write(points=[(ids[1], now + timedelta(seconds=5), 9.0)])  # live
    result = backend_for().rollup_refresh(now=now + timedelta(minutes=3))
    assert result["watermark"] == (now + timedelta(minutes=2)).isoformat()  # the watermark moved on first
    assert result["deltas_left"] is True
    assert result["deltas_folded"] > 0


def test_the_backlog_is_on_metrics(plant, client):
    start, ids = plant["start"], plant["ids"]
    points_write(points=[(ids[0], start + timedelta(seconds=15), 5.0)])
    text = client.get("/metrics").content.decode()
    assert 'analytics_rollup_deltas_pending{tier="1m"} 1.0' in text
    assert 'analytics_rollup_deltas_pending{tier="1d_labels"} 1.0' in text
    assert "analytics_rollup_deltas_oldest_bucket_age_seconds" in text
    backend_for().deltas_drain(seconds=60)
    assert 'analytics_rollup_deltas_pending{tier="1m"} 0.0' in client.get("/metrics").content.decode()


def test_a_backlog_scrape_reads_only_the_flagged_delta_tables_once_each(plant):
    """The delta tables have no index: a scrape during a backfill scanned millions of rows twice per table (count,
    then oldest bucket). It reads a table only while its pending flag is set, in one pass."""
    start, ids = plant["start"], plant["ids"]
    with CaptureQueriesContext(connection) as idle:
        assert set(rollup_backlog().values()) == {(0, None)}
    assert not [query for query in idle.captured_queries if '_delta"' in query["sql"]]
    points_write(points=[(ids[0], start + timedelta(minutes=minute, seconds=15), 5.0) for minute in range(90)])
    flagged = _pending()
    with CaptureQueriesContext(connection) as scrape:
        backlog = rollup_backlog()
    assert backlog["1m"][0] == 90
    assert backlog["1m"][1] > 3 * 86_400 - 120
    scanned = [query["sql"] for query in scrape.captured_queries if '_delta"' in query["sql"]]
    assert len(scanned) == len(flagged)
    backend_for().deltas_drain(seconds=60)
    assert set(rollup_backlog().values()) == {(0, None)}


def _one_series_rolled_up(settings, slug: str):
    """A series with one point an hour ago, rolled up (the watermark a minute back): (its id, now, that minute)."""
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 60
    now = bucket_floor(timezone.now(), 60)
    storage_tables_reset(watermark=now - timedelta(hours=2))
    series_id = series_create(source=source_create(slug=slug), metric="m", device="d1")
    minute = now - timedelta(hours=1)
    points_write(points=[(series_id, minute, 1.0)])
    backend_for().rollup_refresh(now=now)
    return series_id, now, minute


@pytest.mark.django_db(transaction=True)
def test_a_re_aggregating_write_waits_for_open_delta_writers_and_counts_each_point_once(
    settings, storage_committed_cleanup
):
    """A write that replaces points recomputes its buckets from raw points after folding the deltas: a delta writer
    still open would have its point counted by the recomputation and again by its delta. It waits instead."""
    series_id, _, minute = _one_series_rolled_up(settings, "race")
    errors: list[BaseException] = []
    written, release = threading.Event(), threading.Event()

    def delta_writer() -> None:
        with transaction.atomic():
            backend_for().points_write([(series_id, minute + timedelta(seconds=20), 2.0)])  # new: a delta
            written.set()
            release.wait(10)

    def replacing_writer() -> None:
        written.wait(10)
        assert backend_for().points_write([(series_id, minute, 10.0)]).upserted  # replaces the 1.0

    threads = [database_thread(delta_writer, errors), database_thread(replacing_writer, errors)]
    for thread in threads:
        thread.start()
    wait_for(lambda: lock_waiters() >= 1, timeout=10, what="the replacing write waiting for the open delta writer")
    release.set()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    backend_for().deltas_drain(seconds=60)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count, sum FROM points_1m WHERE series_id = %s AND bucket = %s", [series_id, minute])
        assert cursor.fetchone() == (2, 12.0)


@pytest.mark.django_db(transaction=True)
def test_a_drain_vacuums_each_delta_table_it_empties(settings, storage_committed_cleanup):
    """Folded deltas are dead rows that every query's pending check would walk: the drain VACUUMs a table as soon as
    it has emptied it (the 1-day label deltas here, while the 1-minute ones still wait), which truncates it."""
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 60
    now = bucket_floor(timezone.now(), 60)
    storage_tables_reset(watermark=now - timedelta(days=3))
    series_id = series_create(source=source_create(slug="vacuum"), metric="m", device="d1")
    start = now - timedelta(days=3)
    points_write(points=[(series_id, start + timedelta(minutes=minute), 1.0) for minute in range(3 * 1440)])
    backend_for().rollup_refresh(now=now)
    points_write(points=[(series_id, start + timedelta(minutes=minute, seconds=30), 2.0) for minute in range(3 * 1440)])
    assert _count("points_1d_labels_delta") == 3  # one per day: emptied by the first drain transaction
    folded, left = backend_for().deltas_drain(seconds=0, rows_per_transaction=100)
    assert folded > 0
    assert left

    def pages(table: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_relation_size(%s::regclass)", [table])
            return cursor.fetchone()[0]

    assert pages("points_1d_labels_delta") == 0  # vacuumed and truncated
    assert pages("points_1m_delta") > 0
    assert backend_for().deltas_drain(seconds=60)[1] is False
    assert pages("points_1m_delta") == pages("points_1h_labels_delta") == 0


def _tier_rows(table: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT series_id, bucket, count, sum, min, max, last, last_time FROM {table}")  # noqa: S608
        return {(row[0], row[1]): row[2:] for row in cursor.fetchall()}


def _raw_rows(seconds: int, below) -> dict:
    """Every series' (count, sum, min, max, last, last_time) per bucket of `seconds`, from the raw points."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT series_id, date_bin(%s, time, %s) AS b, count(*), sum(value), min(value), max(value), "
            "(array_agg(value ORDER BY time DESC))[1], max(time) FROM points WHERE time < %s GROUP BY 1, 2",
            [timedelta(seconds=seconds), BUCKET_ORIGIN, below],
        )
        return {(row[0], row[1]): row[2:] for row in cursor.fetchall()}


def test_per_series_deltas_are_minutes_folded_into_every_tier_they_belong_to(plant):
    """A late write appends one per-series row per (series, minute), not one per tier; the drain adds each to its
    minute, hour and day where those are materialized, so every stored row then equals the raw points' aggregate,
    and daily and hourly answers are exact before the fold too (hours and days read the minutes' deltas)."""
    start, now, ids = plant["start"], plant["now"], plant["ids"]
    backfill = [(series_id, start + timedelta(minutes=7 * step, seconds=20), float(step % 13)) for series_id in ids
                for step in range(3 * 1440 // 7)]  # fmt: skip
    before = {table: _tier_rows(table) for table in ("points_1h", "points_1d")}
    points_write(points=backfill)
    assert _count("points_1m_delta") == len(backfill)  # one point per series and minute here: one row each
    assert {table: _tier_rows(table) for table in ("points_1h", "points_1d")} == before  # nothing re-aggregated
    daily = QuerySpec(metric="m", start=start, end=now, aggregation="sum", bucket_seconds=86_400, fill="none",
                      max_points=10_000, limit=100, group_by=("device",))  # fmt: skip
    watermark = backend_for().watermark()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.labels->>'device', date_bin('1 day', p.time, %s), sum(p.value) FROM points p "
            "JOIN storage_series s ON s.id = p.series_id WHERE p.time >= %s AND p.time < %s GROUP BY 1, 2",
            [BUCKET_ORIGIN, start, now],
        )
        raw_daily = {(device, day.isoformat().replace("+00:00", "Z")): value
                     for device, day, value in cursor.fetchall()}  # fmt: skip
    answered = {(item["labels"]["device"], moment): value
                for item in query_execute(spec=daily, principal=plant["user"]).series
                for moment, value in item["points"]}  # fmt: skip
    assert answered == raw_daily
    assert backend_for().deltas_drain(seconds=60)[1] is False
    for table, seconds in (("points_1m", 60), ("points_1h", 3600), ("points_1d", 86_400)):
        limit = bucket_floor(watermark, seconds)
        stored = {key: row for key, row in _tier_rows(table).items() if key[1] < limit}
        assert stored == _raw_rows(seconds, limit), table  # small integers: float sums are exact


def test_an_old_database_s_hour_and_day_deltas_are_folded_and_dropped_on_install(plant):
    """Databases written before per-series deltas were minutes only have hour and day delta tables: installing the
    storage again folds what they hold into their tiers and drops them."""
    start, ids = plant["start"], plant["ids"]
    hour = bucket_floor(start, 3600) + timedelta(hours=2)
    row = _tier_rows("points_1h")[(ids[0], hour)]
    with connection.cursor() as cursor:
        for table in ("points_1h_delta", "points_1d_delta"):
            cursor.execute(f"CREATE TABLE {table} (LIKE points_1m_delta)")
        cursor.execute(
            "INSERT INTO points_1h_delta VALUES (%s, %s, 2, 7.0, 3.0, 4.0, 4.0, %s)",
            [hour, ids[0], hour + timedelta(minutes=59)],
        )
        cursor.execute("INSERT INTO storage_meta (key, value) VALUES ('deltas_pending:points_1h_delta', 't') "
                       "ON CONFLICT (key) DO NOTHING")  # fmt: skip
    backend_for().deltas_install()
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('points_1h_delta'), to_regclass('points_1d_delta')")
        assert cursor.fetchone() == (None, None)
        cursor.execute("SELECT count(*) FROM storage_meta WHERE key = 'deltas_pending:points_1h_delta'")
        assert cursor.fetchone()[0] == 0
    count, total, low, high, _, _ = row
    assert _tier_rows("points_1h")[(ids[0], hour)] == (
        count + 2,
        total + 7.0,
        min(low, 3.0),
        max(high, 4.0),
        4.0,
        hour + timedelta(minutes=59),
    )


_MERGED = sql.SQL(
    "SELECT key, bucket, sum(count), sum(sum), min(min), max(max), (array_agg(last ORDER BY last_time DESC))[1], "
    "max(last_time) FROM ({rows} UNION ALL {deltas}) AS merged "
    "WHERE bucket < (SELECT date_bin(%(width)s, watermark, %(origin)s) FROM storage_rollup_watermark) GROUP BY 1, 2"
)
_RAW = sql.SQL(
    "SELECT {key}, date_bin(%(width)s, p.time, %(origin)s) AS bucket, count(*), sum(p.value), min(p.value), "
    "max(p.value), (array_agg(p.value ORDER BY p.time DESC))[1], max(p.time) FROM points p "
    "JOIN storage_series s ON s.id = p.series_id "
    "WHERE p.time < (SELECT date_bin(%(width)s, watermark, %(origin)s) FROM storage_rollup_watermark) GROUP BY 1, 2"
)


def _by_key(statement: sql.Composed, tier) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(statement, {"width": tier.interval, "origin": BUCKET_ORIGIN})
        return {(row[0], row[1]): row[2:] for row in cursor.fetchall()}


def _every_tier_equals_raw() -> None:
    """Every materialized per-series row and facility label row of every tier, merged with its pending deltas (as
    a query reads them), equals the raw points' aggregate (small integers: float sums are exact)."""
    columns = sql.SQL("count, sum, min, max, last, last_time")
    for tier in TIERS_FINE_TO_COARSE:
        series = _MERGED.format(
            rows=sql.SQL("SELECT series_id AS key, bucket, {} FROM {}").format(columns, sql.Identifier(tier.table)),
            deltas=sql.SQL("SELECT series_id, date_bin(%(width)s, bucket, %(origin)s), {} FROM points_1m_delta").format(
                columns
            ),
        )
        assert _by_key(series, tier) == _by_key(_RAW.format(key=sql.SQL("p.series_id")), tier), tier.name
        labels = _MERGED.format(
            rows=sql.SQL("SELECT label_value AS key, bucket, {} FROM {} WHERE label_key = 'facility'").format(
                columns, sql.Identifier(tier.labels_table)
            ),
            deltas=sql.SQL("SELECT label_value, bucket, {} FROM {} WHERE label_key = 'facility'").format(
                columns, sql.Identifier(label_delta_table(tier))
            ),
        )
        assert _by_key(labels, tier) == _by_key(_RAW.format(key=sql.SQL("s.labels->>'facility'")), tier), tier.name


def _shaped(shape: str, points: list) -> list | PointColumns:
    """Points as tuples, or as the columns the line-protocol and JSON parsers hand over (sorted by series, time)."""
    if shape == "tuples":
        return points
    return PointColumns.build(
        pa.array([point[0] for point in points], pa.int32()),
        pa.array([time_micros(point[1]) for point in points], pa.int64()),
        pa.array([point[2] for point in points], pa.float64()),
    )


@pytest.mark.parametrize("shape", ["tuples", "columns"])
@pytest.mark.parametrize("drained", ["nothing", "series deltas", "label deltas"])
def test_a_redelivery_amid_pending_deltas_recomputes_only_what_it_touched_and_stays_exact(db, settings, drained, shape):
    """A redelivery (its points replace stored ones) below the watermark, while late points' deltas wait: per
    series, per label cell and in every tier the answer stays exact, whichever kind of delta the drain had folded,
    and it folds none of the backlog: only the per-series deltas of the minutes it recomputed from raw are gone.
    The same whether the points come as tuples or as parsers' columns (grouped with numpy on that path)."""
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 60
    now = bucket_floor(timezone.now(), 60)
    start = bucket_floor(now - timedelta(days=3), 86_400)
    storage_tables_reset(watermark=start)
    source = source_create(slug="redelivery")
    ids = [series_create(source=source, metric="m", device=f"d{index}", facility=f"f{index % 2}") for index in range(4)]
    points_write(points=[(series_id, start + timedelta(minutes=10 * step, seconds=index), float(step % 5))
                         for index, series_id in enumerate(ids) for step in range(2 * 144)])  # fmt: skip
    backend_for().rollup_refresh(now=now)
    with connection.cursor() as cursor:
        cursor.execute("SELECT label_key, ready FROM storage_label_rollup WHERE source_id = %s", [source.pk])
        assert dict(cursor.fetchall()) == {"device": True, "facility": True}
    # Late new points (deltas) on both days, every series, in minutes that hold points and in new ones.
    late = [(series_id, start + timedelta(days=day, hours=hour, minutes=minute, seconds=30 + index), index + 1.0)
            for index, series_id in enumerate(ids) for day in (0, 1) for hour in (3, 7)
            for minute in (0, 10, 25)]  # fmt: skip
    assert not points_write(points=_shaped(shape, late)).upserted
    if drained != "nothing":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT watermark FROM storage_rollup_watermark FOR UPDATE")
            if drained == "series deltas":
                deltas_fold(cursor, TIER_1M, labels=False, condition=sql.SQL("TRUE"), parameters={})
            else:
                for tier in TIERS_FINE_TO_COARSE:
                    deltas_fold(cursor, tier, labels=True, condition=sql.SQL("TRUE"), parameters={})
    _every_tier_equals_raw()
    before = _count("points_1m_delta")
    # The redelivery: two series' late points of day 0, 03:00 (other values), and one stored point of day 0.
    again = [(series_id, moment, value * 10) for series_id, moment, value in late
             if series_id in ids[:2] and moment < start + timedelta(days=1, hours=-20)]  # fmt: skip
    again.append((ids[0], start + timedelta(minutes=30), 42.0))
    again.append((ids[0], start + timedelta(minutes=30), 43.0))  # the same key again in the batch: the last wins
    assert points_write(points=_shaped(shape, again)).upserted
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT value FROM points WHERE series_id = %s AND time = %s", [ids[0], start + timedelta(minutes=30)]
        )
        assert cursor.fetchone() == (43.0,)
    _every_tier_equals_raw()
    # The minutes it touched that had a pending delta: 2 series x 3 late minutes (the 00:30 minute has none).
    expected = before if drained == "series deltas" else before - 2 * 3
    assert _count("points_1m_delta") == expected  # nothing else folded: day 1's and 07:00's deltas wait
    backend_for().deltas_drain(seconds=60)
    assert _count("points_1m_delta") == 0
    _every_tier_equals_raw()


def _pending_flag(table: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM storage_meta WHERE key = %s", [f"deltas_pending:{table}"])
        row = cursor.fetchone()
        return row and row[0]


@pytest.mark.django_db(transaction=True)
def test_a_drain_step_holds_up_no_write_and_a_delta_appended_meanwhile_waits_for_a_later_step(
    settings, storage_committed_cleanup, monkeypatch
):
    """A drain step excludes the refresh (the watermark row) and other drains, but neither live nor late writes:
    under a backfill's drain, late writers waited for every step (p95 about 0.5 s). A delta a late writer commits
    while the step is open is not in the step's snapshot: it stays, flagged pending, and a later step folds it."""
    series_id, now, minute = _one_series_rolled_up(settings, "drain-lock")
    assert points_write(points=[(series_id, minute + timedelta(seconds=10), 2.0)]).late_buckets  # a delta
    in_step, release = threading.Event(), threading.Event()
    fold_step = postgres.DeltasSweep.fold_step
    outcome: list[tuple[int, bool]] = []

    def paused_step(self, cursor, tier, **options):
        changed = fold_step(self, cursor, tier, **options)
        if not options["labels"]:  # the step's last fold: the per-series minutes
            in_step.set()
            release.wait(20)
        return changed

    monkeypatch.setattr(postgres.DeltasSweep, "fold_step", paused_step)
    writes_during_paused_step(
        lambda: outcome.append(backend_for().deltas_drain(seconds=0)), in_step=in_step, release=release,
        what="drain step", late_waits=False,
        live=lambda: points_write(points=[(series_id, now + timedelta(seconds=5), 3.0)]),
        late=lambda: points_write(points=[(series_id, minute + timedelta(seconds=20), 4.0)]),
    )  # fmt: skip
    monkeypatch.undo()
    [(folded, left)] = outcome
    assert folded > 0  # the first delta
    assert left  # the one appended meanwhile, and said so
    assert _count("points_1m_delta") == 1
    assert _pending_flag("points_1m_delta") == "t"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count, sum FROM points_1m WHERE series_id = %s AND bucket = %s", [series_id, minute])
        assert cursor.fetchone() == (2, 3.0)
    assert backend_for().deltas_drain(seconds=60)[1] is False
    assert _pending_flag("points_1m_delta") == "f"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count, sum FROM points_1m WHERE series_id = %s AND bucket = %s", [series_id, minute])
        assert cursor.fetchone() == (3, 7.0)


@pytest.mark.django_db(transaction=True)
def test_two_drains_take_turns(settings, storage_committed_cleanup, monkeypatch):
    """Drain steps share the late-write lock with writers, not with each other: a second drain (another worker's
    refresh run) waits for the open step instead of updating the same rows beside it, and each delta counts once."""
    series_id, _, minute = _one_series_rolled_up(settings, "drain-turns")
    points_write(points=[(series_id, minute + timedelta(seconds=10), 2.0)])
    in_step, release = threading.Event(), threading.Event()
    fold_step = postgres.DeltasSweep.fold_step

    def paused_step(self, cursor, tier, **options):
        changed = fold_step(self, cursor, tier, **options)
        if not in_step.is_set():
            in_step.set()
            release.wait(20)
        return changed

    monkeypatch.setattr(postgres.DeltasSweep, "fold_step", paused_step)
    errors: list[BaseException] = []
    second_done = threading.Event()
    first = database_thread(lambda: backend_for().deltas_drain(seconds=0), errors)
    first.start()
    assert in_step.wait(10)
    second = database_thread(lambda: (backend_for().deltas_drain(seconds=0), second_done.set()), errors)
    second.start()
    try:
        # The drain lock, not a row's: without it the second drain's fold would wait for the first's rows too,
        # later, in whatever order it met them.
        wait_for(lambda: lock_waiters("advisory") == 1, timeout=10, what="the second drain waiting for the drain lock")
        assert not second_done.is_set()
    finally:
        release.set()
        for thread in (first, second):
            thread.join(20)
    assert not errors, errors
    assert second_done.is_set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count, sum FROM points_1m WHERE series_id = %s AND bucket = %s", [series_id, minute])
        assert cursor.fetchone() == (2, 3.0)


@pytest.mark.django_db(transaction=True)
def test_the_drain_clears_a_pending_flag_only_with_no_delta_writer_open(
    settings, storage_committed_cleanup, monkeypatch
):
    """Once a step finds a table empty, a short transaction of its own, holding the late-write lock exclusively,
    checks it again and clears its flag: late writers wait for that one (live ones do not), and a delta committed
    between the step and the check keeps the flag set, so queries go on reading the table."""
    series_id, now, minute = _one_series_rolled_up(settings, "drain-settle")
    assert points_write(points=[(series_id, minute + timedelta(seconds=10), 2.0)]).late_buckets
    settle = postgres.PostgresBackend._deltas_pending_settle
    step_done, go_on = threading.Event(), threading.Event()

    def settle_after_a_write(self, tables):
        step_done.set()
        go_on.wait(20)
        return settle(self, tables)

    # A late write commits after the step emptied the table, before the check.
    monkeypatch.setattr(postgres.PostgresBackend, "_deltas_pending_settle", settle_after_a_write)
    errors: list[BaseException] = []
    outcome: list[tuple[int, bool]] = []
    drain = database_thread(lambda: outcome.append(backend_for().deltas_drain(seconds=0)), errors)
    drain.start()
    assert step_done.wait(10)
    points_write(points=[(series_id, minute + timedelta(seconds=20), 4.0)])
    go_on.set()
    drain.join(20)
    assert not errors, errors
    [(folded, left)] = outcome
    assert folded > 0
    assert left  # its step found the table empty; the check found the write's delta
    assert _count("points_1m_delta") == 1
    assert _pending_flag("points_1m_delta") == "t"
    monkeypatch.undo()
    # The check itself, held open: late writes wait for it, live ones do not.
    clear = postgres.deltas_pending_clear
    in_check, release = threading.Event(), threading.Event()

    def paused_clear(cursor, tables):
        clear(cursor, tables)
        in_check.set()
        release.wait(20)

    monkeypatch.setattr(postgres, "deltas_pending_clear", paused_clear)
    writes_during_paused_step(
        lambda: backend_for().deltas_drain(seconds=0), in_step=in_check, release=release, what="pending check",
        live=lambda: points_write(points=[(series_id, now + timedelta(seconds=5), 3.0)]),
        late=lambda: points_write(points=[(series_id, minute + timedelta(seconds=30), 8.0)]),
    )  # fmt: skip
    monkeypatch.undo()
    assert _pending_flag("points_1m_delta") == "t"  # the late write's delta, appended after the check
    # With a late writer open, the check is not made (it would hold up every late writer behind the open one):
    # the drain folds what is committed and returns at once, the flag still set.
    written, release, committed = threading.Event(), threading.Event(), threading.Event()

    def write_held_open() -> None:
        with transaction.atomic():
            points_write(points=[(series_id, minute + timedelta(seconds=40), 16.0)])
            written.set()
            release.wait(20)
        committed.set()

    writer = database_thread(write_held_open, errors)
    writer.start()
    try:
        assert written.wait(10)
        folded, left = backend_for().deltas_drain(seconds=60)
        assert not committed.is_set()  # the drain did not wait for the writer
        assert folded > 0  # the committed delta
        assert left  # the flags not checked
        assert _count("points_1m_delta") == 0  # (committed rows: the open writer's is not seen)
        assert _pending_flag("points_1m_delta") == "t"
    finally:
        release.set()
        writer.join(20)
    assert not errors, errors
    assert backend_for().deltas_drain(seconds=60)[1] is False
    assert _pending_flag("points_1m_delta") == "f"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count, sum FROM points_1m WHERE series_id = %s AND bucket = %s", [series_id, minute])
        assert cursor.fetchone() == (5, 31.0)
