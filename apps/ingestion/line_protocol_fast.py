"""The line-protocol fast path: lines of series the source has already stored go straight to rows.

Agents repeat the same few thousand series keys (`measurement,tag=value,...`) in every batch. Once a line of a
series key has been parsed and validated the careful way, its (key text, field name) pair maps to a series id
and the measure's rules; later lines of that key are split on spaces and commas, their numbers converted and
checked, and they become (series_id, time, value) rows without building records. DESIGN.md measured a naive
split plus dict lookup at about 600k lines/s against about 100k for parse-then-validate in Python.

Anything unusual (escapes, quotes, strings, booleans, new series, bad numbers or times) goes to the careful
path (`line_protocol_parse_lines` then schema validation), which alone decides errors, so both paths give the
same answer. A field's type must not change within a body (InfluxDB refuses the later lines): the fast path
notes which (measurement, field) got floats and which integers, and `kinds_disagree` tells the caller when
those and the careful path's types disagree, so that the body is parsed again, all of it the careful way.
tests/ingestion/test_line_protocol_fast.py checks all this with generated batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apps.ingestion.parsers.line_protocol import PRECISION_NS, TIME_NS_MAX, line_protocol_lines
from apps.ingestion.parsers.line_protocol_scan import TYPE_CONFLICT_CODE
from apps.ingestion.records import ParseResult
from apps.ingestion.validation import EPOCH, MAX_ABS_VALUE, RecordValidator, _Reject

SKIPPED = None  # a cached field that is not stored (an ignored unknown field): the line still counts
_FLOAT_LAST = frozenset("0123456789.")
_FLOAT_CHARS = "0123456789.-+eE"
_LINE_CACHE_LIMIT = 500_000

LineCache = dict[tuple[str, str], tuple[int, dict[str, Any] | None] | None]


@dataclass(slots=True)
class FastLines:
    """Rows from lines of known series, and the lines (with their number) that need the careful path."""

    rows: list[tuple[int, datetime, float]] = field(default_factory=list)
    row_lines: list[int] = field(default_factory=list)  # the line number of each row, to keep body order
    accepted: int = 0
    careful: list[tuple[int, str]] = field(default_factory=list)
    # The (series key, field) pairs this path stored floats of, and integers of: see kinds_disagree.
    floats: set[tuple[str, str]] = field(default_factory=set)
    integers: set[tuple[str, str]] = field(default_factory=set)


def line_protocol_rows(
    *, text: str, precision: str, cache: LineCache, validator: RecordValidator, received_at: datetime,
    default_ns: int | None = None,
) -> FastLines:  # fmt: skip
    """Split a decoded line-protocol body: known-series lines become rows, the rest are handed back.

    Lines without a timestamp get `default_ns` (the arrival time truncated to the precision), or `received_at`.
    """
    result = FastLines()
    careful = result.careful
    rows, row_lines = result.rows, result.row_lines
    multiplier = PRECISION_NS[precision]
    # Escapes and quotes send a line to the careful path (and may carry it past a newline); most bodies have none.
    special = "\\" in text or '"' in text
    lines = line_protocol_lines(text) if special else enumerate(text.split("\n"))
    if validator.required_measures or not cache:
        # Required measures need a whole-record check; an empty cache means nothing is known yet.
        careful.extend(_lines_numbered(lines))
        return result
    times: dict[str, datetime] = {}
    time_check = validator._time_check
    measure_value = validator._measure_value
    float_last, float_chars = _FLOAT_LAST, _FLOAT_CHARS
    rows_append, lines_append = rows.append, row_lines.append
    untimed = received_at if default_ns is None else EPOCH + timedelta(microseconds=default_ns // 1000)
    floats_add, integers_add = result.floats.add, result.integers.add
    accepted = 0
    for index, line in lines:
        if not line:
            continue
        first = line[0]
        if first == "#":
            continue
        if first in " \t\x00" or (special and ("\\" in line or '"' in line)):
            careful.append((index, line))
            continue
        try:
            parts = line.split(" ")
            if len(parts) == 3:
                key, field_set, stamp = parts
                moment = times.get(stamp)
                if moment is None:
                    if not (stamp.isdigit() and stamp.isascii() and len(stamp) <= 19):
                        raise ValueError(stamp)
                    time_ns = int(stamp) * multiplier
                    if time_ns > TIME_NS_MAX:
                        raise ValueError(stamp)
                    moment = time_check(EPOCH + timedelta(microseconds=time_ns // 1000), received_at, "timestamp")
                    times[stamp] = moment
            elif len(parts) == 2:
                key, field_set = parts
                moment = untimed
            else:
                raise ValueError(line)
            if "," not in field_set:  # one field: the usual agent line, without a list for its rows
                name, _, value = field_set.partition("=")
                pair = (key, name)
                entry = cache[pair]  # KeyError: not known yet
                # The pair's type is noted before the line is known to be stored: a line that takes the careful
                # path after all can only make kinds_disagree say yes needlessly, which costs time, not truth.
                if value[-1] in float_last:  # _number inlined: this line runs for nearly every point
                    number = float(value)
                    if not -MAX_ABS_VALUE <= number <= MAX_ABS_VALUE or value[0] == "+" or value.strip(float_chars):
                        raise ValueError(value)
                    floats_add(pair)
                else:
                    number = _number(value, float_last, float_chars)
                    integers_add(pair)
                if entry is SKIPPED:
                    raise ValueError(line)  # no stored field: the careful path says why
                series_id, spec = entry
                rows_append((series_id, moment, float(number) if spec is None else measure_value(name, number, spec)))
                lines_append(index)
                accepted += 1
                continue
            line_rows = []
            for item in field_set.split(","):
                name, _, value = item.partition("=")
                pair = (key, name)
                entry = cache[pair]  # KeyError: not known yet
                if value[-1] in float_last:  # as above
                    number = float(value)
                    if number - number or value[0] == "+" or value.strip(float_chars):
                        raise ValueError(value)
                    floats_add(pair)
                else:
                    number = _number(value, float_last, float_chars)
                    integers_add(pair)
                if entry is SKIPPED:
                    continue
                series_id, spec = entry
                line_rows.append(
                    (series_id, moment, float(number) if spec is None else measure_value(name, number, spec))
                )
            if not line_rows:
                raise ValueError(line)  # no stored field: the careful path says why
        except (KeyError, ValueError, IndexError, _Reject):
            careful.append((index, line))
            continue
        rows.extend(line_rows)
        row_lines.extend([index] * len(line_rows))
        accepted += 1
    result.accepted = accepted
    return result


def kinds_disagree(fast: FastLines, parsed: ParseResult) -> bool:
    """Whether a field got two types in one body across the fast and the careful path (or within the fast one).

    Also when the careful path refused a line for a type conflict while the fast path stored some: the fast
    lines' types might have made it another field's conflict, or another line's. A body of floats only (the
    usual one) is answered without looking at a single pair.
    """
    if not fast.floats and not fast.integers:
        return False
    if any(error.code == TYPE_CONFLICT_CODE for error in parsed.errors):
        return True
    careful_kinds = parsed.field_kinds
    if not fast.integers and all(kind == "float" for fields in careful_kinds.values() for kind in fields.values()):
        return False
    fast_kinds: dict[str, dict[str, str]] = {}
    measurements: dict[str, str] = {}
    for pairs, kind in ((fast.floats, "float"), (fast.integers, "integer")):
        for key, name in pairs:
            measurement = measurements.get(key)
            if measurement is None:
                # Fast-path keys hold no backslash: the measurement is the text before the first comma.
                measurement = measurements[key] = key.split(",", 1)[0]
            if fast_kinds.setdefault(measurement, {}).setdefault(name, kind) != kind:
                return True
    for measurement, fields in fast_kinds.items():
        known = careful_kinds.get(measurement)
        if known is not None and any(known.get(name, kind) != kind for name, kind in fields.items()):
            return True
    return False


def _number(value: str, float_last: frozenset[str], float_chars: str) -> float | int:
    """A plain float or integer field value; ValueError (or IndexError) for anything the careful path must word."""
    if value[-1] in float_last:
        number = float(value)
        if not -MAX_ABS_VALUE <= number <= MAX_ABS_VALUE or value[0] == "+" or value.strip(float_chars):
            raise ValueError(value)  # NaN/inf, "+1" and the like: the careful path words the error
        return number
    if value[-1] == "i" and value[:-1].lstrip("-").isdigit() and value[:-1].isascii():
        integer = int(value[:-1])
        if not -(2**63) <= integer < 2**63:
            raise ValueError(value)
        return integer
    raise ValueError(value)  # booleans, unsigned and the rest take the careful path


def _lines_numbered(lines) -> list[tuple[int, str]]:
    return [(index, line) for index, line in lines if line and line[0] != "#"]


def line_cache_learn(
    *,
    cache: LineCache,
    validator: RecordValidator,
    lines: list[str],
    records: list,
    points: list,
    series_ids: dict,
) -> None:
    """Remember the series of carefully validated plain lines, so their next lines take the fast path.

    `records` are the careful path's records, `lines[i]` the raw line of `records[i]`, `points` the validated
    points (whose last item is the record's position) and `series_ids` the ids of their series keys.
    """
    if len(cache) > _LINE_CACHE_LIMIT:
        cache.clear()
    stored: dict[int, dict[str, tuple]] = {}
    for series, _, _, position in points:
        stored.setdefault(position, {})[series[0]] = series
    for position, record in enumerate(records):
        metrics = stored.get(position)
        line = lines[position]
        if metrics is None or "\\" in line or '"' in line or record.measurement is None or line[0] in " \t\x00":
            continue
        key = line.split(" ", 1)[0]
        for name, value in record.fields.items():
            if type(value) is str or type(value) is bool:
                continue  # such values always take the careful path
            metric = validator._metric_names.get((record.measurement, name))
            series = metrics.get(metric) if metric is not None else None
            if series is None:
                cache[(key, name)] = SKIPPED
            elif series in series_ids:
                cache[(key, name)] = (series_ids[series], validator.measures.get(name))
