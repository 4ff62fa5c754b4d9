"""Line protocol: InfluxDB's grammar, escapes, types and error wording, and fast and careful paths agreeing."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from apps.ingestion.parsers import line_protocol
from apps.ingestion.parsers.line_protocol import (
    PRECISION_NS,
    TIME_NS_MAX,
    TIME_NS_MIN,
    line_protocol_parse,
)
from apps.ingestion.parsers.line_protocol_scan import LineError, line_content, line_scan, reserved_check
from apps.ingestion.records import PayloadError, Record

REFERENCE_LINE = "factory,device=d0001,facility=f1 temperature=21.5,vibration=0.31,pressure=101.2 1767225600000000000"


def _one(line: str, **options: object) -> Record:
    result = line_protocol_parse(line, **options)  # type: ignore[arg-type]
    assert result.errors == [], result.errors
    assert len(result.records) == 1
    return result.records[0]


def _error(line: str) -> tuple[str, str | None]:
    result = line_protocol_parse(line)
    assert result.records == []
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.code == "invalid_line_protocol"
    assert error.raw == line
    prefix = f"unable to parse '{line.lstrip(' ')}': "
    assert error.message.startswith(prefix), error.message
    return error.message[len(prefix) :], error.field


# --- the basics -----------------------------------------------------------------------------------


def test_reference_line() -> None:
    record = _one(REFERENCE_LINE)
    assert record == Record(
        index=0,
        fields={"temperature": 21.5, "vibration": 0.31, "pressure": 101.2},
        tags={"device": "d0001", "facility": "f1"},
        measurement="factory",
        time_ns=1767225600000000000,
        raw=REFERENCE_LINE,
    )


def test_bytes_and_str_parse_alike() -> None:
    body = f'{REFERENCE_LINE}\nm,t=é s="ü"\n'
    assert line_protocol_parse(body.encode()) == line_protocol_parse(body)


def test_no_tags_gives_an_empty_dict_and_no_timestamp_gives_none() -> None:
    record = _one("m f=1")
    assert record.tags == {}
    assert record.time_ns is None


def test_each_record_gets_its_own_tags_dict() -> None:
    result = line_protocol_parse("m,a=b f=1\nm,a=b f=2\n")
    first, second = result.records
    assert first.tags == second.tags
    assert first.tags is not second.tags


def test_field_types() -> None:
    record = _one('m f=1,g=-1.5e3,i=-42i,u=42u,b=true,s="hi"')
    assert record.fields == {"f": 1.0, "g": -1500.0, "i": -42, "u": 42, "b": True, "s": "hi"}
    assert [type(value) for value in record.fields.values()] == [float, float, int, int, bool, str]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1.0),
        ("1.0", 1.0),
        ("-1.5e3", -1500.0),
        ("5.", 5.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1E5", 100000.0),
        ("1e+5", 100000.0),
        ("1e-5", 0.00001),
        ("007", 7.0),
        ("-0", -0.0),
        ("1" * 300, float("1" * 300)),
    ],
)
def test_float_forms(text: str, expected: float) -> None:
    value = _one(f"m f={text}").fields["f"]
    assert type(value) is float
    assert value == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0i", 0),
        ("-0i", 0),
        ("9223372036854775807i", 2**63 - 1),
        ("-9223372036854775808i", -(2**63)),
        ("0u", 0),
        ("18446744073709551615u", 2**64 - 1),
        ("00000000000000000000000042i", 42),
    ],
)
def test_integer_bounds(text: str, expected: int) -> None:
    value = _one(f"m f={text}").fields["f"]
    assert type(value) is int
    assert value == expected


@pytest.mark.parametrize("text", ["t", "T", "true", "True", "TRUE"])
def test_true_spellings(text: str) -> None:
    assert _one(f"m f={text}").fields["f"] is True


@pytest.mark.parametrize("text", ["f", "F", "false", "False", "FALSE"])
def test_false_spellings(text: str) -> None:
    assert _one(f"m f={text}").fields["f"] is False


def test_repeated_field_keeps_the_last_value() -> None:
    assert _one("m f=1,f=2").fields == {"f": 2.0}


# --- escaping -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "measurement", "tags", "fields"),
    [
        (r"my\ m,t=v f=1", "my m", {"t": "v"}, {"f": 1.0}),
        (r"my\,m f=1", "my,m", {}, {"f": 1.0}),
        (r"m=x f=1", "m=x", {}, {"f": 1.0}),  # '=' needs no escape in a measurement
        (r"m\=x f=1", "m=x", {}, {"f": 1.0}),  # ... but InfluxDB 1.x unescapes it there, and \" too
        (r"m\"x f=1", 'm"x', {}, {"f": 1.0}),
        (r"m,t\ k\,\==v\ a\,\= f=1", "m", {"t k,=": "v a,="}, {"f": 1.0}),
        (r"m f\ k\,\==1", "m", {}, {"f k,=": 1.0}),
        (r"m f\"x=1", "m", {}, {'f"x': 1.0}),  # a field key unescapes \" as well
        (r"m,t\"=a f=1", "m", {'t\\"': "a"}, {"f": 1.0}),  # ... a tag key does not
        (r"m,t=a\b f=1", "m", {"t": r"a\b"}, {"f": 1.0}),  # a lone backslash is literal
        # Two backslashes are two (InfluxDB 1.x): a Windows share keeps both.
        (r"m,path=\\host\share f=1", "m", {"path": r"\\host\share"}, {"f": 1.0}),
        (r"m\\x f=1", r"m\\x", {}, {"f": 1.0}),
        (r"m a\\x=1", "m", {}, {r"a\\x": 1.0}),
        # A backslash escapes the character after it, even when it follows another backslash.
        (r"m,t=a\\ b f=1", "m", {"t": r"a\ b"}, {"f": 1.0}),
        (r"m,t=a\\\ b f=1", "m", {"t": r"a\\ b"}, {"f": 1.0}),
        (r"m,t=x\\,y f=1", "m", {"t": r"x\,y"}, {"f": 1.0}),
        (r"m\\,t=a f=1", r"m\,t=a", {}, {"f": 1.0}),
        ("m,t==v f=1", "m", {"t": "=v"}, {"f": 1.0}),  # a tag value may start with '='
        (r'm s="a\"b"', "m", {}, {"s": 'a"b'}),
        (r'm s="a\\b"', "m", {}, {"s": "a\\b"}),
        (r'm s="a\nb"', "m", {}, {"s": r"a\nb"}),  # only \" and \\ are escapes in strings
        (r'm s="a\\"', "m", {}, {"s": "a\\"}),
        ('m s="a, b=c d",f=1', "m", {}, {"s": "a, b=c d", "f": 1.0}),
        ('m s=""', "m", {}, {"s": ""}),
        ('m s="a"b,f=1', "m", {}, {"s": 'a"', "f": 1.0}),  # text after the closing quote: InfluxDB keeps it so
        ('m,t="q" f=1', "m", {"t": '"q"'}, {"f": 1.0}),  # quotes mean nothing in tags
        ('m k"=1', "m", {}, {'k"': 1.0}),  # ... or in field keys
        ("m,t=é f=1", "m", {"t": "é"}, {"f": 1.0}),
        ("time f=1", "time", {}, {"f": 1.0}),  # a measurement may be called time
    ],
)
def test_escapes(line: str, measurement: str, tags: dict[str, str], fields: dict[str, object]) -> None:
    record = _one(line)
    assert (record.measurement, record.tags, record.fields) == (measurement, tags, fields)


# --- lines, whitespace, comments ------------------------------------------------------------------


def test_comments_blank_lines_and_indices() -> None:
    body = "# header\n\nm f=1\n   \n  # indented comment\n\x00# after a NUL\nbad\nm f=2 5\n"
    result = line_protocol_parse(body)
    assert [(r.index, r.fields, r.time_ns, r.raw) for r in result.records] == [
        (2, {"f": 1.0}, None, "m f=1"),
        (7, {"f": 2.0}, 5, "m f=2 5"),
    ]
    assert [(e.index, e.raw) for e in result.errors] == [(6, "bad")]


def test_crlf_lines_are_refused_as_influxdb_refuses_them() -> None:
    """A CR is an ordinary character: before LF it spoils a timestamp or a number, and the message says why."""
    result = line_protocol_parse('m f=1 5\r\nm f=2\r\n\r\nm s="x"\r\n')
    assert [(e.index, e.message) for e in result.errors] == [
        (0, "unable to parse 'm f=1 5\r': bad timestamp (the line ends in a carriage return: line protocol lines "
            "end with LF alone)"),
        (1, "unable to parse 'm f=2\r': invalid number (the line ends in a carriage return: line protocol lines "
            "end with LF alone)"),
        (2, "unable to parse '\r': missing fields (the line ends in a carriage return: line protocol lines end "
            "with LF alone)"),
    ]  # fmt: skip
    # After a string's closing quote InfluxDB keeps the CR (and the quote) as part of the string.
    assert [(r.index, r.fields) for r in result.records] == [(3, {"s": 'x"'})]


def test_extra_spaces_and_leading_blanks_are_tolerated() -> None:
    record = _one(" \t m,t=v   f=1    5   ")
    assert (record.measurement, record.tags, record.fields, record.time_ns) == ("m", {"t": "v"}, {"f": 1.0}, 5)
    assert record.raw == " \t m,t=v   f=1    5   "
    assert _one("m f=1 \t5").time_ns == 5  # spaces, tabs and NULs separate the timestamp
    assert _one("m f=1 \t").time_ns is None


def test_a_quoted_newline_does_not_end_the_line() -> None:
    """influxdb-client sends a multi-line log message as one string field: the line goes on past the newline."""
    body = 'log,host=a message="first line\nsecond line, with = and \\"quotes\\"",level=3i 7\nm f=1 8'
    result = line_protocol_parse(body)
    assert result.errors == []
    assert [(r.index, r.fields, r.time_ns) for r in result.records] == [
        (0, {"message": 'first line\nsecond line, with = and "quotes"', "level": 3}, 7),
        (2, {"f": 1.0}, 8),  # numbered by the text line it starts on
    ]
    assert result.records[0].raw == body.split("\nm f=1")[0]


def test_an_unclosed_quote_takes_the_rest_of_the_body() -> None:
    result = line_protocol_parse('m s="abc\nm f=1 5\n')
    assert result.records == []
    assert [(e.index, e.message, e.field) for e in result.errors] == [
        (0, "unable to parse 'm s=\"abc\nm f=1 5': unbalanced quotes", "s")
    ]


def test_a_backslash_before_a_newline_continues_the_line() -> None:
    """InfluxDB 1.x skips the character after a backslash while it looks for the line's end, a newline too."""
    result = line_protocol_parse("m,t=a f=1,g=2\\\nx=3 0\nm,t=a\\\nb f=1 0")
    assert [(e.index, e.message) for e in result.errors] == [
        (0, "unable to parse 'm,t=a f=1,g=2\\\nx=3 0': invalid number")
    ]
    assert [(r.index, r.tags, r.fields) for r in result.records] == [(2, {"t": "a\\\nb"}, {"f": 1.0})]


