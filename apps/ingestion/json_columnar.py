"""The JSON columnar path: an array of flat records of known series becomes columns, checked per distinct value.

Agents post the same record shape again and again: `{"time": 1767225600, "device": "d1", "facility": "f1",
"temperature": 21.5}`. Such an array is decoded by ujson, turned into Arrow columns in one call, and validated
per distinct time and per distinct label combination by the schema validator itself (a batch of 5,000 records
from 1,000 devices has 5 times and 1,000 combinations), instead of record by record.

All or nothing, like the line-protocol columnar path: the body is taken only when every record would be stored
by the record-by-record path (apps/ingestion/validation.py) with the same points. Anything else (a schema that
declares fields or rules, missing or null fields, booleans, nested values, non-finite numbers, integers beyond
what a float holds exactly, series not stored yet) returns None and the caller takes that path, which alone words
errors. tests/ingestion/test_json_columnar.py checks the two agree on generated batches.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import ujson

from apps.ingestion.validation import RecordValidator, SeriesLocalKey, _Reject
from apps.storage.columns import PointColumns, time_micros

# Arrays shorter than this take the record-by-record path: Arrow's fixed cost per call outweighs its gain.
MIN_RECORDS = 64
_SEPARATOR = "\x00"  # joins a record's label values; NUL cannot occur in a stored label (the validator refuses it)


def json_columns(
    *, body: bytes, validator: RecordValidator, series_ids: dict[SeriesLocalKey, int], received_at: datetime
) -> tuple[PointColumns, int] | None:
    """(columns, records) for a plain array of records of known series, else None (nothing decided)."""
    if not _plain_schema(validator) or body[:1] != b"[":
        return None
    if b"true" in body or b"false" in body:
        return None  # Arrow would turn a boolean into a number in a numeric column; the record path words it
    try:
        records = ujson.loads(body)
    except ValueError:
        return None
    if not isinstance(records, list) or len(records) < MIN_RECORDS:
        return None
    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None  # not all objects, or a field whose values mix types
    names = table.column_names
    # Columns come from the first record's keys: a later record with more keys would lose them silently.
    if set(map(len, records)) != {len(names)} or any(column.null_count for column in table.columns):
        return None  # records with other fields than the first, or a null
    time_name = validator.time_field or ("time" if "time" in names else "timestamp" if "timestamp" in names else None)
    if time_name is None or time_name not in names:
        return None
    micros = _micros(table.column(time_name), time_name, validator, received_at)
    if micros is None:
        return None
    labels = [name for name in names if name != time_name and pa.types.is_string(table.schema.field(name).type)]
    measures = [name for name in names if name != time_name and name not in labels]
    if not measures:
        return None
    numbers = []
    for name in measures:
        column = table.column(name)
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            return None  # booleans, nested values, anything the record path words or converts itself
        try:
            values = pc.cast(column, pa.float64())  # a safe cast: integers beyond 2**53 refuse to round
        except (pa.ArrowInvalid, ValueError):
            return None
        if not pc.all(pc.is_finite(values)).as_py():
            return None
        numbers.append(values.combine_chunks())
    try:
        validator._metric_names_checked([(name, 0.0) for name in measures])
    except _Reject:
        return None
    label_sets = _label_sets(table, labels, validator)
    if label_sets is None:
        return None
    codes, sets = label_sets
    ids, times, values = [], [], []
    for name, number in zip(measures, numbers, strict=True):
        lookup = [series_ids.get((name, label_set)) for label_set in sets]
        if None in lookup:
            return None  # a series not stored yet: the record path creates it (within the source's limit)
        ids.append(pc.take(pa.array(lookup, pa.int32()), codes))
        times.append(micros)
        values.append(number)
    return (
        PointColumns.build(pa.concat_arrays(ids), pa.concat_arrays(times), pa.concat_arrays(values)),
        table.num_rows,
    )


def _plain_schema(validator: RecordValidator) -> bool:
    """Inferred fields only: no declared measures or labels, so every field's role follows from its JSON type."""
    return validator.infer and not validator.measures and not validator.labels


def _micros(column: pa.ChunkedArray, name: str, validator: RecordValidator, received_at: datetime):
    """Each record's time in microseconds since 1970, each distinct value read and checked by the validator."""
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_string(column.type)):
        return None
    column = column.combine_chunks()
    distinct = pc.unique(column)
    micros = []
    try:
        for value in distinct.to_pylist():
            moment = validator._time_check(validator._time_from_value(value, name), received_at, name)
            micros.append(time_micros(moment))
    except _Reject:
        return None
    return pc.take(pa.array(micros, pa.int64()), pc.index_in(column, value_set=distinct))


def _label_sets(table: pa.Table, labels: list[str], validator: RecordValidator):
    """(code of each record's label combination, validated label set of each code); None if any is refused."""
    if not labels:
        # One combination for every record: no labels at all.
        try:
            return pa.array([0] * table.num_rows, pa.int32()), [validator._labels_checked(())]
        except _Reject:
            return None
    columns = [table.column(name).combine_chunks() for name in labels]
    if any(pc.any(pc.match_substring(column, _SEPARATOR)).as_py() for column in columns):
        return None
    joined = pc.binary_join_element_wise(*columns, _SEPARATOR) if len(columns) > 1 else columns[0]
    encoded = pc.dictionary_encode(joined)
    sets = []
    try:
        for text in encoded.dictionary.to_pylist():
            sets.append(validator._labels_checked(tuple(zip(labels, text.split(_SEPARATOR), strict=True))))
    except _Reject:
        return None
    return encoded.indices, sets
