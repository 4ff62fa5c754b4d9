"""The JSON columnar path: an array of flat records of known series becomes columns, checked per distinct value.

Agents post the same record shape again and again: `{"time": 1767225600, "device": "d1", "facility": "f1",
"temperature": 21.5}`. Such an array is decoded by orjson (nearly twice as fast as ujson here), each field's
values become one Arrow column typed the way `pa.Table.from_pylist` would type it, and the schema validator itself
checks each distinct time and each distinct label combination (a batch of 5,000 records from 1,000 devices has 5
times and 1,000 combinations), instead of record by record. Label combinations already checked are remembered per
validator, so a source's next batch from the same devices costs one lookup for each.

All or nothing, like the line-protocol columnar path: the body is taken only when every record would be stored
by the record-by-record path (apps/ingestion/validation.py) with the same points. Anything else (a schema that
declares fields or rules, missing or null fields, booleans, nested values, a field holding both text and numbers,
non-finite numbers, integers beyond what a float holds exactly, series not stored yet) returns None and the caller
takes that path, which alone words errors. So does any body orjson refuses and ujson reads (NaN, Infinity, `1e999`,
raw control characters, lone surrogates), and any number of magnitude 2**63 or more: orjson decodes an integer
literal beyond 64 bits as a float, which would hide it. tests/ingestion/test_json_columnar.py checks the two agree
on generated batches and on number texts written by hand.
"""

from __future__ import annotations

import weakref
from datetime import datetime
from operator import attrgetter

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from apps.ingestion.last_lookups import LastLookups
from apps.ingestion.validation import _CACHE_LIMIT, LabelSet, RecordValidator, SeriesLocalKey, _Reject
from apps.storage.columns import PointColumns, time_micros

# Arrays shorter than this take the record-by-record path: Arrow's fixed cost per call outweighs its gain.
MIN_RECORDS = 64
_SEPARATOR = "\x00"  # joins a record's label values; NUL cannot occur in a stored label (the validator refuses it)
_NUMBERS = frozenset({int, float})
# orjson turns an integer literal outside [-2**63, 2**64) into a float; no smaller float can be such a literal.
_HIDDEN_INTEGER = 2.0**63
# Checked label sets per validator, by (label names, values joined): cheaper to find than the validator's own
# cache, whose key is a tuple of (name, value) pairs built per combination.
_checked_label_sets: weakref.WeakKeyDictionary[RecordValidator, dict[tuple[tuple[str, ...], str], LabelSet]] = (
    weakref.WeakKeyDictionary()
)
# Per validator, the field names of the last body taken and a msgspec decoder for bodies of that shape.
_shapes: weakref.WeakKeyDictionary[RecordValidator, tuple[tuple[str, ...], msgspec.json.Decoder]] = (
    weakref.WeakKeyDictionary()
)
# Each measure's series id per distinct label combination of the last batch: see _series_columns.
_last_lookups: LastLookups[list[pa.Int32Array]] = LastLookups()


def json_columns(
    *, body: bytes, validator: RecordValidator, series_ids: dict[SeriesLocalKey, int], received_at: datetime
) -> tuple[PointColumns, int] | None:
    """(columns, records) for a plain array of records of known series, else None (nothing decided)."""
    if not _plain_schema(validator) or body[:1] != b"[":
        return None
    columns = _columns(body, validator)
    if columns is None:
        return None
    names = list(columns)
    time_name = validator.time_field or ("time" if "time" in names else "timestamp" if "timestamp" in names else None)
    if time_name is None or time_name not in names:
        return None
    micros = _micros(columns[time_name], time_name, validator, received_at)
    if micros is None:
        return None
    labels = [name for name in names if name != time_name and pa.types.is_string(columns[name].type)]
    measures = [name for name in names if name != time_name and name not in labels]
    numbers = [_floats(columns[name]) for name in measures]
    if not measures or None in numbers:
        return None
    try:
        validator._metric_names_checked([(name, 0.0) for name in measures])
    except _Reject:
        return None
    ids = _series_columns(columns, labels, measures, validator, series_ids, len(micros))
    if ids is None:
        return None
    times = pa.concat_arrays([micros] * len(measures))
    return PointColumns.build(pa.concat_arrays(ids), times, pa.concat_arrays(numbers)), len(micros)