def test_empty_body() -> None:
    assert line_protocol_parse(b"").records == []
    assert line_protocol_parse("\n\n# only comments\n").errors == []


def test_byte_order_mark_is_ignored() -> None:
    assert _one("\ufeffm f=1".encode()).measurement == "m"


def test_invalid_utf8_is_a_payload_error() -> None:
    with pytest.raises(PayloadError) as caught:
        line_protocol_parse(b"m f=1\nm,t=\xff f=1\n")
    assert caught.value.code == "invalid_encoding"
    assert "UTF-8" in caught.value.message


# --- timestamps and precision ---------------------------------------------------------------------


@pytest.mark.parametrize(("precision", "scale"), sorted(PRECISION_NS.items()))
def test_precisions(precision: str, scale: int) -> None:
    assert _one("m f=1 3", precision=precision).time_ns == 3 * scale


def test_precision_names() -> None:
    assert set(PRECISION_NS) == {"ns", "us", "ms", "s", "n", "u", "m", "h"}
    assert PRECISION_NS["m"] == 60 * 10**9
    assert PRECISION_NS["h"] == 3600 * 10**9


def test_unknown_precision_is_a_payload_error() -> None:
    with pytest.raises(PayloadError) as caught:
        line_protocol_parse("m f=1", precision="sec")
    assert caught.value.code == "invalid_precision"
    assert "'sec'" in caught.value.message


