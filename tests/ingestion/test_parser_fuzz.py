"""Fuzzing the parsers: whatever arrives, they answer with records, per-record errors or a PayloadError."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.ingestion.parsers.json_records import json_records_parse
from apps.ingestion.parsers.line_protocol import PRECISION_NS, line_protocol_parse
from apps.ingestion.records import ParseResult, PayloadError, Record

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(result: ParseResult, body: bytes | str, *, by_line: bool) -> None:
    """Every outcome is well formed: typed records, errors with a code and a message, indices in range."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    # Line-based indices stay below the line count; array indices below the element count, bounded by length.
    lines = max(1, text.count("\n") + 1) if by_line else len(text) + 1
    for record in result.records:
        assert isinstance(record, Record)
        assert isinstance(record.fields, dict)
        assert all(isinstance(key, str) for key in record.fields)
        assert 0 <= record.index < lines
    for error in result.errors:
        assert isinstance(error.code, str)
        assert error.code
        assert isinstance(error.message, str)
        assert error.message.strip()
        assert isinstance(error.raw, str)
        assert 0 <= error.index < lines
    indices = [r.index for r in result.records] + [e.index for e in result.errors]
    assert len(indices) == len(set(indices)), "one outcome per record"


def _payload_error_code(error: PayloadError) -> str:
    """The error's code, once its code and message are known to be non-empty text."""
    assert isinstance(error.code, str)
    assert error.code
    assert isinstance(error.message, str)
    assert error.message.strip()
    return error.code


def _line_protocol(body: bytes | str, precision: str = "ns") -> None:
    try:
        result = line_protocol_parse(body, precision=precision, now_ns=1767225600000000000)
    except PayloadError as error:
        code = _payload_error_code(error)
    else:
        code = None
    if code is not None:
        assert code == "invalid_encoding"
        return
    _check(result, body, by_line=True)
    for record in result.records:
        assert isinstance(record.measurement, str)
        assert record.measurement
        assert isinstance(record.tags, dict)
        assert all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in record.tags.items())
        assert record.fields
        assert all(type(value) in (float, int, bool, str) for value in record.fields.values())
        assert isinstance(record.time_ns, int)
        assert isinstance(record.raw, str)
    for error in result.errors:
        # Malformed lines are quoted as InfluxDB quotes them; its shard-level refusals speak for themselves.
        assert error.code in {"invalid_line_protocol", "field_type_conflict", "reserved_key"}
        if error.code == "invalid_line_protocol":
            assert error.message.startswith("unable to parse '")


def _json(body: bytes | str, ndjson: bool | None) -> None:
    try:
        result = json_records_parse(body, ndjson=ndjson)
    except PayloadError as error:
        code = _payload_error_code(error)
    else:
        code = None
    if code is not None:
        assert code in {"invalid_encoding", "invalid_json"}
        return
    _check(result, body, by_line=False)
    for record in result.records:
        assert record.tags is None
        assert record.measurement is None
        assert record.time_ns is None
    for error in result.errors:
        assert error.code in {"invalid_json", "not_an_object"}


# --- arbitrary input ------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(sorted(PRECISION_NS)))
def test_line_protocol_arbitrary_bytes(body: bytes, precision: str) -> None:
    _line_protocol(body, precision)


@FUZZ
@given(st.text(max_size=300))
def test_line_protocol_arbitrary_text(body: str) -> None:
    _line_protocol(body)


# Text biased toward the characters line protocol cares about.
_LP_ALPHABET = st.sampled_from([*'mft ,=\\"\n\r\t#.-+eEiuTFa0123456789_', "\u0661", "é", "\x00"])


@FUZZ
@given(st.text(_LP_ALPHABET, max_size=120))
def test_line_protocol_special_characters(body: str) -> None:
    _line_protocol(body)


_VALID_LINES = [
    "factory,device=d0001,facility=f1 temperature=21.5,vibration=0.31,pressure=101.2 1767225600000000000",
    'm\\ x,t\\=k=v\\,w s="a\\"b\\\\c",i=-5i,u=5u,b=true,f=-1.5e3 -5',
    "cpu,host=a usage_user=12i,active=t",
    'weather,location=us-midwest temperature=82,note="hot, dry" 1465839830100400200',
]


@st.composite
def _mutated_line(draw: st.DrawFn) -> str:
    """A valid line with a few characters inserted, deleted, replaced or swapped."""
    line = draw(st.sampled_from(_VALID_LINES))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(line)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        char = draw(_LP_ALPHABET)
        if action == "insert":
            line = line[:position] + char + line[position:]
        elif action == "delete":
            line = line[:position] + line[position + 1 :]
        elif action == "replace":
            line = line[:position] + char + line[position + 1 :]
        else:
            line = line[:position] + line[position : position + 5] + line[position:]
    return line


@FUZZ
@given(st.lists(_mutated_line(), min_size=1, max_size=4), st.sampled_from(sorted(PRECISION_NS)))
def test_line_protocol_near_valid_lines(lines: list[str], precision: str) -> None:
    body = "\n".join(lines)
    _line_protocol(body, precision)
    _line_protocol(body.encode(), precision)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([None, True, False]))
def test_json_arbitrary_bytes(body: bytes, ndjson: bool | None) -> None:
    _json(body, ndjson)


@FUZZ
@given(st.text(max_size=300), st.sampled_from([None, True, False]))
def test_json_arbitrary_text(body: str, ndjson: bool | None) -> None:
    _json(body, ndjson)


_JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)
_JSON_ALPHABET = st.sampled_from([*'{}[]",:\n\r \t\\0123456789.eE+-truefalsnNI', "\ud800", "\x00", "é"])


@st.composite
def _mutated_json(draw: st.DrawFn) -> str:
    """Serialised JSON values (as an array, one object or NDJSON) with a few characters changed."""
    values = draw(st.lists(_JSON_VALUE, min_size=1, max_size=4))
    shape = draw(st.sampled_from(["array", "object", "ndjson"]))
    if shape == "array":
        text = json.dumps(values)
    elif shape == "object":
        text = json.dumps(values[0], indent=draw(st.sampled_from([None, 2])))
    else:
        text = "\n".join(json.dumps(value) for value in values)
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(text)))
        char = draw(_JSON_ALPHABET)
        if draw(st.booleans()):
            text = text[:position] + char + text[position:]
        else:
            text = text[:position] + text[position + 1 :]
    return text


@FUZZ
@given(_mutated_json(), st.sampled_from([None, True, False]))
def test_json_near_valid_documents(body: str, ndjson: bool | None) -> None:
    _json(body, ndjson)
    try:
        encoded = body.encode()
    except UnicodeEncodeError:  # a lone surrogate: such a str can reach the parser, but not such bytes
        return
    _json(encoded, ndjson)
