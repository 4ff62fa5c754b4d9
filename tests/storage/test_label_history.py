"""A label key registered on a source with history (plain PostgreSQL): registered at once, its history built a
chunk per transaction by later refreshes, unused by queries until it is complete, and exact however late points,
redeliveries and drains interleave with the chunks."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.storage.backends import backend_for, postgres
from apps.storage.backends.label_rollups import label_rollups_install, label_rollups_sync
from apps.storage.query.engine import query_execute
from apps.storage.query.spec import QuerySpec
from apps.storage.services import points_write
from apps.storage.tiers import BUCKET_ORIGIN, TIERS_FINE_TO_COARSE, bucket_floor
from tests.factories import user_create
from tests.storage.conftest import storage_tables_reset
from tests.storage.factories import series_create, source_create
from tests.storage.oracle import assert_grouped_answer
from tests.storage.races import writes_during_paused_step

DAYS = 3
DEVICES = 6


def _rows(query: str, parameters=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, parameters)
        return cursor.fetchall()


def _keys() -> dict[str, bool]:
    """Registered label keys of metric "m": whether each is ready."""
    return dict(_rows("SELECT label_key, ready FROM storage_label_rollup WHERE metric = 'm'"))


def _label_rows_equal_raw(key: str) -> None:
    """Every materialized label row of `key` (with its label deltas folded) equals the raw points' aggregate."""
    watermark = backend_for().watermark()
    for tier in TIERS_FINE_TO_COARSE:
        limit = bucket_floor(watermark, tier.seconds)
        stored = {
            (value, bucket): (count, total, low, high, last, last_time)
            for value, bucket, count, total, low, high, last, last_time in _rows(
                f"SELECT label_value, bucket, count, sum, min, max, last, last_time FROM {tier.labels_table} "  # noqa: S608
                "WHERE label_key = %s AND bucket < %s",
                [key, limit],
            )
        }
        raw = {
            (value, bucket): (count, total, low, high, last, last_time)
            for value, bucket, count, total, low, high, last, last_time in _rows(
                "SELECT s.labels->>%s, date_bin(%s, p.time, %s), count(*), sum(p.value), min(p.value), max(p.value), "
                "(array_agg(p.value ORDER BY p.time DESC))[1], max(p.time) FROM points p "
                "JOIN storage_series s ON s.id = p.series_id WHERE s.labels ? %s AND p.time < %s GROUP BY 1, 2",
                [key, tier.interval, BUCKET_ORIGIN, key, limit],
            )
        }
        assert stored == raw, (key, tier.name)  # small integers: float sums are exact


@pytest.fixture
def plant(db, settings, monkeypatch):
    """Three days of six devices in three facilities, rolled up while label rollups were off; then switched on."""
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 60
    settings.STORAGE_LABEL_ROLLUP_MAX_VALUES = 0
    settings.STORAGE_LABEL_HISTORY_BUILD_SECONDS = 0  # one chunk per refresh run
    # Chunks of 6 hours for these six series (6 x 60 rows an hour): several per day.
    monkeypatch.setattr(postgres, "LABEL_HISTORY_CHUNK_ROWS", 6 * 60 * 6)
    now = bucket_floor(timezone.now(), 60)
    start = now - timedelta(days=DAYS)
    storage_tables_reset(watermark=start)
    source = source_create(slug="history")
    labels = {index: {"device": f"d{index}", "facility": f"f{index % 3}"} for index in range(DEVICES)}
    ids = {index: series_create(source=source, metric="m", **labels[index]) for index in range(DEVICES)}
    truth = {}
    for index, series_id in ids.items():
        for step in range(DAYS * 144):
            moment = start + timedelta(minutes=10 * step, seconds=index)
            truth[(series_id, moment)] = float((step * (index + 1)) % 23)
        # And one in the minute rolled up provisionally (past the watermark, before the provisional bound).
        truth[(series_id, now - timedelta(seconds=50 - index))] = float(index)
    points_write(points=[(series_id, moment, value) for (series_id, moment), value in truth.items()])
    backend = backend_for()
    backend.rollup_refresh(now=now)
    assert _keys() == {}
    assert _rows("SELECT count(*) FROM points_1m p, storage_rollup_watermark w WHERE p.bucket >= w.watermark")[0][0]
    settings.STORAGE_LABEL_ROLLUP_MAX_VALUES = 100
    return {"backend": backend, "source": source, "labels": labels, "ids": ids, "truth": truth, "start": start,
            "now": now, "user": user_create(username="history")}  # fmt: skip