def test_now_ns_stamps_untimed_lines_truncated_to_the_precision() -> None:
    result = line_protocol_parse("m f=1\nm f=2 7", precision="s", now_ns=1767225600123456789)
    assert [r.time_ns for r in result.records] == [1767225600000000000, 7 * 10**9]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-5", -5),
        ("0", 0),
        ("00000000000000000000000001", 1),
        (str(TIME_NS_MAX), TIME_NS_MAX),
        (str(TIME_NS_MIN), TIME_NS_MIN),
    ],
)
def test_timestamp_forms(text: str, expected: int) -> None:
    assert _one(f"m f=1 {text}").time_ns == expected


@pytest.mark.parametrize(
    ("line", "precision"),
    [
        (f"m f=1 {TIME_NS_MAX + 1}", "ns"),
        (f"m f=1 {TIME_NS_MIN - 1}", "ns"),
        ("m f=1 " + "9" * 30, "ns"),
        (f"m f=1 {TIME_NS_MAX // 3_600_000_000_000 + 1}", "h"),
        ("m f=1 1767225600000000000", "s"),
    ],
)
def test_timestamps_out_of_range(line: str, precision: str) -> None:
    result = line_protocol_parse(line, precision=precision)
    assert result.records == []
    assert result.errors[0].message.endswith("time outside range -9223372036854775806 - 9223372036854775806")


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason", "field"),
    [
        ("m", "missing fields", None),
        ("m,t=v", "missing fields", None),
        ("m ", "invalid field format", None),
        ("m,t=v ", "invalid field format", None),
        (",t=v f=1", "missing measurement", None),
        ("m,=v f=1", "missing tag key", None),
        ("m, f=1", "missing tag key", None),
        ("m,t f=1", "missing tag value", "t"),
        ("m,t", "missing tag value", "t"),
        ("m,t= f=1", "missing tag value", "t"),
        ("m,t=a=b f=1", "invalid tag format", "t"),
        ("m,t=a,u=b,t=c f=1", "duplicate tags", "t"),
        ("m f", "invalid field format", "f"),
        ("m f=1,g", "invalid field format", "g"),
        ("m f=1,", "invalid field format", None),
        ("m f=1,,g=2", "invalid field format", None),
        ("m =1", "missing field key", None),
        ("m f=1,=2", "missing field key", None),
        ("m f=", "missing field value", "f"),
        ("m f=,g=1", "missing field value", "f"),
        ("m f= 5", "missing field value", "f"),
        ("m f=1.1.1", "invalid number", "f"),
        ("m f=+1", "invalid boolean", "f"),  # InfluxDB: only a digit, '.', '-' or n/N starts a number
        ("m f=1_000", "invalid number", "f"),
        ("m f=-", "invalid number", "f"),
        ("m f=-.", "invalid number", "f"),
        ("m f=.", "invalid number", "f"),
        ("m f=1e", "invalid float", "f"),
        ("m f=1e+", "invalid float", "f"),
        ("m f=NaN", "invalid number", "f"),
        ("m f=nan", "invalid number", "f"),
        ("m f=-inf", "invalid number", "f"),
        ("m f=1.5i", "invalid number", "f"),
        ("m f=1e3i", "invalid number", "f"),
        ("m f=1i5", "invalid number", "f"),
        ("m f=-1u", "invalid number", "f"),
        ("m f=\u0661\u0662", "invalid boolean", "f"),
        ("m f=+", "invalid boolean", "f"),
        ("m f=1\u0661", "invalid number", "f"),
        ("m f=\u0663i", "invalid boolean", "f"),
        ("m f=1e999", "invalid float 1e999: value out of range", "f"),
        ("m f=-1e999", "invalid float -1e999: value out of range", "f"),
        ("m f=9223372036854775808i", "unable to parse integer 9223372036854775808: value out of range", "f"),
        ("m f=-9223372036854775809i", "unable to parse integer -9223372036854775809: value out of range", "f"),
        ("m f=18446744073709551616u", "unable to parse unsigned 18446744073709551616: value out of range", "f"),
        ("m f=yes", "invalid boolean", "f"),
        ("m f=inf", "invalid boolean", "f"),
        ("m f=truE", "invalid boolean", "f"),
        ("m f=tru", "invalid boolean", "f"),
        ('m f="abc', "unbalanced quotes", "f"),
        ('m f="abc\\"', "unbalanced quotes", "f"),
        ('m f="a"="b"', "invalid field format", None),
        (
            "m a\\\\=1",
            "invalid field format: a backslash before '=' or ',' here makes InfluxDB 1.x read the field "
            "set two ways (its checks and its storage split it differently)",
            None,
        ),
        (
            "m a\\\\=1,b=2",
            "invalid field format: a backslash before '=' or ',' here makes InfluxDB 1.x read the "
            "field set two ways (its checks and its storage split it differently)",
            None,
        ),
        ("m \t=1", "missing field key", None),
        ("m f=1 12a", "bad timestamp", None),
        ("m f=1 -", "bad timestamp", None),
        ("m f=1 5\t", "bad timestamp", None),
        ("m f=1 1.5", "bad timestamp", None),
        ("m f=1 +5", "bad timestamp", None),
        ("m f=1 1_0", "bad timestamp", None),
        ("m f=1 \u0661", "bad timestamp", None),
        ("m f=1 g=2", "bad timestamp", None),
        ("m,t=a\\ f=1", "invalid tag format", "t"),  # the space after a backslash is escaped
        ("m\\ f=1", "missing fields", None),
        ("m f=1\t5", "invalid number", "f"),
        ("m f=1 1 2", "point is invalid: unexpected text after the timestamp", None),
    ],
)
def test_error_wording(line: str, reason: str, field: str | None) -> None:
    assert _error(line) == (reason, field)


