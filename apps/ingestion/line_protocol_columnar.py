"""The line-protocol columnar path: a plain body of known series becomes columns without a Python object per line.

Agents send the same shape again and again: `measurement,tag=value,... field=1.5 1700000000000000000`, one line
per series and time. Such a body is split into columns by Arrow's CSV reader (space as delimiter), checked and
converted by Arrow compute functions, and its (series key, field) pairs are looked up once per distinct pair,
not once per line: about a third of the line-by-line fast path's CPU (bench/ingest.py's stage profile).

All or nothing: the body is taken only when every line would be stored by the line-by-line fast path
(apps/ingestion/line_protocol_fast.py) with the same result. Anything else (escapes, quotes, comments, lines
without a timestamp or with several fields, integer or boolean values, series not seen before, schema rules on
a measure, times the validator refuses) returns None and the caller takes the line-by-line path, which alone
words errors. tests/ingestion/test_line_protocol_columnar.py checks the two paths agree on generated bodies.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from apps.ingestion.last_lookups import LastLookups
from apps.ingestion.line_protocol_fast import SKIPPED, LineCache
from apps.ingestion.parsers.line_protocol import PRECISION_NS, TIME_NS_MAX
from apps.ingestion.validation import MAX_ABS_VALUE, RecordValidator, _Reject
from apps.storage.columns import EPOCH, PointColumns

# Bytes that make a body need the careful reading: escapes, quotes, CR line ends, tabs, comments.
_SPECIAL = (b"\\", b'"', b"\r", b"\t", b"#")
# A float field value as the fast path takes it: digits, '.', 'e', '-', '+' (not first), ending in a digit or '.'.
_FLOAT_VALUE = r"^(?:[-0-9.eE][-+0-9.eE]*)?[0-9.]$"
_COLUMNS = ("key", "fields", "stamp")
_READ = pa_csv.ReadOptions(column_names=list(_COLUMNS), use_threads=False, block_size=1 << 26)
_PARSE = pa_csv.ParseOptions(delimiter=" ", quote_char=False, escape_char=False, double_quote=False)
_CONVERT = pa_csv.ConvertOptions(
    column_types={name: pa.string() for name in _COLUMNS},
    strings_can_be_null=False,
    quoted_strings_can_be_null=False,
)
# Bodies smaller than this take the line-by-line path: Arrow's fixed cost per call outweighs its gain.
MIN_LINES = 64
# The series id per distinct series key of the last one-field body: see _series_ids.
_last_lookups: LastLookups[pa.Int32Array] = LastLookups()


def line_protocol_columns(
    *, body: bytes, precision: str, cache: LineCache, validator: RecordValidator, received_at: datetime
) -> PointColumns | None:
    """Columns for a plain body whose every line the fast path would store, else None (nothing decided)."""
    if validator.required_measures or not cache or not body.isascii() or any(mark in body for mark in _SPECIAL):
        return None
    if body.count(b"\n") < MIN_LINES:
        return None
    try:
        table = pa_csv.read_csv(pa.py_buffer(body), read_options=_READ, parse_options=_PARSE, convert_options=_CONVERT)
    except (pa.ArrowInvalid, ValueError):
        return None  # a line with other than three space-separated parts, or an empty body
    if table.num_rows == 0:
        return None
    keys, fields, stamps = (table.column(name).combine_chunks() for name in _COLUMNS)
    micros = _micros(stamps, precision, validator, received_at)
    if micros is None:
        return None
    parts = pc.split_pattern(fields, "=", max_splits=1)
    if pc.min(pc.list_value_length(parts)).as_py() != 2 or pc.any(pc.match_substring(fields, ",")).as_py():
        return None  # a field without '=', or several fields on a line
    names, values = pc.list_element(parts, 0), pc.list_element(parts, 1)
    if not pc.all(pc.match_substring_regex(values, _FLOAT_VALUE)).as_py():
        return None
    try:
        numbers = pc.cast(values, pa.float64())
    except (pa.ArrowInvalid, ValueError):
        return None
    if not pc.all(pc.is_finite(numbers)).as_py() or pc.max(pc.abs(numbers)).as_py() > MAX_ABS_VALUE:
        return None  # the careful path refuses these lines, each with its reason
    series_ids = _series_ids(keys, names, cache, validator)
    if series_ids is None:
        return None
    return PointColumns.build(series_ids, micros, numbers)


def _micros(stamps: pa.StringArray, precision: str, validator: RecordValidator, received_at: datetime):
    """Timestamps as microseconds since 1970 when all are plain integers the validator accepts, else None."""
    if not pc.all(pc.utf8_is_digit(stamps)).as_py() or pc.max(pc.binary_length(stamps)).as_py() > 19:
        return None
    try:
        nanos = pc.multiply_checked(pc.cast(stamps, pa.int64()), PRECISION_NS[precision])
    except (pa.ArrowInvalid, ValueError):
        return None
    if pc.max(nanos).as_py() > TIME_NS_MAX:
        return None
    micros = pc.divide(nanos, 1000)  # integer division; the values are not negative
    bounds = pc.min_max(micros)
    try:
        for value in (bounds["min"].as_py(), bounds["max"].as_py()):
            # The checks are ranges, so the earliest and the latest time stand for all.
            validator._time_check(EPOCH + timedelta(microseconds=value), received_at, "timestamp")
    except _Reject:
        return None
    return micros


def _series_ids(keys: pa.StringArray, names: pa.StringArray, cache: LineCache, validator: RecordValidator):
    """The series id of every line from the cache, looked up once per (series key, field); None if any is unknown.

    With one field name in the body, not at all when the series keys are the last body's, in the same order
    (apps/ingestion/last_lookups.py; the cache's entries hold the same id for a key for as long as it lives).
    """
    key_codes, name_codes = pc.dictionary_encode(keys), pc.dictionary_encode(names)
    name_texts = name_codes.dictionary.to_pylist()
    width = len(name_texts)
    if width == 1:  # one field name in the whole body, the common case: every key in the dictionary is used

        def look_up() -> pa.Int32Array | None:
            ids = [_stored_id(cache.get((key, name_texts[0]))) for key in key_codes.dictionary.to_pylist()]
            return None if None in ids else pa.array(ids, pa.int32())

        lookup = _last_lookups.reuse_or_build(
            validator, shape=name_texts[0], ids=cache, distinct=key_codes.dictionary, build=look_up
        )
        return None if lookup is None else pc.take(lookup, key_codes.indices)
    key_texts = key_codes.dictionary.to_pylist()
    pairs = pc.add(pc.multiply(pc.cast(key_codes.indices, pa.int32()), width), pc.cast(name_codes.indices, pa.int32()))
    lookup: list[int] = [0] * (len(key_texts) * width)
    for pair in pc.unique(pairs).to_pylist():
        series_id = _stored_id(cache.get((key_texts[pair // width], name_texts[pair % width])))
        if series_id is None:
            return None
        lookup[pair] = series_id
    return pc.take(pa.array(lookup, pa.int32()), pairs)


def _stored_id(entry) -> int | None:
    """A cache entry's series id, or None where the line-by-line path decides: not seen yet, not stored (SKIPPED),
    or a measure with schema rules."""
    if entry is None or entry is SKIPPED or entry[1] is not None:
        return None
    return entry[0]