def _by_facility(plant, aggregation: str = "sum", bucket_seconds: int = 3600) -> QuerySpec:
    return QuerySpec(metric="m", start=plant["start"], end=plant["now"], aggregation=aggregation,
                     bucket_seconds=bucket_seconds, group_by=("facility",), filters=(), fill="none",
                     max_points=10_000, limit=100)  # fmt: skip


def _build_all(backend) -> int:
    """Chunks until no key is building (one per call, as the fixture's budget is 0 s); how many it took."""
    chunks = 0
    while True:
        built, building = backend.label_history_build(seconds=0)
        chunks += built
        if not building:
            return chunks
        assert chunks < 500, "the history build does not finish"


def test_registering_a_key_builds_none_of_its_history(plant):
    """The refresh transaction, which every write waits for, only registers: no label row is built in it."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT watermark FROM storage_rollup_watermark FOR UPDATE")
        label_rollups_sync(cursor)
    assert _keys() == {"device": False, "facility": False}
    assert _rows("SELECT count(*) FROM points_1m_labels")[0][0] == 0


def test_a_new_key_is_built_a_chunk_at_a_time_and_used_once_complete(plant):
    backend, user = plant["backend"], plant["user"]
    result = backend.rollup_refresh(now=plant["now"])  # registers both keys, builds one chunk
    assert result["label_history_chunks"] == 1
    assert result["label_keys_building"] == 2
    assert _keys() == {"device": False, "facility": False}
    for aggregation in ("sum", "last"):
        spec = _by_facility(plant, aggregation)
        answer = query_execute(spec=spec, principal=user)
        assert not answer.label_rollups  # a key being built is not read: per-series rows answer, exactly
        assert_grouped_answer(answer, spec, plant["truth"], plant["labels"], plant["ids"])
    chunks = 1 + _build_all(backend)
    # Each key: 3 days and the minutes of a fourth, in chunks of 6 hours, plus the step that marks it ready.
    assert chunks >= 2 * (DAYS * 4 + 1)
    assert _keys() == {"device": True, "facility": True}
    for key in ("device", "facility"):
        _label_rows_equal_raw(key)
    for aggregation, bucket_seconds in (("sum", 3600), ("max", 60), ("count", 86_400), ("last", 3600)):
        spec = _by_facility(plant, aggregation, bucket_seconds)
        answer = query_execute(spec=spec, principal=user)
        assert answer.label_rollups, (aggregation, bucket_seconds)
        assert_grouped_answer(answer, spec, plant["truth"], plant["labels"], plant["ids"])


def test_a_day_held_only_by_a_delta_gets_its_daily_label_row(plant):
    """A late point in a day with no other data, written before the key is registered and not folded yet: the
    build starts late in that day, and the day's bucket must count it all the same."""
    late = (plant["ids"][2], plant["start"] - timedelta(days=2), 5.0)
    points_write(points=[late])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT watermark FROM storage_rollup_watermark FOR UPDATE")
        label_rollups_sync(cursor)
    _build_all(plant["backend"])
    assert _rows("SELECT count(*) FROM points_1m_delta")[0][0] == 1  # never folded
    assert plant["backend"].deltas_drain(seconds=60)[1] is False
    for key in ("device", "facility"):
        _label_rows_equal_raw(key)