def test_errors_do_not_stop_later_lines() -> None:
    result = line_protocol_parse("m f=1\nm f=x\nm f=3\n")
    assert [r.index for r in result.records] == [0, 2]
    assert [e.index for e in result.errors] == [1]
    assert result.errors[0].as_dict() == {
        "index": 1,
        "code": "invalid_line_protocol",
        "field": "f",
        "message": "unable to parse 'm f=x': invalid boolean",
    }


def test_a_float_beyond_float64_is_out_of_range() -> None:
    error = line_protocol_parse("m f=" + "1" * 400).errors[0]
    assert error.message.endswith(f"invalid float {'1' * 40}…: value out of range")
    assert error.field == "f"


def test_a_huge_integer_is_out_of_range_and_clipped_in_the_message() -> None:
    error = line_protocol_parse("m f=" + "9" * 5000 + "i").errors[0]
    assert error.message.endswith(f"unable to parse integer {'9' * 40}…: value out of range")
    assert error.field == "f"


def test_a_long_line_is_clipped_in_the_message_but_kept_whole_in_raw() -> None:
    line = "m f=" + "x" * 10_000
    error = line_protocol_parse(line).errors[0]
    assert len(error.message) < 300
    assert "…" in error.message
    assert error.raw == line


# --- compatibility with our own sender ------------------------------------------------------------


def test_simulator_lines_parse_back() -> None:
    from apps.ingestion.simulator.sinks import line_protocol_line

    record = {"time": "2026-01-01T00:00:00Z", "device": "d 1,x=y\\z", "temperature": 21.5, "count": 3}
    line = line_protocol_line(measurement="my factory", record=record)
    parsed = _one(line)
    assert parsed.measurement == "my factory"
    assert parsed.tags == {"device": "d 1,x=y\\z"}
    assert parsed.fields == {"count": 3.0, "temperature": 21.5}
    assert parsed.time_ns == 1767225600000000000


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