def _plain_schema(validator: RecordValidator) -> bool:
    """Inferred fields only: no declared measures or labels, so every field's role follows from its JSON type."""
    return validator.infer and not validator.measures and not validator.labels


def _columns(body: bytes, validator: RecordValidator) -> dict[str, pa.Array] | None:
    """Each field's values as one Arrow column, for an array of at least MIN_RECORDS objects with the same fields.

    A source's agents send one record shape again and again, so the shape of the last body taken is remembered per
    validator, as a msgspec decoder of records with exactly those fields, each text or a number. A body of that
    shape is decoded straight into such records, typed and checked while decoding, for about 60 % of the CPU of
    orjson's dicts and the checks below; any other body (or one msgspec refuses) is decoded by orjson below.
    """
    shape = _shapes.get(validator)
    if shape is not None:
        columns = _columns_of_shape(body, *shape)
        if columns is not None:
            return columns
    columns = _columns_decoded(body)
    if columns is not None:
        _shapes[validator] = _shape_of(columns)
    return columns


def _shape_of(columns: dict[str, pa.Array]) -> tuple[tuple[str, ...], msgspec.json.Decoder]:
    """(field names, decoder of an array of records with just those fields, of the same kinds as these columns).

    Fields are named f0, f1, ... in Python and renamed to the JSON keys, which need not be identifiers.
    """
    names = tuple(columns)
    fields = [(f"f{index}", str if pa.types.is_string(columns[name].type) else int | float)
              for index, name in enumerate(names)]  # fmt: skip
    record = msgspec.defstruct(
        "Record", fields, rename={field: name for (field, _), name in zip(fields, names, strict=True)},
        forbid_unknown_fields=True, gc=False,
    )  # fmt: skip
    return names, msgspec.json.Decoder(list[record])


def _columns_of_shape(body: bytes, names: tuple[str, ...], decoder: msgspec.json.Decoder) -> dict | None:
    """Columns of a body whose every record has exactly the shape's fields, each of its kind; else None.

    msgspec refuses what the checks of _columns_decoded refuse: a missing, extra or null field, a boolean or
    nested value, text where a number was (or the reverse), a number beyond a double (`1e999`), and any text that
    is not strict JSON. Unlike orjson it keeps an integer literal of any size an integer, which Arrow refuses below.
    """
    try:
        records = decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if len(records) < MIN_RECORDS:
        return None
    columns = {}
    for index, name in enumerate(names):
        values = list(map(attrgetter(f"f{index}"), records))
        try:
            columns[name] = pa.array(values, pa.string()) if type(values[0]) is str else pa.array(values)
        except (pa.ArrowInvalid, OverflowError):
            return None  # an integer beyond 64 bits, or one a float cannot hold exactly among floats
    return columns


def _columns_decoded(body: bytes) -> dict[str, pa.Array] | None:
    """_columns for a body of any shape, decoded by orjson into dicts and checked field by field.

    Built as `pa.Table.from_pylist` builds them (a list per field, then `pa.array`), so types are inferred alike,
    but each list's types are checked before Arrow sees it, and a record with a missing field fails the lookup
    instead of becoming a null, and one with more fields fails the length test.
    """
    try:
        records = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(records) is not list or len(records) < MIN_RECORDS or type(records[0]) is not dict:
        return None
    names = list(records[0])
    try:
        if set(map(len, records)) != {len(names)}:
            return None
        values = [[record[name] for record in records] for name in names]
    except (KeyError, TypeError):
        return None  # an element that is not an object, or an object with other fields than the first
    columns = {}
    for name, column in zip(names, values, strict=True):
        array = _array(column)
        if array is None:
            return None
        columns[name] = array
    return columns