def test_late_points_redeliveries_and_drains_between_chunks_leave_the_key_exact(plant):
    backend, ids, truth, start = plant["backend"], plant["ids"], plant["truth"], plant["start"]
    backend.rollup_refresh(now=plant["now"])
    backend.label_history_build(seconds=0)  # the first chunks are built, the rest not
    built = _rows("SELECT min(built_until) FROM storage_label_rollup")[0][0]
    assert built is not None
    assert start < built < start + timedelta(days=1)

    def write(points):
        points_write(points=points)
        truth.update({(series_id, moment): value for series_id, moment, value in points})

    # New points (deltas: per series, and per label cell of the registered keys) in a built range, in a range not
    # built yet, and before any stored data (a range the build never visits).
    write([(ids[0], start + timedelta(minutes=3, seconds=30), 7.0), (ids[4], start + timedelta(days=2, hours=1), 9.0),
           (ids[2], start - timedelta(days=2), 4.0)])  # fmt: skip
    assert _rows("SELECT count(*) FROM points_1m_labels_delta")[0][0] > 0
    backend.label_history_build(seconds=0)
    # Part of the deltas folded between chunks, then a redelivery (a point replaced: its buckets re-aggregated).
    backend.deltas_drain(seconds=0, rows_per_transaction=2)
    write([(ids[1], start + timedelta(days=1, minutes=10, seconds=1), 20.0),
           (ids[5], start + timedelta(days=2, hours=5, minutes=30, seconds=5), -3.0)])  # fmt: skip
    backend.label_history_build(seconds=0)
    write([(ids[3], start + timedelta(days=1, hours=20, seconds=15), 11.0)])
    spec = _by_facility(plant)
    assert_grouped_answer(query_execute(spec=spec, principal=plant["user"]), spec, truth, plant["labels"], ids)
    _build_all(backend)
    assert _keys() == {"device": True, "facility": True}
    for aggregation, bucket_seconds in (("sum", 3600), ("min", 60), ("count", 86_400)):
        spec = _by_facility(plant, aggregation, bucket_seconds)
        spec = QuerySpec(**{**spec.__dict__, "start": start - timedelta(days=2)})
        answer = query_execute(spec=spec, principal=plant["user"])
        assert answer.label_rollups  # label rows and their pending label deltas
        assert_grouped_answer(answer, spec, truth, plant["labels"], ids)
    assert backend.deltas_drain(seconds=60)[1] is False
    for key in ("device", "facility"):
        _label_rows_equal_raw(key)


def test_a_key_that_grows_past_the_limit_while_building_is_dropped(plant, settings):
    backend = plant["backend"]
    backend.rollup_refresh(now=plant["now"])
    settings.STORAGE_LABEL_ROLLUP_MAX_VALUES = 3  # six devices: "device" goes, "facility" (three) stays
    series_create(source=plant["source"], metric="m", device="d6", facility="f0")
    backend.rollup_refresh(now=plant["now"])
    assert _keys() == {"facility": False}
    _build_all(backend)
    assert _keys() == {"facility": True}
    assert _rows("SELECT count(*) FROM points_1m_labels WHERE label_key = 'device'")[0][0] == 0
    _label_rows_equal_raw("facility")


def test_keys_registered_before_the_online_build_are_ready(plant):
    """A database whose registry predates the `ready` column: its keys were built whole when registered."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE storage_label_rollup DROP COLUMN ready, DROP COLUMN built_until")
        cursor.execute("INSERT INTO storage_label_rollup (source_id, metric, label_key) SELECT id, 'm', 'device' "
                       "FROM sources_source WHERE slug = 'history'")  # fmt: skip
        label_rollups_install(cursor)
    assert _keys() == {"device": True}


def test_keys_being_built_are_on_metrics(plant, client):
    plant["backend"].rollup_refresh(now=plant["now"])
    assert "analytics_label_rollup_keys_building 2.0" in client.get("/metrics").content.decode()
    _build_all(plant["backend"])
    assert "analytics_label_rollup_keys_building 0.0" in client.get("/metrics").content.decode()


def test_while_the_drain_is_behind_a_refresh_builds_no_chunk(plant, settings, monkeypatch):
    """A chunk reads whole delta tables: while the drain leaves deltas behind, the time is the drain's."""
    settings.STORAGE_LABEL_HISTORY_BUILD_SECONDS = 60
    settings.STORAGE_DELTAS_DRAIN_SECONDS = 0
    monkeypatch.setattr(postgres, "DELTAS_FOLD_ROWS", 1)
    start, ids = plant["start"], plant["ids"]
    # Many pages of per-series deltas: the drain takes one page range a transaction.
    points_write(points=[(series_id, start + timedelta(minutes=minute, seconds=30), 1.0) for series_id in ids.values()
                         for minute in range(0, 2 * 1440, 3)])  # fmt: skip
    result = plant["backend"].rollup_refresh(now=plant["now"])
    assert result["deltas_left"] is True
    assert result["label_history_chunks"] == 0
    assert result["label_keys_building"] == 2
    plant["backend"].deltas_drain(seconds=60)
    result = plant["backend"].rollup_refresh(now=plant["now"])
    assert result["deltas_left"] is False
    assert result["label_history_chunks"] > 1
    assert result["label_keys_building"] == 0


