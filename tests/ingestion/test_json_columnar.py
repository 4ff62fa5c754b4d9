"""The JSON columnar path stores exactly what the record-by-record path stores, or declines the body."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import event, given, settings
from hypothesis import strategies as st

from apps.ingestion import json_columnar, services
from apps.ingestion.json_columnar import MIN_RECORDS, json_columns
from apps.ingestion.parsers.json_records import json_records_parse
from apps.ingestion.services import batch_ingest_json_columnar, ingest_target_get
from apps.storage.columns import PointColumns
from tests.ingestion.factories import infer_validator, source_with_key, stored_points
from tests.storage.conftest import storage_tables_reset

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
@given(changes=st.lists(edits, max_size=3), reorder=st.booleans(), learned=st.booleans())
def test_columns_equal_the_record_path_or_decline(changes, reorder, learned):
    validator = infer_validator()
    if learned:  # the validator remembers the plain shape, so msgspec decodes the body first (orjson if it refuses)
        plain = json.dumps(_records(80, second=9)).encode()
        assert json_columns(body=plain, validator=validator, series_ids=_series_ids(), received_at=NOW) is not None
    records = _records(80)
    for kind, position, name, value in changes:
        if kind == "drop":
            records[position].pop(name, None)
        else:
            records[position][name] = value
    if reorder:  # key order differs between records: label sets do not depend on it
        records[1] = dict(reversed(list(records[1].items())))
    body = json.dumps(records).encode()  # json, not ujson: it writes NaN and Infinity as agents may
    event(f"columnar path taken: {_taken_as_the_record_path_stores(body, validator, _series_ids())}")


number_texts = st.one_of(
    st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
    st.sampled_from(["NaN", "-Infinity", "1e999", "-0", "-0.0", "18446744073709551616", "9223372036854775808",
                     "true", "null", '"1767267000"', '"d1"']),
)  # fmt: skip
text_edits = st.tuples(
    st.integers(0, 79), st.sampled_from(["time", "temperature", "vibration", "device"]), number_texts,
    st.sampled_from(["replace", "repeat before", "repeat after"]),
)  # fmt: skip
# Shared by every example: label sets the columnar path remembers from one batch must not change the next one.
warm_validator = infer_validator()


@settings(max_examples=300, deadline=None)
@given(changes=st.lists(text_edits, max_size=3), reverse=st.booleans())
def test_number_texts_and_repeated_keys_decode_as_the_record_path_decodes_them(changes, reverse):
    """orjson (columnar) and ujson (record path) must read every number text alike; a repeated key's last wins."""
    records = [[(name, json.dumps(value)) for name, value in record.items()] for record in _records(80)]
    if reverse:  # label names in another order: remembered label sets must not be mixed up
        records = [fields[::-1] for fields in records]
    for position, name, text, kind in changes:
        fields = records[position]
        if kind == "replace":
            fields[:] = [(key, text if key == name else value) for key, value in fields]
        else:
            fields.insert(0 if kind == "repeat before" else len(fields), (name, text))
    body = _body(records)
    event(f"columnar path taken: {_taken_as_the_record_path_stores(body, warm_validator, _series_ids())}")


def _body(records: list[list[tuple[str, str]]]) -> bytes:
    """A JSON array written by hand from each record's (key, value text) pairs: repeats and raw numbers kept."""
    return ("[" + ",".join("{" + ",".join(f'"{key}":{text}' for key, text in fields) + "}" for fields in records)
            + "]").encode()  # fmt: skip


def _taken_as_the_record_path_stores(body: bytes, validator, series_ids: dict) -> bool:
    """Whether the columnar path took the body; if it did, every record is accepted with the same points."""
    taken = json_columns(body=body, validator=validator, series_ids=series_ids, received_at=NOW)
    if taken is None:
        return False
    columns, count = taken
    parsed = json_records_parse(body)
    validated = infer_validator().validate(parsed.records, received_at=NOW)
    assert parsed.errors == []
    assert validated.errors == []
    assert count == validated.accepted_records == len(parsed.records)
    rows = [(series_ids[key], moment, value) for key, moment, value, _ in validated.points]
    assert list(columns) == sorted(rows, key=lambda row: (row[0], row[1]))
    return True


