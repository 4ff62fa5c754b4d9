"""The line-protocol fast path stores and refuses exactly what the careful path (parse, then validate) does."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.ingestion.models import DeadLetter
from apps.ingestion.parsers.line_protocol import line_protocol_parse
from apps.ingestion.services import batch_ingest, batch_ingest_line_protocol
from tests.ingestion.factories import source_with_key, stored_points

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
BASE_NS = int(NOW.timestamp()) * 10**9 - 3600 * 10**9
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
    st.sampled_from(["t", "false", '"text"', "1u", "nan", "+1", "1e400", "", "1.5.2", "9223372036854775808i"]),
)
lines = st.builds(
    lambda measurement, device, site, fields, offset: (
        f"{measurement},device={device}" + (f",site={site}" if site else "")
        + " " + ",".join(f"{name}={value}" for name, value in fields)
        + ("" if offset is None else f" {BASE_NS + offset * 10**9}")
    ),
    st.sampled_from(["m", "cpu"]),
    st.sampled_from(["d1", "d2", "d3"]),
    st.sampled_from([None, "s1", "s 2"]),  # "s 2" unescaped is a malformed line
    st.lists(st.tuples(st.sampled_from(["t", "on", "x"]), values), min_size=1, max_size=3, unique_by=lambda f: f[0]),
    st.one_of(st.none(), st.integers(min_value=0, max_value=30)),
)  # fmt: skip
bodies = st.lists(st.one_of(lines, st.sampled_from(["# comment", "", "garbage", "m,device=d1 t=1 notatime"])),
                  min_size=1, max_size=25).map("\n".join)  # fmt: skip


def _outcome(source):
    points = [(metric, labels, moment, value) for metric, labels, moment, value, _ in stored_points(source=source)]
    letters = sorted(DeadLetter.objects.filter(source=source).values_list("record_index", "error_code", "error_field"))
    return points, letters


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=st.sampled_from(SCHEMAS), first=bodies, second=bodies)
def test_fast_path_matches_the_careful_path(django_capture_on_commit_callbacks, schema, first, second):
    mode, definition = schema
    number = next(_slugs)
    careful_source, _ = source_with_key(slug=f"careful-{number}", schema_mode=mode, schema=definition)
    fast_source, _ = source_with_key(slug=f"fast-{number}", schema_mode=mode, schema=definition)
    # The second body repeats series of the first, so its known lines take the fast path.
    for body in (first, first + "\n" + second, second):
        careful = batch_ingest(
            source_id=careful_source.pk, parsed=line_protocol_parse(body), transport="influx_v2",
            payload_format="line", received_at=NOW,
        )  # fmt: skip
        # Commit callbacks run as after a real commit: that is when the fast path learns series.
        with django_capture_on_commit_callbacks(execute=True):
            fast = batch_ingest_line_protocol(
                source_id=fast_source.pk, body=body, precision="ns", transport="influx_v2", received_at=NOW
            )
        assert (fast.accepted, fast.rejected, fast.points) == (careful.accepted, careful.rejected, careful.points)
        assert [e.as_dict() for e in fast.errors] == [e.as_dict() for e in careful.errors]
    assert _outcome(fast_source) == _outcome(careful_source)
    # A plain line (no quotes or escapes) the careful path accepted must have taught the fast path its series.
    from apps.ingestion.services import ingest_target_get

    validator = ingest_target_get(source_id=careful_source.pk).validator
    plain = [line for line in first.split("\n") if '"' not in line and "\\" not in line]
    numeric = [
        record
        for record in line_protocol_parse("\n".join(plain)).records
        if any(type(value) in (int, float) for value in record.fields.values())
    ]
    learnable = validator.validate(numeric, received_at=NOW).accepted_records
    if learnable:
        assert ingest_target_get(source_id=fast_source.pk).line_cache


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
