"""Label rollups on TimescaleDB: continuous aggregates per label value, read by the engine for grouped queries of
whole label groups, and never when they could miss a series (see apps/storage/backends/timescaledb_labels.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.storage.backends import timescaledb as timescaledb_backend
from apps.storage.query.engine import query_execute
from apps.storage.query.spec import LabelFilter, QuerySpec
from apps.storage.tiers import TIER_1M, TIERS_FINE_TO_COARSE, bucket_floor
from tests.storage.factories import points_store, series_create, source_create
from tests.storage.oracle import close, oracle_answer, parse_iso
from tests.timescaledb.helpers import materialized_rows, rows, value

DEVICES = {f"d{number}": {"device": f"d{number}", "facility": f"f{number % 2 + 1}"} for number in range(4)}


@pytest.fixture
def plant(tsdb, settings):
    """Four devices in two facilities, a point every 50 s for the last 6 hours, refreshed once.

    The limit of 2 values registers `facility` and leaves `device` (4 values) per series.
    """
    settings.STORAGE_LABEL_ROLLUP_MAX_VALUES = 2
    source = source_create(slug="plant")
    ids = {name: series_create(source=source, metric="temperature", **labels) for name, labels in DEVICES.items()}
    start = bucket_floor(timezone.now() - timedelta(hours=6), 3600)
    truth = {}
    for number, series_id in enumerate(ids.values()):
        points = [(start + timedelta(seconds=50 * step, milliseconds=number), float((step * 7 + number * 13) % 97))
                  for step in range(6 * 72)]  # fmt: skip
        points = [(moment, point) for moment, point in points if moment < timezone.now() - timedelta(minutes=2)]
        points_store(series_id, points)
        truth.update({(series_id, moment): point for moment, point in points})
    tsdb.rollup_refresh()
    return {"source": source, "ids": ids, "truth": truth, "start": start, "backend": tsdb}


def _grouped(plant, principal, *, aggregation="avg", bucket=600, filters=()):
    spec = QuerySpec(metric="temperature", start=plant["start"], end=timezone.now(), aggregation=aggregation,
                     bucket_seconds=bucket, group_by=("facility",), filters=filters, fill="none",
                     max_points=10_000)  # fmt: skip
    result = query_execute(spec=spec, principal=principal)
    selected = {plant["ids"][name] for name in plant["ids"]}
    if filters:
        selected = {plant["ids"][name] for name in filters[0].values}
    expected = oracle_answer(
        points=plant["truth"], series_labels={plant["ids"][name]: DEVICES[name] for name in plant["ids"]},
        selected=selected, aggregation=aggregation, start=spec.start, end=spec.end, bucket_seconds=bucket,
        group_by=("facility",),
    )  # fmt: skip
    got = {
        (item["labels"]["facility"],): {parse_iso(moment): point for moment, point in item["points"]}
        for item in result.series
        if item["points"]  # a group whose series have no points yet (a new facility) is empty
    }
    assert got.keys() == expected.keys()
    for key, buckets in expected.items():
        assert got[key].keys() == buckets.keys(), key
        for moment, point in buckets.items():
            assert close(got[key][moment], point), (key, moment, got[key][moment], point)
    return result


def test_keys_with_few_values_get_label_tiers_that_answer_grouped_queries(plant, principal):
    registered = rows("SELECT label_key FROM storage_label_rollup")
    assert registered == [("facility",)]
    for aggregation in ("avg", "sum", "min", "max", "count", "last"):
        assert _grouped(plant, principal, aggregation=aggregation).label_rollups is True, aggregation
    # Part of a group (two devices of facility f1 and f2 each) is answered per series.
    part = (LabelFilter("device", "in", ("d0", "d1")),)
    assert _grouped(plant, principal, filters=part).label_rollups is False
    # The label tiers hold 2 rows per bucket where the per-series tiers hold 4.
    hours = value("SELECT count(DISTINCT bucket) FROM points_1h WHERE bucket >= %s", [plant["start"]])
    assert hours >= 6
    assert value("SELECT count(*) FROM points_1h_labels WHERE bucket >= %s", [plant["start"]]) == 2 * hours


def test_a_late_point_reaches_every_label_tier_at_the_next_refresh(plant, principal):
    late = plant["start"] + timedelta(minutes=30, seconds=1)
    points_store(plant["ids"]["d0"], [(late, 5000.0)])
    plant["truth"][(plant["ids"]["d0"], late)] = 5000.0
    plant["backend"].rollup_refresh()
    for tier in TIERS_FINE_TO_COARSE:
        (maximum,) = rows(
            f"SELECT max(max) FROM {tier.labels_table} WHERE label_value = 'f1' AND bucket <= %s",  # noqa: S608
            [late],
        )[0]
        assert maximum == 5000.0, tier
    assert _grouped(plant, principal, aggregation="max").label_rollups is True


def test_a_new_series_is_read_per_series_until_the_label_tiers_hold_it(plant, principal, monkeypatch):
    """A series created while a refresh runs, after it synced the label rows and before it materialized: its points
    go into the per-series tiers but not the label tiers (the aggregate joins a row it does not have yet). Until the
    next refresh has added its row and materialized its buckets again, grouped queries read per series."""
    original = timescaledb_backend.label_rollups_sync
    newcomer = {}

    def sync_then_a_new_device_writes(cursor, **arguments):
        original(cursor, **arguments)
        if newcomer:
            return
        newcomer["id"] = series_create(source=plant["source"], metric="temperature", device="d9", facility="f1")
        moments = [plant["start"] + timedelta(hours=1, seconds=30 * step) for step in range(20)]
        points_store(newcomer["id"], [(moment, 900.0) for moment in moments])
        plant["truth"].update({(newcomer["id"], moment): 900.0 for moment in moments})
        plant["ids"]["d9"] = newcomer["id"]

    monkeypatch.setattr(timescaledb_backend, "label_rollups_sync", sync_then_a_new_device_writes)
    monkeypatch.setitem(DEVICES, "d9", {"device": "d9", "facility": "f1"})
    plant["backend"].rollup_refresh()
    assert {key[0] for key in materialized_rows(TIER_1M)} >= {newcomer["id"]}  # materialized per series ...
    assert value("SELECT max(max) FROM points_1m_labels WHERE label_value = 'f1'") < 900.0  # ... not per label
    assert _grouped(plant, principal, aggregation="max").label_rollups is False  # so: per series, exact

    monkeypatch.setattr(timescaledb_backend, "label_rollups_sync", original)
    result = plant["backend"].rollup_refresh()
    assert result["labels_repaired_from"] is not None
    assert value("SELECT max(max) FROM points_1m_labels WHERE label_value = 'f1'") == 900.0
    for aggregation in ("max", "avg", "count"):
        assert _grouped(plant, principal, aggregation=aggregation).label_rollups is True, aggregation


def test_a_key_that_grows_past_the_limit_loses_its_label_tiers(plant, principal):
    assert value("SELECT count(*) FROM points_1m_labels") > 0
    series_create(source=plant["source"], metric="temperature", device="d5", facility="f3")  # a third facility
    plant["backend"].rollup_refresh()
    assert rows("SELECT label_key FROM storage_label_rollup") == []
    for tier in TIERS_FINE_TO_COARSE:
        assert value(f"SELECT count(*) FROM {tier.labels_table}") == 0, tier  # noqa: S608
    assert value("SELECT count(*) FROM storage_series_labels") == 0
    assert _grouped(plant, principal).label_rollups is False