@pytest.mark.parametrize(
    ("name", "text", "float_times"),
    [
        ("temperature", "18446744073709551616", False),  # beyond 64 bits, orjson hands the integer over as a float
        ("temperature", "-9223372036854775809", False),
        ("temperature", "true", False),  # booleans decline, even where Arrow would read them as 1.0
        ("time", "true", True),  # among float times Arrow would read it as 1970-01-01T00:00:01
        ("temperature", "NaN", False),  # not strict JSON: orjson refuses what ujson reads as a non-finite float
        ("device", '"d\\u00001"', False),  # NUL in a label: split apart, it would not match the label names
        ("device", '"d\t1"', False),  # a raw control character: not strict JSON
    ],
)
@pytest.mark.parametrize("learned", [False, True], ids=["orjson", "msgspec-first"])
def test_a_text_that_decodes_apart_or_is_refused_declines(name, text, float_times, learned):
    records = [[(key, json.dumps(float(value) if key == "time" and float_times else value)) for key, value in fields]
               for fields in (record.items() for record in _records(80))]  # fmt: skip
    validator = infer_validator()
    assert _taken_as_the_record_path_stores(_body(records), validator, _series_ids())  # without the text
    records[7] = [(key, text if key == name else value) for key, value in records[7]]
    # A validator that took the plain body remembers its shape, so msgspec decodes this one first.
    validator = validator if learned else infer_validator()
    assert json_columns(body=_body(records), validator=validator, series_ids=_series_ids(), received_at=NOW) is None


def test_a_float_as_large_as_a_hidden_integer_is_declined_by_orjson_but_taken_by_the_shape_decoder():
    """orjson hands an integer literal beyond 64 bits over as a float, so its path declines 1e19 too (it cannot tell
    the two apart); msgspec keeps such an integer an integer, so a body of a remembered shape stores 1e19."""
    records = [[(key, json.dumps(value)) for key, value in record.items()] for record in _records(80)]
    validator = infer_validator()
    assert _taken_as_the_record_path_stores(_body(records), validator, _series_ids())
    records[7] = [(key, "1e19" if key == "temperature" else value) for key, value in records[7]]
    fresh = infer_validator()
    assert json_columns(body=_body(records), validator=fresh, series_ids=_series_ids(), received_at=NOW) is None
    assert _taken_as_the_record_path_stores(_body(records), validator, _series_ids())


def test_remembered_label_sets_follow_the_label_names():
    """Values joined alike under other names ({"a": "x", "b": "y"} then {"b": "x", "a": "y"}) are other series."""
    validator = infer_validator()
    series_ids = {("v", (("a", "x"), ("b", "y"))): 1, ("v", (("a", "y"), ("b", "x"))): 2}
    for first, second in (("a", "b"), ("b", "a")):
        records = [{"time": BASE + index, first: "x", second: "y", "v": index} for index in range(MIN_RECORDS)]
        assert _taken_as_the_record_path_stores(json.dumps(records).encode(), validator, series_ids)


def test_the_last_batch_lookups_serve_only_the_same_combinations_from_the_same_ids():
    """A batch with the last one's label combinations in the same order reuses its lookups; any other does not."""
    validator, series_ids = infer_validator(), _series_ids()
    first = _records(90)
    assert _taken_as_the_record_path_stores(json.dumps(first).encode(), validator, series_ids)
    remembered = json_columnar._last_lookups.last(validator)
    # The first 30 records hold every combination in the same order; the other 60 follow in another order.
    shuffled = first[:30] + first[30:][::-1]
    assert _taken_as_the_record_path_stores(json.dumps(shuffled).encode(), validator, series_ids)
    assert json_columnar._last_lookups.last(validator) is remembered  # taken again, and right for these records
    # The same combinations first seen in another order, or ids from another dict: looked up again.
    assert _taken_as_the_record_path_stores(json.dumps(first[::-1]).encode(), validator, series_ids)
    other = {key: series_id + 500 for key, series_id in series_ids.items()}
    assert _taken_as_the_record_path_stores(json.dumps(first[::-1]).encode(), validator, other)
    assert json_columnar._last_lookups.last(validator) is not remembered


