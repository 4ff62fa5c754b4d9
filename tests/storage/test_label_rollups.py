"""Label rollups (plain PostgreSQL): registration, maintenance, retention, and when the engine may read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from apps.access.models import Membership
from apps.storage.backends import backend_for
from apps.storage.policies import DataScope, Grant, data_scope_provider_get, data_scope_provider_set
from apps.storage.query.engine import query_execute
from apps.storage.query.spec import LabelFilter, QuerySpec
from apps.storage.services import points_write
from tests.factories import organization_get
from tests.storage.factories import series_create, source_create
from tests.storage.oracle import assert_grouped_answer

BASE = datetime(2026, 3, 2, tzinfo=UTC)
HOURS = 3


@pytest.fixture(autouse=True)
def _watermark_at_base(db, settings):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [BASE])


def _user():
    user, _ = get_user_model().objects.get_or_create(username="labels")
    Membership.objects.get_or_create(organization=organization_get(), user=user)
    return user


def _plant(facilities: int = 2, devices: int = 4):
    source = source_create(slug="labels-plant")
    labels = {index: {"device": f"d{index}", "facility": f"f{index % facilities}"} for index in range(devices)}
    ids = {index: series_create(source=source, metric="t", **labels[index]) for index in range(devices)}
    return source, labels, ids


def _write(ids, *, seconds: int = HOURS * 3600, step: int = 37, base: datetime = BASE) -> dict:
    truth = {}
    rows = []
    for index, series_id in ids.items():
        for offset in range(index, seconds, step):
            moment = base + timedelta(seconds=offset, milliseconds=index)
            value = float((offset * (index + 3)) % 101) - 50
            rows.append((series_id, moment, value))
            truth[(series_id, moment)] = value
    points_write(points=rows)
    return truth


def _plant_refreshed() -> tuple[dict, dict, dict]:
    """The plant with its points written and every complete minute rolled up."""
    _, labels, ids = _plant()
    truth = _write(ids)
    backend_for().rollup_refresh(now=BASE + timedelta(hours=HOURS + 1))
    return labels, ids, truth


def _spec(**fields) -> QuerySpec:
    defaults = {
        "metric": "t",
        "start": BASE,
        "end": BASE + timedelta(hours=HOURS),
        "aggregation": "avg",
        "bucket_seconds": 3600,
        "group_by": ("facility",),
        "filters": (),
        "fill": "none",
        "max_points": 10_000,
        "limit": 100,
    }
    return QuerySpec(**{**defaults, **fields})


def _registered() -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT metric, label_key FROM storage_label_rollup")
        return set(cursor.fetchall())


def _label_rows(table: str = "points_1m_labels") -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - a fixed table name
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_grouped_query_over_whole_groups_reads_label_rows_and_matches_raw():
    labels, ids, truth = _plant_refreshed()
    assert _registered() == {("t", "device"), ("t", "facility")}
    # Two facilities per minute instead of four devices.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM points_1m_labels WHERE label_key = 'facility'")
        assert cursor.fetchone()[0] == 2 * HOURS * 60
    for aggregation in ("avg", "sum", "count", "min", "max", "last"):
        for bucket in (60, 3600):
            spec = _spec(aggregation=aggregation, bucket_seconds=bucket)
            result = query_execute(spec=spec, principal=_user())
            assert result.label_rollups, (aggregation, bucket)
            assert "points_1m_labels" in result.sql or "points_1h_labels" in result.sql
            assert_grouped_answer(result, spec, truth, labels, ids)


@pytest.mark.django_db
def test_label_values_that_json_escapes_find_their_groups():
    """A label row's group is looked up by its value in a JSON object of the plan's values (engine.LABEL_GROUP_SQL):
    quotes, backslashes, non-ASCII and numeric-looking values must each find their own group."""
    source = source_create(slug="labels-plant")
    facilities = ['hall "A"', "c:\\plant\\", "Zürich 🏭", "10", "1", "{}"]
    labels = {index: {"device": f"d{index}", "facility": facilities[index % len(facilities)]} for index in range(12)}
    ids = {index: series_create(source=source, metric="t", **labels[index]) for index in labels}
    truth = _write(ids)
    backend_for().rollup_refresh(now=BASE + timedelta(hours=HOURS + 1))
    for aggregation in ("avg", "count", "last"):
        spec = _spec(aggregation=aggregation, bucket_seconds=60)
        result = query_execute(spec=spec, principal=_user())
        assert result.label_rollups, aggregation
        assert sorted(item["labels"]["facility"] for item in result.series) == sorted(facilities)
        assert_grouped_answer(result, spec, truth, labels, ids)


@pytest.mark.django_db
def test_filters_on_the_grouped_label_still_read_label_rows():
    labels, ids, truth = _plant_refreshed()
    spec = _spec(filters=(LabelFilter("facility", "eq", ("f1",)),))
    result = query_execute(spec=spec, principal=_user())
    assert result.label_rollups
    assert [item["labels"] for item in result.series] == [{"facility": "f1"}]
    assert_grouped_answer(result, spec, truth, labels, ids, selected={ids[1], ids[3]})


@pytest.mark.django_db
def test_a_subset_of_a_group_is_answered_per_series():
    labels, ids, truth = _plant_refreshed()
    spec = _spec(filters=(LabelFilter("device", "in", ("d0", "d1", "d2")),))
    result = query_execute(spec=spec, principal=_user())
    assert not result.label_rollups  # f1 would include d3, which the filter leaves out
    assert "_labels" not in result.sql
    assert_grouped_answer(result, spec, truth, labels, ids, selected={ids[0], ids[1], ids[2]})


@pytest.mark.django_db
def test_a_data_scope_that_hides_devices_is_answered_per_series():
    labels, ids, truth = _plant_refreshed()
    previous = data_scope_provider_get()
    data_scope_provider_set(lambda principal: DataScope.of([Grant.build(labels={"device": ["d0", "d1"]})]))
    try:
        spec = _spec()
        result = query_execute(spec=spec, principal=_user())
    finally:
        data_scope_provider_set(previous)
    assert not result.label_rollups
    assert_grouped_answer(result, spec, truth, labels, ids, selected={ids[0], ids[1]})


@pytest.mark.django_db
def test_late_points_rebuild_their_label_cells():
    labels, ids, truth = _plant_refreshed()
    # Below the watermark: a new value for an existing point and a brand-new point.
    late = [(ids[3], BASE + timedelta(minutes=10, milliseconds=3), 999.0), (ids[1], BASE + timedelta(minutes=70), -7.5)]
    points_write(points=late)
    for series_id, moment, value in late:
        truth[(series_id, moment)] = value
    for aggregation in ("max", "min", "sum", "count", "last"):
        spec = _spec(aggregation=aggregation, bucket_seconds=60)
        result = query_execute(spec=spec, principal=_user())
        assert result.label_rollups
        assert_grouped_answer(result, spec, truth, labels, ids)


@pytest.mark.django_db
def test_keys_with_too_many_values_are_not_kept_and_are_dropped_when_they_grow(settings):
    settings.STORAGE_LABEL_ROLLUP_MAX_VALUES = 3
    source, labels, ids = _plant(facilities=2, devices=4)
    truth = _write(ids)
    backend = backend_for()
    backend.rollup_refresh(now=BASE + timedelta(hours=1))
    assert _registered() == {("t", "facility")}  # four devices > 3
    # Two more facilities: four values, past the limit.
    for index, facility in ((4, "f2"), (5, "f3")):
        labels[index] = {"device": f"d{index}", "facility": facility}
        ids[index] = series_create(source=source, metric="t", **labels[index])
    truth.update(_write({4: ids[4], 5: ids[5]}))
    backend.rollup_refresh(now=BASE + timedelta(hours=HOURS + 1))
    assert _registered() == set()
    assert _label_rows() == 0
    spec = _spec()
    result = query_execute(spec=spec, principal=_user())
    assert not result.label_rollups
    assert_grouped_answer(result, spec, truth, labels, ids)


@pytest.mark.django_db
def test_a_key_registered_later_gets_its_history(settings):
    settings.STORAGE_LABEL_ROLLUP_MAX_VALUES = 0  # off while the history is written
    _, labels, ids = _plant()
    truth = _write(ids)
    backend = backend_for()
    backend.rollup_refresh(now=BASE + timedelta(hours=2))
    assert _registered() == set()
    settings.STORAGE_LABEL_ROLLUP_MAX_VALUES = 100
    backend.rollup_refresh(now=BASE + timedelta(hours=HOURS + 1))
    assert ("t", "facility") in _registered()
    spec = _spec(aggregation="sum")
    result = query_execute(spec=spec, principal=_user())
    assert result.label_rollups
    assert_grouped_answer(result, spec, truth, labels, ids)


@pytest.mark.django_db
def test_retention_removes_label_rows_with_their_tier():
    source, _, ids = _plant()
    _write(ids)
    backend = backend_for()
    backend.rollup_refresh(now=BASE + timedelta(hours=HOURS + 1))
    assert _label_rows() > 0
    source.rollup_1m_retention_days = 1
    source.save(update_fields=["rollup_1m_retention_days"])
    result = backend.retention_apply(now=BASE + timedelta(days=2))
    assert result.deleted_rows["points_1m_labels"] > 0
    assert _label_rows() == 0
    assert _label_rows("points_1h_labels") > 0  # 1-hour rows keep their own (5-year) retention


@pytest.mark.django_db(transaction=True)
def test_engine_reads_one_snapshot_outside_a_transaction():
    labels, ids, truth = _plant_refreshed()
    spec = _spec(bucket_seconds=60)
    assert not connection.in_atomic_block
    result = query_execute(spec=spec, principal=_user())
    assert result.label_rollups
    assert_grouped_answer(result, spec, truth, labels, ids)