def test_a_key_of_series_without_rollup_rows_is_ready_at_once(plant):
    """Nothing to build: the refresh that registers it materializes its rows with the series' own."""
    backend, now = plant["backend"], plant["now"]
    backend.rollup_refresh(now=now)
    _build_all(backend)
    source = source_create(slug="fresh")
    ids = [series_create(source=source, metric="m", line=f"l{index % 2}", unit=f"u{index}") for index in range(4)]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [now])
    later = now + timedelta(hours=2)
    points_write(points=[(series_id, now + timedelta(minutes=minute, seconds=index), float(minute % 7))
                         for index, series_id in enumerate(ids) for minute in range(90)])  # fmt: skip
    result = backend.rollup_refresh(now=later)
    assert result["label_history_chunks"] == 0
    assert dict(_rows("SELECT label_key, ready FROM storage_label_rollup WHERE source_id = %s", [source.pk])) == {
        "line": True, "unit": True}  # fmt: skip
    _label_rows_equal_raw("line")


@pytest.mark.django_db(transaction=True)
def test_a_history_chunk_holds_up_late_writes_but_not_live_ones(settings, storage_committed_cleanup, monkeypatch):
    """A chunk excludes delta writers and the refresh, as a drain step does, but not live writes."""
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 60
    settings.STORAGE_LABEL_ROLLUP_MAX_VALUES = 0
    now = bucket_floor(timezone.now(), 60)
    start = now - timedelta(hours=3)
    storage_tables_reset(watermark=start)
    source = source_create(slug="chunk-lock")
    labels = {index: {"device": f"d{index}", "facility": f"f{index % 2}"} for index in range(4)}
    ids = {index: series_create(source=source, metric="m", **labels[index]) for index in range(4)}
    truth = {(series_id, start + timedelta(minutes=minute, seconds=index)): float(minute % 7)
             for index, series_id in ids.items() for minute in range(0, 170, 5)}  # fmt: skip
    points_write(points=[(series_id, moment, value) for (series_id, moment), value in truth.items()])
    backend = backend_for()
    backend.rollup_refresh(now=now)
    settings.STORAGE_LABEL_ROLLUP_MAX_VALUES = 100
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT watermark FROM storage_rollup_watermark FOR UPDATE")
        label_rollups_sync(cursor)
    assert _keys() == {"device": False, "facility": False}
    in_chunk, release = threading.Event(), threading.Event()
    chunk = postgres.PostgresBackend._label_history_chunk

    def paused_chunk(self, *arguments):
        ready = chunk(self, *arguments)
        in_chunk.set()
        release.wait(20)
        return ready

    monkeypatch.setattr(postgres.PostgresBackend, "_label_history_chunk", paused_chunk)
    writes_during_paused_step(
        lambda: backend_for().label_history_build(seconds=0), in_step=in_chunk, release=release,
        what="history chunk", live=lambda: points_write(points=[(ids[0], now + timedelta(seconds=5), 3.0)]),
        late=lambda: points_write(points=[(ids[1], start + timedelta(minutes=7, seconds=30), 4.0)]),
    )  # fmt: skip
    monkeypatch.undo()
    _build_all(backend)
    assert _keys() == {"device": True, "facility": True}
    assert backend.deltas_drain(seconds=60)[1] is False
    for key in ("device", "facility"):
        _label_rows_equal_raw(key)
