"""The JSON columnar path stores exactly what the record-by-record path stores, or declines the body."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from apps.ingestion import services
from apps.ingestion.json_columnar import MIN_RECORDS, json_columns
from apps.ingestion.parsers.json_records import json_records_parse
from apps.ingestion.services import batch_ingest_json_columnar, ingest_target_get
from apps.storage.columns import PointColumns
from tests.ingestion.factories import infer_validator, source_with_key, stored_points

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
BASE = int(NOW.timestamp()) - 3600
DEVICES = 30
_slugs = itertools.count()


def _series_ids() -> dict:
    ids = {}
    for index in range(DEVICES):
        labels = (("device", f"d{index}"), ("facility", f"f{index % 3}"))
        ids[("temperature", labels)] = 2 * index + 1
        ids[("vibration", labels)] = 2 * index + 2
    return ids


def _records(count: int, second: int = 0) -> list[dict]:
    return [
        {"time": BASE + second + index // DEVICES, "device": f"d{index % DEVICES}",
         "facility": f"f{index % DEVICES % 3}", "temperature": index * 0.5 - 7, "vibration": index % 4}
        for index in range(count)
    ]  # fmt: skip


odd_values = st.one_of(
    st.none(), st.booleans(), st.text(max_size=3), st.integers(-(2**70), 2**70), st.just(2**53 + 1),
    st.floats(allow_nan=True, allow_infinity=True), st.just({"nested": 1}), st.just([1]),
    st.sampled_from(["2026-01-01T11:30:00Z", "2026-01-01T11:30:00", "1767267000", "d\x001", "x" * 300]),
)  # fmt: skip
fields = st.sampled_from(["time", "device", "facility", "temperature", "vibration", "extra", "timestamp"])
edits = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 79), fields, odd_values),
    st.tuples(st.just("drop"), st.integers(0, 79), fields, st.none()),
    st.tuples(st.just("time"), st.integers(0, 79), st.just("time"), st.sampled_from(
        [(BASE + 7) * 1000, (BASE + 7) * 10**9, BASE + 7.25, BASE - 10**10, BASE + 10**6, -1])),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(changes=st.lists(edits, max_size=3), reorder=st.booleans())
def test_columns_equal_the_record_path_or_decline(changes, reorder):
    records = _records(80)
    for kind, position, name, value in changes:
        if kind == "drop":
            records[position].pop(name, None)
        else:
            records[position][name] = value
    if reorder:  # key order differs between records: label sets do not depend on it
        records[1] = dict(reversed(list(records[1].items())))
    body = json.dumps(records).encode()  # json, not ujson: it writes NaN and Infinity as agents may
    series_ids = _series_ids()
    taken = json_columns(body=body, validator=infer_validator(), series_ids=series_ids, received_at=NOW)
    event(f"columnar path taken: {taken is not None}")
    if taken is None:
        return
    columns, count = taken
    parsed = json_records_parse(body)
    validated = infer_validator().validate(parsed.records, received_at=NOW)
    assert parsed.errors == []
    assert validated.errors == []
    assert count == validated.accepted_records == len(records)
    rows = [(series_ids[key], moment, value) for key, moment, value, _ in validated.points]
    assert list(columns) == sorted(rows, key=lambda row: (row[0], row[1]))


def test_a_plain_array_is_taken_and_small_or_unknown_ones_decline():
    validator, series_ids = infer_validator(), _series_ids()
    taken = json_columns(body=json.dumps(_records(100)).encode(), validator=validator, series_ids=series_ids,
                         received_at=NOW)  # fmt: skip
    assert taken is not None
    assert isinstance(taken[0], PointColumns)
    assert (len(taken[0]), taken[1]) == (200, 100)
    small = json.dumps(_records(MIN_RECORDS - 1)).encode()
    assert json_columns(body=small, validator=validator, series_ids=series_ids, received_at=NOW) is None
    unknown = _records(100)
    unknown[5]["device"] = "new"
    body = json.dumps(unknown).encode()
    assert json_columns(body=body, validator=validator, series_ids=series_ids, received_at=NOW) is None


@pytest.mark.django_db
def test_endpoint_path_stores_a_known_array_exactly(django_capture_on_commit_callbacks, monkeypatch):
    source, _ = source_with_key(slug=f"json-columnar-{next(_slugs)}")
    first = json.dumps(_records(DEVICES)).encode()
    assert batch_ingest_json_columnar(source_id=source.pk, body=first, transport="http", received_at=NOW) is None
    with django_capture_on_commit_callbacks(execute=True):  # the record path creates and learns the series
        services.batch_ingest(source_id=source.pk, parsed=json_records_parse(first), transport="http",
                              payload_format="json", received_at=NOW)  # fmt: skip
    assert len(ingest_target_get(source_id=source.pk).series_ids) == 2 * DEVICES
    published = []
    monkeypatch.setattr(services, "changes_publish", lambda **kwargs: published.append(kwargs["rows"]))
    records = _records(90, second=5)
    records.append({**records[0], "temperature": 99.0})  # the same series and time again, later: it wins
    with django_capture_on_commit_callbacks(execute=True):
        result = batch_ingest_json_columnar(source_id=source.pk, body=json.dumps(records).encode(),
                                            transport="http", received_at=NOW)  # fmt: skip
    assert result is not None
    assert (result.accepted, result.rejected, result.points, result.upserted) == (91, 0, 182, True)
    assert isinstance(published[-1], PointColumns)
    stored = {(metric, labels["device"], moment): value
              for metric, labels, moment, value, _ in stored_points(source=source)}  # fmt: skip
    moment = datetime.fromtimestamp(BASE + 5, tz=UTC)
    assert stored[("temperature", "d0", moment)] == 99.0
    assert stored[("vibration", "d0", moment)] == 0.0
    assert stored[("temperature", "d1", moment)] == -6.5
    assert len(stored) == 2 * (DEVICES + 90)