def _array(values: list) -> pa.Array | None:
    """Text or numbers as Arrow, typed as from_pylist types them; None for anything the record path treats apart.

    A string column refuses anything but text (and holds a null as a null), but Arrow would turn a boolean among
    floats into a number silently: the types of numbers are checked here, not left to it.
    """
    if type(values[0]) is str:
        try:
            array = pa.array(values, pa.string())
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            return None  # text mixed with numbers, booleans or nested values
        return None if array.null_count else array
    kinds = set(map(type, values))
    if not kinds <= _NUMBERS:
        return None  # booleans, nulls, nested values, or text mixed with numbers
    try:
        array = pa.array(values)  # int64, or float64 refusing integers beyond what a float holds exactly
    except (pa.ArrowInvalid, OverflowError):
        return None
    if float in kinds and pc.max(pc.abs(array)).as_py() >= _HIDDEN_INTEGER:
        return None
    return array


def _floats(column: pa.Array) -> pa.DoubleArray | None:
    """A measure's values as floats; None when an integer would round (a safe cast refuses it)."""
    try:
        return pc.cast(column, pa.float64())
    except pa.ArrowInvalid:
        return None


def _micros(column: pa.Array, name: str, validator: RecordValidator, received_at: datetime):
    """Each record's time in microseconds since 1970, each distinct value read and checked by the validator."""
    distinct = pc.unique(column)
    micros = []
    try:
        for value in distinct.to_pylist():
            moment = validator._time_check(validator._time_from_value(value, name), received_at, name)
            micros.append(time_micros(moment))
    except _Reject:
        return None
    return pc.take(pa.array(micros, pa.int64()), pc.index_in(column, value_set=distinct))


def _series_columns(
    columns: dict[str, pa.Array],
    labels: list[str],
    measures: list[str],
    validator: RecordValidator,
    series_ids: dict[SeriesLocalKey, int],
    rows: int,
) -> list[pa.Array] | None:
    """Each measure's series id for every record; None if a label combination is refused or a series is unknown.

    Ids are looked up once per distinct label combination, or not at all when the combinations are the last
    batch's, in the same order (apps/ingestion/last_lookups.py).
    """
    if not labels:
        codes, combinations = pa.array([0] * rows, pa.int32()), pa.array([""], pa.string())
    else:
        texts = [columns[name] for name in labels]
        encoded = pc.dictionary_encode(pc.binary_join_element_wise(*texts, _SEPARATOR) if len(texts) > 1 else texts[0])
        codes, combinations = encoded.indices, encoded.dictionary

    def look_up() -> list[pa.Int32Array] | None:
        sets = _label_sets(combinations, tuple(labels), validator)
        if sets is None:
            return None
        lookups = []
        for name in measures:
            lookup = [series_ids.get((name, label_set)) for label_set in sets]
            if None in lookup:
                return None  # a series not stored yet: the record path creates it (within the source's limit)
            lookups.append(pa.array(lookup, pa.int32()))
        return lookups

    lookups = _last_lookups.reuse_or_build(
        validator, shape=(tuple(labels), tuple(measures)), ids=series_ids, distinct=combinations, build=look_up
    )
    return None if lookups is None else [pc.take(lookup, codes) for lookup in lookups]


def _label_sets(combinations: pa.StringArray, names: tuple[str, ...], validator: RecordValidator):
    """The validated label set of each combination (values joined by NUL); None if any is refused."""
    if not names:
        try:
            return [validator._labels_checked(())]  # one combination for every record: no labels at all
        except _Reject:
            return None
    checked = _checked_label_sets.setdefault(validator, {})
    sets = []
    for text in combinations.to_pylist():
        label_set = checked.get((names, text)) or _label_set_checked(validator, names, text, checked)
        if label_set is None:
            return None
        sets.append(label_set)
    return sets


def _label_set_checked(validator: RecordValidator, names: tuple[str, ...], text: str, checked: dict) -> LabelSet | None:
    """The validator's label set for one combination of values joined by NUL, remembered; None if it refuses it."""
    values = text.split(_SEPARATOR)
    if len(values) != len(names):
        return None  # a value holds NUL itself: the record path refuses it
    try:
        label_set = validator._labels_checked(tuple(zip(names, values, strict=True)))
    except _Reject:
        return None
    if len(checked) > _CACHE_LIMIT:
        checked.clear()
    checked[(names, text)] = label_set
    return label_set
