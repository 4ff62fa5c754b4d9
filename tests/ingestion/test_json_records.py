"""JSON records: arrays, single objects and NDJSON, detection between them, and where errors point."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.ingestion.parsers.json_records import json_records_parse
from apps.ingestion.records import PayloadError, Record, RecordError


def _payload_error(body: bytes | str, **options: object) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        json_records_parse(body, **options)  # type: ignore[arg-type]
    return caught.value


# --- arrays ---------------------------------------------------------------------------------------


def test_array_of_objects() -> None:
    result = json_records_parse(b'[{"time": 1, "temp": 21.5}, {"time": 2, "temp": 22}]')
    assert result.records == [
        Record(index=0, fields={"time": 1, "temp": 21.5}),
        Record(index=1, fields={"time": 2, "temp": 22}),
    ]
    assert result.errors == []


def test_array_elements_that_are_not_objects() -> None:
    result = json_records_parse('[{"a": 1}, 2, "x", null, [1], true, {"b": 2}]')
    assert [r.index for r in result.records] == [0, 6]
    assert [(e.index, e.code, e.raw) for e in result.errors] == [
        (1, "not_an_object", "2"),
        (2, "not_an_object", '"x"'),
        (3, "not_an_object", "null"),
        (4, "not_an_object", "[1]"),
        (5, "not_an_object", "true"),
    ]
    assert result.errors[0].message == "expected a JSON object, got a number."
    assert result.errors[2].message == "expected a JSON object, got null."


def test_array_records_have_no_raw_text() -> None:
    assert json_records_parse('[{"a": 1}]').records[0].raw is None


def test_empty_array() -> None:
    assert json_records_parse("  []  ").records == []


def test_invalid_array_is_a_payload_error_with_line_and_column() -> None:
    error = _payload_error('[\n  {"a": 1},\n  {"b": 2,}\n]')
    assert error.code == "invalid_json"
    assert error.message == "invalid JSON: Expecting property name enclosed in double quotes at line 3, column 11."


def test_array_with_trailing_data_is_a_payload_error() -> None:
    assert _payload_error('[{"a": 1}] {"b": 2}').code == "invalid_json"


def test_deep_nesting_is_a_payload_error() -> None:
    error = _payload_error("[" * 100_000 + "]" * 100_000)
    assert error.code == "invalid_json"
    assert error.message


def test_deeply_nested_element_still_gets_a_raw_text() -> None:
    result = json_records_parse("[" + "[" * 1010 + "]" * 1010 + "]")
    assert [e.code for e in result.errors] == ["not_an_object"]
    assert result.errors[0].raw


# --- single objects -------------------------------------------------------------------------------


def test_single_object() -> None:
    result = json_records_parse('  {"a": {"nested": [1, 2]}, "b": "x"}  ')
    assert result.records == [Record(index=0, fields={"a": {"nested": [1, 2]}, "b": "x"})]


def test_pretty_printed_object_is_one_record() -> None:
    body = json.dumps({"a": 1, "b": [1, 2], "c": {"d": None}}, indent=2)
    assert json_records_parse(body).records == [Record(index=0, fields={"a": 1, "b": [1, 2], "c": {"d": None}})]


def test_invalid_single_object_is_a_payload_error() -> None:
    error = _payload_error('{\n  "a": 1,\n  "b": \n}')
    assert error.code == "invalid_json"
    assert "line 4, column 1" in error.message


@pytest.mark.parametrize(("body", "kind"), [("5", "a number"), ('"x"', "a string"), ("null", "null")])
def test_single_value_that_is_not_an_object(body: str, kind: str) -> None:
    result = json_records_parse(body)
    assert result.records == []
    assert result.errors == [RecordError(0, "not_an_object", f"expected a JSON object, got {kind}.", None, body)]


def test_ndjson_false_refuses_several_objects() -> None:
    assert _payload_error('{"a": 1}\n{"b": 2}', ndjson=False).code == "invalid_json"


def test_ndjson_false_refuses_an_empty_body() -> None:
    assert _payload_error("  ", ndjson=False).code == "invalid_json"


# --- NDJSON ---------------------------------------------------------------------------------------


NDJSON_BODY = '{"a": 1}\r\n\n  \n{"b": 2}\n[1]\n{bad}\n{"c": 3} x\n{"d": 4}\n'


@pytest.mark.parametrize("ndjson", [None, True])
def test_ndjson(ndjson: bool | None) -> None:
    result = json_records_parse(NDJSON_BODY, ndjson=ndjson)
    assert result.records == [
        Record(index=0, fields={"a": 1}, raw='{"a": 1}'),
        Record(index=3, fields={"b": 2}, raw='{"b": 2}'),
        Record(index=7, fields={"d": 4}, raw='{"d": 4}'),
    ]
    assert [(e.index, e.code, e.message, e.raw) for e in result.errors] == [
        (4, "not_an_object", "expected a JSON object, got an array.", "[1]"),
        (5, "invalid_json", "invalid JSON: Expecting property name enclosed in double quotes at column 2.", "{bad}"),
        (6, "invalid_json", "invalid JSON: Extra data at column 10.", '{"c": 3} x'),
    ]


def test_ndjson_true_reads_an_array_line_as_not_an_object() -> None:
    result = json_records_parse('[{"a": 1}]', ndjson=True)
    assert [e.code for e in result.errors] == ["not_an_object"]


def test_ndjson_whose_first_line_is_an_array_is_still_ndjson() -> None:
    """Issue 14: such a body was read as one JSON array, refused whole, and its good lines were lost."""
    result = json_records_parse('[0]\n{"a": 1}\n{"b": ' + "9" * 400 + "}\n")
    assert [(r.index, r.fields) for r in result.records] == [(1, {"a": 1}), (2, {"b": int("9" * 400)})]
    assert [(e.index, e.code, e.raw) for e in result.errors] == [(0, "not_an_object", "[0]")]


@pytest.mark.parametrize("body", ['[{"a": 1}] {"b": 2}', '[{"a": 1},\n {"b": 2,}]\n{"c": 3}', "[\n1\n]\nx\n"])
def test_an_array_that_is_not_ndjson_either_is_still_refused_whole(body: str) -> None:
    assert _payload_error(body).code == "invalid_json"


def test_ndjson_false_refuses_an_array_followed_by_more_lines() -> None:
    assert _payload_error('[0]\n{"a": 1}\n', ndjson=False).code == "invalid_json"


def test_ndjson_with_a_bad_first_line_is_still_ndjson() -> None:
    result = json_records_parse('{"a": 1,}\n{"b": 2}\n')
    assert [r.index for r in result.records] == [1]
    assert [(e.index, e.code) for e in result.errors] == [(0, "invalid_json")]


def test_empty_body_detected_as_empty_ndjson() -> None:
    assert json_records_parse(b"") == json_records_parse(" \n\n ") == json_records_parse("", ndjson=True)
    assert json_records_parse(b"").records == []


# --- values and encoding --------------------------------------------------------------------------


def test_non_finite_numbers_are_left_for_the_validator() -> None:
    fields = json_records_parse('{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1e999}').records[0].fields
    assert math.isnan(fields["a"])  # type: ignore[arg-type]
    assert fields["b"] == fields["d"] == math.inf
    assert fields["c"] == -math.inf


def test_big_integers_stay_exact() -> None:
    fields = json_records_parse('{"a": 18446744073709551616, "b": -9223372036854775809}').records[0].fields
    assert fields == {"a": 2**64, "b": -(2**63) - 1}


def test_an_integer_too_long_to_convert_is_infinite_for_the_validator_to_refuse_its_record() -> None:
    parsed = json_records_parse('[{"a": ' + "1" * 5000 + '}, {"a": -' + "1" * 5000 + '}, {"a": 1}]')
    assert [record.fields["a"] for record in parsed.records] == [math.inf, -math.inf, 1]
    lines = json_records_parse('{"a": ' + "1" * 5000 + '}\n{"a": 2}\n', ndjson=True)
    assert [record.fields["a"] for record in lines.records] == [math.inf, 2]


def test_repeated_key_keeps_the_last_value() -> None:
    assert json_records_parse('{"a": 1, "a": 2}').records[0].fields == {"a": 2}


def test_invalid_utf8_is_a_payload_error() -> None:
    error = _payload_error(b'{"a": "\xff"}')
    assert error.code == "invalid_encoding"


def test_byte_order_mark_is_ignored() -> None:
    assert json_records_parse('\ufeff[{"a": 1}]'.encode()).records == [Record(index=0, fields={"a": 1})]


def test_unicode_round_trips() -> None:
    assert json_records_parse('{"température": "°C ✓"}'.encode()).records[0].fields == {"température": "°C ✓"}


_JSON_SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_JSON_OBJECT = st.dictionaries(
    st.text(max_size=8),
    st.recursive(_JSON_SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner)),
    max_size=5,
)


@settings(max_examples=200)
@given(st.lists(_JSON_OBJECT, max_size=6))
def test_generated_objects_round_trip_in_every_shape(objects: list[dict[str, object]]) -> None:
    as_array = json_records_parse(json.dumps(objects))
    assert [r.fields for r in as_array.records] == objects
    assert [r.index for r in as_array.records] == list(range(len(objects)))

    lines = [json.dumps(obj) for obj in objects]
    as_ndjson = json_records_parse("\n".join(lines), ndjson=True)
    assert [(r.index, r.fields, r.raw) for r in as_ndjson.records] == [
        (i, obj, line) for i, (obj, line) in enumerate(zip(objects, lines, strict=True))
    ]
    if len(objects) >= 2:
        assert json_records_parse("\n".join(lines)) == as_ndjson
    for obj in objects[:1]:
        assert [r.fields for r in json_records_parse(json.dumps(obj, indent=1)).records] == [obj]
