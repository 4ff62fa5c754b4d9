"""The columnar line-protocol path stores exactly what the line-by-line fast path stores, or declines the body."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from apps.ingestion import events, line_protocol_columnar, services
from apps.ingestion.line_protocol_columnar import MIN_LINES, line_protocol_columns
from apps.ingestion.line_protocol_fast import SKIPPED, line_protocol_rows
from apps.ingestion.services import batch_ingest_line_protocol, ingest_target_get
from apps.storage.columns import EPOCH, PointColumns
from tests.ingestion.factories import infer_validator, source_with_key, stored_points

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
BASE_NS = int(NOW.timestamp()) * 10**9 - 3600 * 10**9
DEVICES = 40
_slugs = itertools.count()


def _cache() -> dict:
    cache = {(f"m,device=d{index}", "t"): (index + 1, None) for index in range(DEVICES)}
    cache.update({(f"m,device=d{index}", "u"): (1000 + index, None) for index in range(DEVICES)})  # a 2nd field
    cache[("m,device=d0", "skipped")] = SKIPPED
    cache[("m,device=d0", "ruled")] = (99, {"type": "number", "max": 5})
    return cache


def _plain_lines(count: int, second: int = 0) -> list[str]:
    return [
        f"m,device=d{i % DEVICES} t={i * 0.25 - 3} {BASE_NS + (second + i // DEVICES) * 10**9}" for i in range(count)
    ]


odd_values = st.one_of(
    st.text(alphabet="0123456789.-+eE", min_size=0, max_size=7),
    st.sampled_from(["1i", "-0", "1e400", "nan", "inf", "1_0", "0x1", "t", '"s"', "1.", ".5", "1.e5", "-.5"]),
)
odd_stamps = st.one_of(
    st.integers(min_value=-5, max_value=10**19).map(str),
    st.sampled_from(["", "1e9", "+5", "٣", "99999999999999999999"]),
)
odd_lines = st.one_of(
    st.builds(lambda device, value: f"m,device=d{device} t={value} {BASE_NS}", st.integers(0, DEVICES + 2), odd_values),
    st.builds(lambda stamp: f"m,device=d1 t=1.5 {stamp}", odd_stamps),
    st.sampled_from([
        "m,device=d0 skipped=1", "m,device=d0 skipped=1 " + str(BASE_NS), f"m,device=d0 ruled=1 {BASE_NS}",
        f"m,device=d1 t=1,t=2 {BASE_NS}", f"m,device=d1 t=1 {BASE_NS} extra", f" m,device=d1 t=1 {BASE_NS}",
        f"m,device=d1 t {BASE_NS}", f"m,device=d1 =1 {BASE_NS}", f"m,device=d1 t=1=2 {BASE_NS}", "", "# note",
        f"m,device=d1\tt=1 {BASE_NS}", f'm,device="d1" t=1 {BASE_NS}', f"m,device=d\\ 1 t=1 {BASE_NS}",
        f"m,device=d1 t=1 {BASE_NS}\r", f"m,device=d1 t=2.5 {BASE_NS}",  # the last one repeats a key: last wins
        f"m,device=d2 u=4.5 {BASE_NS}",  # another field name in the body, of a known series
        # Escapes, backslashes, a newline inside a string, CRLF, NUL and tabs as whitespace, the reserved key,
        # an integer (a type the fast path must see), no timestamp: all for the line-by-line paths.
        f"\x00m,device=d1 t=1 {BASE_NS}", f"m,device=d1 t=1.5 \t{BASE_NS}", f"m,device=d1 \tt=1.5 {BASE_NS}",
        f'm,device=d1 t=1,s="multi\nline" {BASE_NS}', f"m,device=\\\\host\\share t=1 {BASE_NS}",
        f"m,device=d1 t=1,g=2\\\nx=3 {BASE_NS}", f"m,device=d1 time=1 {BASE_NS}", f"m,device=d1,time=x t=1 {BASE_NS}",
        f"m,device=d1 t=1i {BASE_NS}", "m,device=d1 t=1.5", f"m,device=d1 t=1.5 {BASE_NS}\r\n",
    ]),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(odd=st.lists(st.tuples(st.integers(0, 80), odd_lines), max_size=3))
def test_columns_equal_the_fast_path_or_decline(odd):
    lines = _plain_lines(80)
    for position, line in odd:
        lines.insert(position, line)
    body = "\n".join(lines)
    columns = line_protocol_columns(
        body=body.encode(), precision="ns", cache=_cache(), validator=infer_validator(), received_at=NOW
    )
    fast = line_protocol_rows(text=body, precision="ns", cache=_cache(), validator=infer_validator(), received_at=NOW)
    event(f"columnar path taken: {columns is not None}")
    if columns is None:
        return
    assert fast.careful == []
    # Columns come sorted by (series, time), stably: the body's order among points with the same key is kept.
    expected = sorted(fast.rows, key=lambda row: (row[0], row[1]))
    assert list(columns) == expected
    assert columns.moments == {row[1] for row in fast.rows}


def test_a_plain_body_takes_the_columnar_path_and_copies_exact_bytes():
    body = "\n".join(_plain_lines(200)).encode()
    columns = line_protocol_columns(
        body=body, precision="ns", cache=_cache(), validator=infer_validator(), received_at=NOW
    )
    assert isinstance(columns, PointColumns)
    assert len(columns) == 200
    # The column-wise COPY payload equals the row-by-row one for the same points.
    from apps.storage.backends.base import _COPY_SIGNATURE, _COPY_TRAILER, copy_points_binary

    for schema_id in (None, 12):
        assert _COPY_SIGNATURE + columns.copy_binary(schema_id) + _COPY_TRAILER == copy_points_binary(
            list(columns), schema_id, columns.moments
        )


def test_the_last_body_lookups_serve_only_the_same_series_keys_from_the_same_cache():
    """A body with the last one's series keys in the same order reuses its lookups; any other does not."""
    cache, validator = _cache(), infer_validator()

    def columns_match(lines: list[str], cache: dict) -> bool:
        body = "\n".join(lines)
        columns = line_protocol_columns(
            body=body.encode(), precision="ns", cache=cache, validator=validator, received_at=NOW
        )
        fast = line_protocol_rows(text=body, precision="ns", cache=cache, validator=validator, received_at=NOW)
        return list(columns) == sorted(fast.rows, key=lambda row: (row[0], row[1]))

    first = _plain_lines(120)
    assert columns_match(first, cache)
    remembered = line_protocol_columnar._last_lookups.last(validator)
    # The first 40 lines hold every key in the same order; the other 80 follow in another order.
    assert columns_match(first[:40] + first[40:][::-1], cache)
    assert line_protocol_columnar._last_lookups.last(validator) is remembered
    # The same keys first seen in another order, or another cache: looked up again.
    assert columns_match(first[::-1], cache)
    other = {key: (entry[0] + 500, None) for key, entry in cache.items() if entry and entry[1] is None}
    assert columns_match(first[::-1], other)
    assert line_protocol_columnar._last_lookups.last(validator) is not remembered


