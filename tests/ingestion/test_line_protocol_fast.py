"""The line-protocol fast path stores and refuses exactly what the careful path (parse, then validate) does."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.ingestion.models import DeadLetter
from apps.ingestion.parsers.line_protocol import PRECISION_NS, line_protocol_parse, time_ns_of
from apps.ingestion.services import batch_ingest, batch_ingest_line_protocol
from tests.ingestion.factories import source_with_key, stored_points

pytestmark = pytest.mark.django_db
# A fraction of a second, so that lines without a timestamp are truncated to the precision.
NOW = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
BASE_NS = int(datetime(2026, 1, 1, 11, tzinfo=UTC).timestamp()) * 10**9
PRECISIONS = ["ns", "ms", "s", "h"]
_slugs = itertools.count()

SCHEMAS = [
    ("infer", {}),
    ("infer", {"measures": {"t": {"type": "number", "min": 0, "max": 50}}}),
    ("strict", {"measures": {"t": {"type": "number", "max": 40}, "on": {"type": "boolean"}},
                "labels": ["device", "site"], "unknown_fields": "ignore"}),
    ("strict", {"measures": {"t": {"type": "number"}}, "labels": ["device"], "unknown_fields": "reject"}),
]  # fmt: skip

values = st.one_of(
    st.floats(min_value=-100, max_value=100, allow_nan=False).map(lambda v: repr(round(v, 3))),
    st.integers(min_value=-5, max_value=60).map(lambda v: f"{v}i"),
    st.sampled_from([
        "t", "false", '"text"', "1u", "nan", "+1", "1e400", "", "1.5.2", "9223372036854775808i",
        '"multi\nline, with = and a space"', '"a \\"quoted\\" word"', '"ends in a backslash\\\\"',
    ]),
)  # fmt: skip
# Escapes and backslashes (a Windows share, an escaped space), a value starting with '=', the reserved key.
# Few series keys, most of them plain, so that the second body's lines often take the fast path.
devices = st.sampled_from(["d1", "d1", "d1", "d2", "d3", "d\\ 4", "\\\\host\\share", "=d5"])


@st.composite
def lines(draw: st.DrawFn, precision: str) -> str:
    """A line of a few known series, fields of mixed types (so types conflict), in the given precision."""
    measurement = draw(st.sampled_from(["m", "m", "cpu", "time"]))
    device = draw(devices)
    site = draw(st.sampled_from(["", "", "", ",site=s1", ",site=s 2", ",time=x"]))  # "s 2" unescaped: malformed
    fields = draw(
        st.lists(st.tuples(st.sampled_from(["t", "t", "t", "on", "x", "time"]), values), min_size=1, max_size=3,
                 unique_by=lambda f: f[0])
    )  # fmt: skip
    offset = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=30)))
    stamp = "" if offset is None else f" {(BASE_NS + offset * 10**9) // PRECISION_NS[precision]}"
    end = draw(st.sampled_from(["", "", "", "\r"]))  # a CR before LF spoils the line, as in InfluxDB
    return f"{measurement},device={device}{site} " + ",".join(f"{n}={v}" for n, v in fields) + stamp + end


@st.composite
def bodies(draw: st.DrawFn, precision: str) -> str:
    others = st.sampled_from(
        ["# comment", "", "garbage", "m,device=d1 t=1 notatime", 'log,device=d1 message="strings only"']
    )
    return "\n".join(draw(st.lists(st.one_of(lines(precision), others), min_size=1, max_size=25)))


def _outcome(source):
    points = [(metric, labels, moment, value) for metric, labels, moment, value, _ in stored_points(source=source)]
    letters = sorted(DeadLetter.objects.filter(source=source).values_list("record_index", "error_code", "error_field"))
    return points, letters


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=st.sampled_from(SCHEMAS), precision=st.sampled_from(PRECISIONS), data=st.data())
def test_fast_path_matches_the_careful_path(django_capture_on_commit_callbacks, schema, precision, data):
    first, second = data.draw(bodies(precision)), data.draw(bodies(precision))
    mode, definition = schema
    number = next(_slugs)
    careful_source, _ = source_with_key(slug=f"careful-{number}", schema_mode=mode, schema=definition)
    fast_source, _ = source_with_key(slug=f"fast-{number}", schema_mode=mode, schema=definition)
    # The second body repeats series of the first, so its known lines take the fast path.
    for body in (first, first + "\n" + second, second):
        parsed = line_protocol_parse(body, precision=precision, now_ns=time_ns_of(NOW))
        # Commit callbacks run as after a real commit: that is when both paths learn series and measures (a careful
        # path that never learnt took a string for a stored measure as a string to ignore, where the fast path
        # answered the type conflict, as both do in a server).
        with django_capture_on_commit_callbacks(execute=True):
            careful = batch_ingest(
                source_id=careful_source.pk,
                parsed=parsed,
                transport="influx_v2",
                payload_format="line",
                received_at=NOW,
            )
        with django_capture_on_commit_callbacks(execute=True):
            fast = batch_ingest_line_protocol(
                source_id=fast_source.pk, body=body, precision=precision, transport="influx_v2", received_at=NOW
            )
        assert (fast.accepted, fast.rejected, fast.points) == (careful.accepted, careful.rejected, careful.points)
        assert [e.as_dict() for e in fast.errors] == [e.as_dict() for e in careful.errors]
    assert _outcome(fast_source) == _outcome(careful_source)
    # A plain line (no quotes or escapes) the careful path accepted must have taught the fast path its series.
    from apps.ingestion.services import ingest_target_get

    validator = ingest_target_get(source_id=careful_source.pk).validator
    numeric = [
        record
        for record in line_protocol_parse(first, precision=precision, now_ns=time_ns_of(NOW)).records
        if '"' not in record.raw
        and "\\" not in record.raw
        and any(type(value) in (int, float) for value in record.fields.values())
    ]
    learnable = validator.validate(numeric, received_at=NOW).accepted_records
    if learnable:
        assert ingest_target_get(source_id=fast_source.pk).line_cache


@pytest.mark.parametrize(
    "second",
    [
        # The fast path stores the float, the careful path (a new series) then refuses the integer ...
        [f"m,device=d1 t=2.5 {BASE_NS + 10**9}", f"m,device=d2 t=3i {BASE_NS + 10**9}"],
        # ... or the careful path's integer comes first, and the fast path's float must be refused.
        [f"m,device=d2 t=3i {BASE_NS + 10**9}", f"m,device=d1 t=2.5 {BASE_NS + 10**9}"],
        # Both on the fast path, one float and one integer of the same field.
        [f"m,device=d1 t=4i {BASE_NS + 2 * 10**9}", f"m,device=d1 t=2.5 {BASE_NS + 10**9}"],
    ],
)
def test_a_field_changing_type_across_the_paths_refuses_the_later_line(django_capture_on_commit_callbacks, second):
    """InfluxDB refuses the later line of a field that changes type within a body, whichever path took which."""
    careful_source, _ = source_with_key(slug="careful")
    fast_source, _ = source_with_key(slug="fast")
    for body in (f"m,device=d1 t=1.5 {BASE_NS}\nm,device=d1 t=1i {BASE_NS}", "\n".join(second)):
        careful = batch_ingest(
            source_id=careful_source.pk, parsed=line_protocol_parse(body), transport="influx_v2",
            payload_format="line", received_at=NOW,
        )  # fmt: skip
        with django_capture_on_commit_callbacks(execute=True):
            fast = batch_ingest_line_protocol(
                source_id=fast_source.pk, body=body, precision="ns", transport="influx_v2", received_at=NOW
            )
        assert [e.as_dict() for e in fast.errors] == [e.as_dict() for e in careful.errors]
        assert [(e.index, e.code) for e in fast.errors] == [(1, "field_type_conflict")]
    assert _outcome(fast_source) == _outcome(careful_source)


def test_known_series_take_the_fast_path(django_capture_on_commit_callbacks):
    source, _ = source_with_key(slug="plant")
    body = "\n".join(f"m,device=d{i} t={i}.5 {BASE_NS + i}" for i in range(50))
    with django_capture_on_commit_callbacks(execute=True):
        first = batch_ingest_line_protocol(source_id=source.pk, body=body, precision="ns", transport="influx_v2",
                                           received_at=NOW)  # fmt: skip
    assert first.points == 50
    from apps.ingestion.line_protocol_fast import line_protocol_rows
    from apps.ingestion.services import ingest_target_get

    target = ingest_target_get(source_id=source.pk)
    later = "\n".join(f"m,device=d{i} t={i}.25 {BASE_NS + 10**9 + i}" for i in range(50))
    split = line_protocol_rows(text=later, precision="ns", cache=target.line_cache, validator=target.validator,
                               received_at=NOW)  # fmt: skip
    assert (len(split.rows), split.careful) == (50, [])
    assert [value for _, _, value in split.rows] == [i + 0.25 for i in range(50)]


def test_a_string_for_a_stored_measure_is_a_type_conflict_on_both_paths(django_capture_on_commit_callbacks):
    """CI's counterexample: once t is stored as a measure, t="text" is refused (type_conflict) by either path."""
    number = next(_slugs)
    careful_source, _ = source_with_key(slug=f"careful-{number}", schema_mode="infer", schema={})
    fast_source, _ = source_with_key(slug=f"fast-{number}", schema_mode="infer", schema={})
    outcomes = []
    for body in ("m,device=d1 t=0.0", 'm,device=d1 t="text"'):
        with django_capture_on_commit_callbacks(execute=True):
            careful = batch_ingest(
                source_id=careful_source.pk, parsed=line_protocol_parse(body, precision="ns", now_ns=time_ns_of(NOW)),
                transport="influx_v2", payload_format="line", received_at=NOW,
            )  # fmt: skip
        with django_capture_on_commit_callbacks(execute=True):
            fast = batch_ingest_line_protocol(
                source_id=fast_source.pk, body=body, precision="ns", transport="influx_v2", received_at=NOW
            )
        outcomes.append(((careful.accepted, careful.rejected), (fast.accepted, fast.rejected)))
        if careful.errors or fast.errors:
            assert [e.code for e in careful.errors] == [e.code for e in fast.errors] == ["type_conflict"]
    assert outcomes == [((1, 0), (1, 0)), ((0, 1), (0, 1))]