def test_a_body_of_the_remembered_shape_is_decoded_without_orjson_and_another_shape_with_it(monkeypatch):
    validator, series_ids = infer_validator(), _series_ids()
    first = json.dumps(_records(90)).encode()
    assert _taken_as_the_record_path_stores(first, validator, series_ids)  # orjson's dicts teach the shape

    def refuse(body):
        raise AssertionError("orjson was asked to decode a body of the remembered shape")

    monkeypatch.setattr(json_columnar.orjson, "loads", refuse)
    # Other key order, another batch: the same shape, decoded by msgspec alone, and stored alike.
    again = [dict(reversed(list(record.items()))) for record in _records(90, second=5)]
    assert _taken_as_the_record_path_stores(json.dumps(again).encode(), validator, series_ids)
    monkeypatch.undo()
    # A field more in every record (msgspec refuses it): orjson decodes it, and its shape is the one remembered now.
    wider = [{**record, "humidity": 40.5} for record in _records(90, second=6)]
    series_ids.update({("humidity", key[1]): 1000 + series_id for key, series_id in list(series_ids.items())})
    assert _taken_as_the_record_path_stores(json.dumps(wider).encode(), validator, series_ids)
    assert json_columnar._shapes[validator][0] == ("time", "device", "facility", "temperature", "vibration", "humidity")
    # Integers msgspec keeps whole but Arrow cannot hold (beyond 64 bits, or inexact among floats) decline.
    for value in (2**64, 2**53 + 1):
        odd = _records(90, second=7)
        for record in odd:
            record["humidity"] = 40.5
        odd[3]["humidity"] = value
        body = json.dumps(odd).encode()
        assert json_columnar._columns_of_shape(body, *json_columnar._shapes[validator]) is None
        assert json_columns(body=body, validator=validator, series_ids=series_ids, received_at=NOW) is None


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


@pytest.mark.django_db(transaction=True)
def test_a_columnar_body_outside_a_transaction_is_one_without_a_savepoint(storage_committed_cleanup, monkeypatch):
    """The write is the whole transaction (no savepoint: four statements), published once committed, idempotent."""
    storage_tables_reset(watermark=NOW - timedelta(hours=2))  # live data: no late re-aggregation in the way
    source, _ = source_with_key(slug=f"json-columnar-{next(_slugs)}")
    services.batch_ingest(source_id=source.pk, parsed=json_records_parse(json.dumps(_records(DEVICES)).encode()),
                          transport="http", payload_format="json", received_at=NOW)  # fmt: skip
    published = []

    def publish(**kwargs) -> None:
        published.append((len(kwargs["rows"]), connection.in_atomic_block))

    monkeypatch.setattr(services, "changes_publish", publish)
    body = json.dumps(_records(90, second=5)).encode()
    with CaptureQueriesContext(connection) as captured:
        result = batch_ingest_json_columnar(source_id=source.pk, body=body, transport="http", received_at=NOW)
    assert [query["sql"].split()[0] for query in captured.captured_queries] == ["BEGIN", "SELECT", "COPY", "COMMIT"]
    assert (result.accepted, result.points, result.upserted) == (90, 180, False)
    assert published == [(180, False)]  # after the commit, not inside the write's atomic block
    again = batch_ingest_json_columnar(source_id=source.pk, body=body, transport="http", received_at=NOW)
    assert again.upserted is True  # a redelivery replaces, it does not add
    assert len(stored_points(source=source)) == 2 * (DEVICES + 90)