def test_small_bodies_and_unknown_series_decline():
    cache, validator = _cache(), infer_validator()
    small = "\n".join(_plain_lines(MIN_LINES - 1)).encode()
    assert line_protocol_columns(body=small, precision="ns", cache=cache, validator=validator, received_at=NOW) is None
    unknown = "\n".join([*_plain_lines(100), f"m,device=new t=1 {BASE_NS}"]).encode()
    assert (
        line_protocol_columns(body=unknown, precision="ns", cache=cache, validator=validator, received_at=NOW) is None
    )


@pytest.mark.django_db
def test_endpoint_stores_a_columnar_body_exactly_and_publishes_it(django_capture_on_commit_callbacks, monkeypatch):
    source, _ = source_with_key(slug=f"columnar-{next(_slugs)}")
    first = "\n".join(_plain_lines(DEVICES)).encode()  # teaches the fast path every series
    with django_capture_on_commit_callbacks(execute=True):
        batch_ingest_line_protocol(source_id=source.pk, body=first, precision="ns", transport="influx_v2",
                                   received_at=NOW)  # fmt: skip
    assert ingest_target_get(source_id=source.pk).line_cache
    taken, published = [], []
    real = services.line_protocol_columns
    monkeypatch.setattr(services, "line_protocol_columns", lambda **kwargs: taken.append(real(**kwargs)) or taken[-1])
    real_publish = events.changes_message
    monkeypatch.setattr(services, "changes_publish", lambda **kwargs: published.append(real_publish(**kwargs)))
    lines = _plain_lines(120, second=10)
    lines.append(lines[0].replace("t=-3.0", "t=7.0"))  # the same series and time again, later in the body: it wins
    with django_capture_on_commit_callbacks(execute=True):
        result = batch_ingest_line_protocol(source_id=source.pk, body="\n".join(lines).encode(), precision="ns",
                                            transport="influx_v2", received_at=NOW)  # fmt: skip
    assert isinstance(taken[-1], PointColumns)
    assert (result.accepted, result.rejected, result.points, result.upserted) == (121, 0, 121, True)
    stored = {(labels["device"], moment): value for _, labels, moment, value, _ in stored_points(source=source)}
    expected = {}
    for line in lines:
        key, field, stamp = line.split(" ")
        expected[(key.split("=")[1], EPOCH + timedelta(microseconds=int(stamp) // 1000))] = float(field[2:])
    for key, value in expected.items():
        assert stored[key] == value
    assert len(stored) == DEVICES + 120
    message = published[-1]
    assert message["points"] == 121
    assert len(message["rows"]["series"]) == 121
    d0 = ingest_target_get(source_id=source.pk).line_cache[("m,device=d0", "t")][0]
    d0_first = (BASE_NS + 10 * 10**9) // 1000
    values = [
        value
        for series_id, moment, value in zip(*message["rows"].values(), strict=True)
        if (series_id, moment) == (d0, d0_first)
    ]
    assert values == [-3.0, 7.0]  # in the message too, the later point of a key comes later
