"""Line protocol: InfluxDB's grammar, escapes, types and error wording, and fast and careful paths agreeing."""

from __future__ import annotations

import pytest

from apps.ingestion.parsers.line_protocol import (
    PRECISION_NS,
    TIME_NS_MAX,
    TIME_NS_MIN,
    line_protocol_parse,
)
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
