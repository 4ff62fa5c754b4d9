"""Line protocol's two paths (the split-based fast path and InfluxDB 1.x's scanner) agree, and records rendered
as InfluxDB 1.x writers escape them parse back to themselves."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from apps.ingestion.parsers import line_protocol
from apps.ingestion.parsers.line_protocol import PRECISION_NS, TIME_NS_MAX, line_protocol_parse
from apps.ingestion.parsers.line_protocol_lines import line_content
from apps.ingestion.parsers.line_protocol_scan import LineError, line_scan, reserved_check

REFERENCE_LINE = "factory,device=d0001,facility=f1 temperature=21.5,vibration=0.31,pressure=101.2 1767225600000000000"

# --- fast and careful paths -----------------------------------------------------------------------


def _careful(line: str, precision: str = "ns") -> object:
    """What the character-level scanner alone makes of a line, in the shape the public function reports."""
    content = line_content(line)
    try:
        measurement, tags, fields, kinds, time_ns = line_scan(content, PRECISION_NS[precision])
        reserved_check(measurement, tags, fields, kinds)
    except LineError as error:
        return ("error", error.reason, error.field)
    return ("record", measurement, tags, _typed(fields), time_ns)


def _public(line: str, precision: str = "ns") -> object:
    result = line_protocol_parse(line, precision=precision)
    if result.errors:
        error = result.errors[0]
        reason = error.message.split("': ", 1)[1] if error.code == "invalid_line_protocol" else error.message
        return ("error", reason.removesuffix(line_protocol._CR_HINT), error.field)
    record = result.records[0]
    return ("record", record.measurement, record.tags, _typed(record.fields), record.time_ns)


def _typed(fields: dict[str, object]) -> list[tuple[str, type, object]]:
    """Fields with their types, since True == 1 == 1.0 would hide a type mix-up."""
    return [(key, type(value), value) for key, value in fields.items()]


@pytest.mark.parametrize(
    "line",
    [
        REFERENCE_LINE,
        "m f=1",
        "m,t=v f=1i,g=2u,h=T,k=-1.5e-3 -7",
        "m f=t,g=F,h=FALSE",
        "m f=1  5",
        "m f=1 5 ",
        "m,t=v,t=w f=1",
        "m f=1e999",
        "m f=+1",
        "m f=1_0 1",
        "m f=1 1_0",
        "m f=1 0000000000000000000005",
        "m f=\u0661",
        "m f=1 \u0661",
        "m,t=a=b f=1",
        "m,=b f=1",
        "m, f=1",
        ",t=v f=1",
        "m f=1,,g=1",
        "m =1",
        "m f=1.",
        "m f=.",
        "m f=ti",
        "m f=9223372036854775808i",
        "m\tf=1",
        "m f=1\t",
        f"m f=1 {TIME_NS_MAX}",
        f"m f=1 {TIME_NS_MAX + 1}",
    ],
)
def test_fast_and_careful_paths_agree_on_tricky_plain_lines(line: str) -> None:
    assert _public(line) == _careful(line)


def test_plain_valid_lines_never_reach_the_careful_path() -> None:
    body = f"{REFERENCE_LINE}\nm f=1\ncpu,host=a usage=1i,ok=true,n=2u 5\n"
    with mock.patch.object(line_protocol, "line_scan", side_effect=AssertionError("careful path used")):
        result = line_protocol_parse(body)
    assert len(result.records) == 3


# Generated records, rendered as InfluxDB 1.x writers escape them, parsed back.

_NO_NEWLINE = st.characters(blacklist_categories=["Cs"], blacklist_characters="\n")
_NAME = st.text(_NO_NEWLINE, min_size=1, max_size=10)
_PLAIN_NAME = st.text(st.sampled_from("abcxyzAZ019_-.:/"), min_size=1, max_size=8)


def _escape(text: str, specials: str, unescaped: str) -> str:
    """Text as a 1.x writer renders it: each special character after a backslash, and a literal backslash doubled
    only where it comes before a character the reader unescapes (1.x has no other way to write a backslash)."""
    out = []
    for position, char in enumerate(text):
        following = text[position + 1 : position + 2]
        if char in specials:
            out.append("\\" + char)
        elif char == "\\" and following and following in unescaped and following not in specials:
            out.append("\\\\")
        else:
            out.append(char)
    return "".join(out)


_FIELD_KEY_UNESCAPED = ',= "'  # what InfluxDB 1.x unescapes after a backslash in a field key


def _measurement_ok(text: str) -> bool:
    return text[0] not in "#\t\x00\ufeff" and not text.endswith("\\")


def _tag_ok(text: str) -> bool:
    return text != "time" and not text.endswith("\\")


def _field_key_ok(text: str) -> bool:
    # After a backslash, a space, comma or '=' cannot be written in a field key; nor can a leading tab or NUL
    # (skipped as whitespace), nor a final backslash.
    if text == "time" or text[0] in "\t\x00" or text.endswith("\\"):
        return False
    return not any(text[i] == "\\" and text[i + 1] in " ,=" for i in range(len(text) - 1))


_FLOAT = st.floats(allow_nan=False, allow_infinity=False)
_INT = st.integers(-(2**63), 2**63 - 1)
_UINT = st.integers(0, 2**64 - 1)
_BOOLEAN_TEXT = st.sampled_from(["t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"])
_STRING_CHARS = st.characters(blacklist_categories=["Cs"])


@st.composite
def _field_value(draw: st.DrawFn, *, strings: bool, newlines: bool) -> tuple[str, object]:
    """A rendered field value and what it must parse to."""
    kinds = ["float", "int", "uint", "bool", "string"] if strings else ["float", "int", "uint", "bool"]
    kind = draw(st.sampled_from(kinds))
    if kind == "float":
        number = draw(_FLOAT)
        return repr(number), number
    if kind == "int":
        number = draw(_INT)
        return f"{number}i", number
    if kind == "uint":
        number = draw(_UINT)
        return f"{number}u", number
    if kind == "bool":
        text = draw(_BOOLEAN_TEXT)
        return text, text[0] in "tT"
    text = draw(st.text(_STRING_CHARS if newlines else _NO_NEWLINE, max_size=12))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"', text


@st.composite
def _rendered_line(draw: st.DrawFn, *, plain: bool) -> tuple[str, str, tuple[object, ...]]:
    """A line, its precision, and the record it must parse to."""
    name = _PLAIN_NAME if plain else _NAME
    measurement = draw(name.filter(_measurement_ok))
    tags = draw(st.dictionaries(name.filter(_tag_ok), name.filter(_tag_ok), max_size=4))
    key = _escape(measurement, ", ", ', "=') + "".join(
        f",{_escape(k, ',= ', ',= ')}={_escape(v, ',= ', ',= ')}" for k, v in tags.items()
    )
    # InfluxDB finds a line's end by other escape rules than its key's: a newline in a string is only safe to
    # test after a key without backslashes (with them, InfluxDB itself may end the line inside the string).
    values = _field_value(strings=not plain, newlines="\\" not in key)
    fields = draw(st.dictionaries(name.filter(_field_key_ok), values, min_size=1, max_size=5))
    precision = draw(st.sampled_from(sorted(PRECISION_NS)))
    bound = TIME_NS_MAX // PRECISION_NS[precision]
    timestamp = draw(st.none() | st.integers(0 if plain else -bound, bound))
    gap = " " if plain else draw(st.sampled_from([" ", "  "]))
    lead = "" if plain else draw(st.sampled_from(["", " ", "\t "]))
    tail = "" if plain else draw(st.sampled_from(["", " "]))

    field_set = ",".join(f"{_escape(k, ',= ', _FIELD_KEY_UNESCAPED)}={text}" for k, (text, _) in fields.items())
    line = lead + key + gap + field_set + ("" if timestamp is None else f"{gap}{timestamp}") + tail
    time_ns = None if timestamp is None else timestamp * PRECISION_NS[precision]
    typed_fields = _typed({k: value for k, (_, value) in fields.items()})
    return line, precision, ("record", measurement, tags, typed_fields, time_ns)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_rendered_line(plain=False))
def test_rendered_records_round_trip_and_paths_agree(case: tuple[str, str, tuple[object, ...]]) -> None:
    line, precision, expected = case
    assert _public(line, precision) == expected
    assert _careful(line, precision) == expected
    assert _public(line + "\n", precision) == expected


@settings(max_examples=300)
@given(_rendered_line(plain=True))
def test_plain_records_take_the_fast_path_and_match_the_careful_one(
    case: tuple[str, str, tuple[object, ...]],
) -> None:
    line, precision, expected = case
    with mock.patch.object(line_protocol, "line_scan", side_effect=AssertionError("careful path used")):
        fast = _public(line, precision)
    assert fast == expected
    assert _careful(line, precision) == expected


@settings(max_examples=200)
@given(st.lists(_rendered_line(plain=False), min_size=1, max_size=6))
def test_bodies_keep_line_indices(cases: list[tuple[str, str, tuple[object, ...]]]) -> None:
    # InfluxDB looks for a line's end by counting '=' and ',' once it has seen a space, a leading one too, and a
    # '"' in a name after that may open a "string" that runs past the newline: a quirk it has, and we with it.
    # Bodies of several lines are generated without quotes in names, and with a measurement each (a field that
    # changes type within a body refuses the later line).
    for _, _, (_, measurement, tags, fields, _) in cases:
        assume(not any('"' in name for name in (measurement, *tags, *tags.values(), *(f[0] for f in fields))))
    assume(len({expected[1] for _, _, expected in cases}) == len(cases))
    # Timestamps are drawn within range for their own precision, so they are in range as nanoseconds too.
    lines = [line for line, _, _ in cases]
    result = line_protocol_parse("\n# comment\n".join(lines), precision="ns")
    assert result.errors == []
    # A line is numbered by the text line it starts on; a string value may hold newlines.
    starts = [sum(line.count("\n") + 2 for line in lines[:i]) for i in range(len(lines))]
    assert [(record.index, record.raw) for record in result.records] == list(zip(starts, lines, strict=True))


_LINE_ALPHABET = st.sampled_from([*'mft ,=\\"\r\t#.-+eEiuTFa0123456789_', "\u0661", "é", "\x00"])


@settings(max_examples=500)
@given(st.text(_LINE_ALPHABET, min_size=1, max_size=60))
def test_fast_and_careful_paths_agree_on_arbitrary_lines(line: str) -> None:
    if line_content(line) is None:
        assert line_protocol_parse(line) == line_protocol_parse("")
        return
    assert _public(line) == _careful(line)
