"""JSON payloads into `Record`s: an array of objects, a single object, or NDJSON (one object per line).

Decoding uses ujson (several times faster than the standard library here) and falls back to the standard library
only to word an error with its line and column, or for the rare document ujson refuses and the standard library
takes. Both accept a few things strict JSON does not; notably `NaN`, `Infinity`, `-Infinity` and overflowing
literals such as `1e999` decode to non-finite floats. The parser leaves them in the record on purpose: the schema
validator refuses every non-finite number with `invalid_number` and the field's name, which says more than a
payload-wide JSON error would, and costs the hot path nothing. Integers stay exact Python ints (the validator
checks ranges; one of more than 4,000 digits, past Python's conversion limit, decodes to infinity and is refused
for its record alone), nested objects and arrays stay as they are (the validator refuses them), and a repeated
key keeps its last value.
"""

from __future__ import annotations

import json
import re

import ujson

from apps.ingestion.records import ParseResult, PayloadError, Record, RecordError, payload_text

_LEADING_WHITESPACE = re.compile(r"[ \t\r\n]*")  # JSON's whitespace, and only it
_MAX_INTEGER_DIGITS = 4_000  # below Python's int/str conversion limit (sys.get_int_max_str_digits(), 4,300)


class _DecodeError(Exception):
    """A JSON text did not decode: a sentence with the line and column where it went wrong."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column


def json_records_parse(body: bytes | str, *, ndjson: bool | None = None) -> ParseResult:
    """Parse a JSON array of objects, a single object or NDJSON (ndjson=None: detect) into records and errors."""
    text = payload_text(body)
    if ndjson:
        return _ndjson_parse(text)
    match = _LEADING_WHITESPACE.match(text)
    start = match.end() if match else 0
    if start == len(text):
        if ndjson is None:
            return ParseResult()  # an empty body is empty NDJSON: nothing to store, nothing wrong
        raise PayloadError("invalid_json", "invalid JSON: the body is empty; expected an object or an array.")
    if text[start] == "[":
        try:
            return _array_records(_decode(text))
        except _DecodeError as error:
            # NDJSON may start with a line that is an array (a record refused on its own as not_an_object):
            # refusing the body whole would lose every good line after it.
            if ndjson is None and _looks_like_ndjson(text, start):
                return _ndjson_parse(text)
            raise _payload_error(error) from None
    if ndjson is None:
        try:
            value = ujson.loads(text)
        except ValueError as error:
            # ujson stops after the first complete value and says so: that is NDJSON (or several objects).
            if str(error).startswith("Trailing data") or _looks_like_ndjson(text, start):
                return _ndjson_parse(text)
            value = _document_decode(text)
    else:
        value = _document_decode(text)
    if isinstance(value, dict):
        return ParseResult([Record(0, value)], [])
    return ParseResult([], [_not_an_object(0, value, _raw_dump(value))])


def _looks_like_ndjson(text: str, start: int) -> bool:
    """Whether a body that is not one JSON document is NDJSON: a first line "{...}" or "[...]", then more lines.

    Only consulted once the whole body failed to decode, so a valid multi-line object or array is never split;
    without it one bad first line (or one that is an array, not an object) would refuse a whole NDJSON batch.
    """
    end = text.find("\n", start)
    if end < 0 or not text[end:].strip(" \t\r\n"):
        return False
    first = text[start:end].rstrip(" \t\r")
    return (first.startswith("{") and first.endswith("}")) or (first.startswith("[") and first.endswith("]"))


def _decode(text: str) -> object:
    """One JSON value; raises _DecodeError with the standard library's wording and position."""
    try:
        return ujson.loads(text)
    except ValueError:
        pass  # ujson's messages carry no position; decode again only to explain (or to take what it refused)
    try:
        return json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as error:
        raise _DecodeError(error.msg, error.lineno, error.colno) from None
    except RecursionError:
        raise _DecodeError("nesting too deep") from None
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise _DecodeError(str(error)) from None


def _integer(digits: str) -> int | float:
    """An integer literal; one longer than Python converts (4,300 digits) is far beyond a double's range, so it
    becomes infinity, which the validator refuses for its record ("invalid_number") instead of the whole body."""
    if len(digits) > _MAX_INTEGER_DIGITS:
        return float("-inf") if digits.startswith("-") else float("inf")
    return int(digits)


def _document_decode(text: str) -> object:
    """The whole body as one JSON value; a payload error if it is not one."""
    try:
        return _decode(text)
    except _DecodeError as error:
        raise _payload_error(error) from None


def _payload_error(error: _DecodeError) -> PayloadError:
    """The whole body refused, saying where it stopped being JSON."""
    where = f" at line {error.line}, column {error.column}" if error.line is not None else ""
    return PayloadError("invalid_json", f"invalid JSON: {error.reason}{where}.")


def _array_records(value: object) -> ParseResult:
    """One record per object in a decoded array; an error for each element that is not an object."""
    records: list[Record] = []
    errors: list[RecordError] = []
    if not isinstance(value, list):  # a body starting with "[" decodes to a list; this guards the contract
        return ParseResult([], [_not_an_object(0, value, _raw_dump(value))])
    for index, element in enumerate(value):
        if isinstance(element, dict):
            records.append(Record(index, element))
        else:
            errors.append(_not_an_object(index, element, _raw_dump(element)))
    return ParseResult(records, errors)


def _ndjson_parse(text: str) -> ParseResult:
    """One record per non-blank line; an error for each line that is not a JSON object."""
    records: list[Record] = []
    errors: list[RecordError] = []
    record_append = records.append
    loads = ujson.loads
    for index, line in enumerate(text.split("\n")):
        if line.endswith("\r"):
            line = line[:-1]
        if not line.strip(" \t\r"):
            continue
        try:
            value = loads(line)
        except ValueError:
            try:
                value = _decode(line)
            except _DecodeError as error:
                where = f" at column {error.column}" if error.column is not None else ""
                errors.append(RecordError(index, "invalid_json", f"invalid JSON: {error.reason}{where}.", None, line))
                continue
        if isinstance(value, dict):
            record_append(Record(index, value, None, None, None, line))
        else:
            errors.append(_not_an_object(index, value, line))
    return ParseResult(records, errors)


_KINDS: dict[type, str] = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def _not_an_object(index: int, value: object, raw: str) -> RecordError:
    """The error for a record that decoded to something other than an object."""
    kind = "null" if value is None else _KINDS.get(type(value), type(value).__name__)
    return RecordError(index, "not_an_object", f"expected a JSON object, got {kind}.", None, raw)


def _raw_dump(value: object) -> str:
    """A decoded element as JSON text for the dead-letter store (array elements have no cheap raw text)."""
    try:
        return json.dumps(value)
    except RecursionError:  # ujson decodes deeper nesting than json.dumps can encode
        return "(a value nested too deeply to show)"
