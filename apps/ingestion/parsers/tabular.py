"""Streaming CSV and Parquet readers for file uploads: chunks of `Record`s from a given data row on.

Both readers yield `(records, errors, next_row)` per chunk of `chunk_rows` data rows, where `next_row` is the
0-based data row (header excluded) the following chunk starts at, so a resumed upload restarts exactly there.
A problem with the file as a whole (no header, not UTF-8, not Parquet) raises `PayloadError`; a problem with one
row becomes a `RecordError` carrying that row's number.

CSV values: an empty cell is an absent field; integers and decimals become numbers; everything else, "true" and
"false" included, stays text (the schema decides). Zero-padded integers such as "0042" stay text because they
are nearly always identifiers, not quantities.
Parquet values: timestamps become ISO 8601 text in UTC, dates ISO dates, decimals floats, dictionary columns
their values; list, struct and map values are refused per row ("nested_value").
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from apps.ingestion.records import PayloadError, Record, RecordError, raw_truncate

Chunk = tuple[list[Record], list[RecordError], int]

CSV_DELIMITERS = (",", ";", "\t")
PARQUET_MAGIC = b"PAR1"
_READ_BYTES = 1024 * 1024
_INTEGER = re.compile(r"[+-]?\d+\Z")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?\Z")


def _chunk_rows_check(start_row: int, chunk_rows: int) -> None:
    if start_row < 0 or chunk_rows < 1:
        raise ValueError(f"start_row must be >= 0 and chunk_rows >= 1; got {start_row} and {chunk_rows}.")


def _column_names_check(names: list[str]) -> None:
    """Every column needs a distinct, non-empty name: they become metric and label names."""
    for position, name in enumerate(names):
        if not name:
            raise PayloadError(
                "empty_column_name", f"Column {position + 1} of the header has no name; name every column."
            )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PayloadError(
                "duplicate_column", f"The header names column {name!r} twice; column names must be unique."
            )
        seen.add(name)


# --- CSV -------------------------------------------------------------------------------------------


def csv_value(text: str) -> object:
    """One CSV cell as a record value: None when empty, a number when it reads as one, otherwise the text."""
    stripped = text.strip()
    if not stripped:
        return None
    if _INTEGER.match(stripped):
        digits = stripped.lstrip("+-")
        if len(digits) > 1 and digits.startswith("0"):
            return text  # "0042": an identifier; a number would lose the padding
        if len(digits) > 4_000:  # past Python's int/str limit; far beyond a double: refused per row as not finite
            return float(stripped)
        return int(stripped)
    if _DECIMAL.match(stripped):
        return float(stripped)
    return text


def csv_delimiter(first_line: str) -> str:
    """The delimiter among , ; and tab that splits the header line into the most columns (comma on a tie)."""
    best, best_width = ",", 1
    for candidate in CSV_DELIMITERS:
        width = len(next(csv.reader([first_line], delimiter=candidate), []))
        if width > best_width:
            best, best_width = candidate, width
    return best


def _row_text(row: list[str], delimiter: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="").writerow(row)
    return raw_truncate(buffer.getvalue())


def csv_count_rows(path: str | Path) -> int:
    """Data rows in a CSV file, counted from its line breaks, checking on the way that it is all UTF-8.

    Cheap (no CSV parsing); a quoted cell spanning lines makes it an over-estimate, which the processor corrects
    when it reaches the end of the file.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    newlines = carriage_returns = offset = 0
    last = b""
    with open(path, "rb") as stream:
        while block := stream.read(_READ_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                raise _not_utf8(f"at byte {offset + error.start}") from None
            newlines += block.count(b"\n")
            carriage_returns += block.count(b"\r")
            offset += len(block)
            last = block[-1:]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise _not_utf8("at its end (a truncated character)") from None
    if offset == 0:
        return 0
    lines = newlines or carriage_returns  # classic Mac files end lines with CR alone
    if last not in (b"\n", b"\r"):
        lines += 1
    return max(lines - 1, 0)


def _not_utf8(where: str) -> PayloadError:
    return PayloadError(
        "invalid_encoding", f"The file is not valid UTF-8 {where}; save it as UTF-8 (with or without BOM) and retry."
    )


def _csv_header(stream: io.TextIOBase) -> tuple[list[str], str, Iterator[list[str]]]:
    first_line = stream.readline()
    delimiter = csv_delimiter(first_line.rstrip("\r\n"))
    stream.seek(0)
    reader = csv.reader(stream, delimiter=delimiter)
    header = next(reader, None)
    if header is None or not any(cell.strip() for cell in header):
        raise PayloadError(
            "missing_header", "The file has no header row; its first line must name the columns (time, device, ...)."
        )
    names = [cell.strip() for cell in header]
    if all(isinstance(csv_value(name), int | float) for name in names):
        raise PayloadError(
            "missing_header",
            f"The first row ({_row_text(header, delimiter)[:80]}) looks like data; add a header row naming the "
            "columns.",
        )
    _column_names_check(names)
    return names, delimiter, reader


def csv_records(path: str | Path, *, start_row: int = 0, chunk_rows: int) -> Iterator[Chunk]:
    """Chunks of records from a CSV file (header required; delimiter sniffed), starting at data row `start_row`."""
    _chunk_rows_check(start_row, chunk_rows)
    with open(path, encoding="utf-8-sig", newline="") as stream:
        next_row = chunk_start = start_row
        try:
            names, delimiter, reader = _csv_header(stream)
            width = len(names)
            records: list[Record] = []
            errors: list[RecordError] = []
            for row_number, row in enumerate(reader):
                if row_number < start_row:
                    continue
                if row:  # a blank line keeps its row number, so numbers still match the file's lines
                    if len(row) != width:
                        errors.append(
                            RecordError(
                                index=row_number,
                                code="invalid_row",
                                message=f"row {row_number} has {len(row)} columns; the header has {width}.",
                                raw=_row_text(row, delimiter),
                            )
                        )
                    else:
                        fields = {}
                        for name, text in zip(names, row, strict=True):
                            value = csv_value(text)
                            if value is not None:
                                fields[name] = value
                        records.append(Record(index=row_number, fields=fields))
                next_row = row_number + 1
                if next_row - chunk_start >= chunk_rows:
                    yield records, errors, next_row
                    records, errors, chunk_start = [], [], next_row
        except UnicodeDecodeError:
            raise _not_utf8(f"near data row {next_row}") from None
        except csv.Error as error:
            raise PayloadError("invalid_csv", f"The CSV is malformed near data row {next_row}: {error}.") from None
        if next_row > chunk_start:
            yield records, errors, next_row


# --- Parquet ---------------------------------------------------------------------------------------


class _Nested:
    """A value records cannot hold (list, struct, map, non-text binary), kept for the dead letter's raw text."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


def _parquet_open(path: str | Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise PayloadError("invalid_parquet", f"The file is not readable as Parquet: {error}.") from None


def parquet_count_rows(path: str | Path) -> int:
    """Rows in a Parquet file, from its footer."""
    with _parquet_open(path) as parquet:
        return parquet.metadata.num_rows


def _is_nested(kind: pa.DataType) -> bool:
    return pa.types.is_nested(kind) or pa.types.is_union(kind)


def _iso_utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _scalar(value: Any) -> object:
    """A Python value from pyarrow as a record value (dates and times as ISO text, decimals as floats)."""
    if isinstance(value, datetime):
        return _iso_utc(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return _Nested(value.hex())  # binary that is not text cannot be a label or a number either
    return value


def _column_values(column: pa.Array) -> list[object]:
    """A column of a record batch as record values, with every timestamp normalised to UTC."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if _is_nested(kind):
        return [None if value is None else _Nested(value) for value in column.to_pylist()]
    if pa.types.is_timestamp(kind):
        # Naive timestamps are UTC by Parquet's convention; microseconds are what storage keeps.
        column = column.cast(pa.timestamp("us", tz="UTC"), safe=False)
    return [None if value is None else _scalar(value) for value in column.to_pylist()]


def _nested_error(index: int, name: str, row: dict[str, object]) -> RecordError:
    message = f"{name} holds a nested value (list, struct, map or binary); flatten it into separate columns."
    return RecordError(
        index=index,
        code="nested_value",
        field=name,
        message=message,
        raw=raw_truncate(json.dumps(row, default=str, ensure_ascii=False)),
    )


def parquet_records(path: str | Path, *, start_row: int = 0, chunk_rows: int) -> Iterator[Chunk]:
    """Chunks of records from a Parquet file, starting at row `start_row` (whole row groups before it are skipped)."""
    _chunk_rows_check(start_row, chunk_rows)
    with _parquet_open(path) as parquet:
        yield from _parquet_chunks(parquet, start_row=start_row, chunk_rows=chunk_rows)


def _parquet_chunks(parquet: pq.ParquetFile, *, start_row: int, chunk_rows: int) -> Iterator[Chunk]:
    names = list(parquet.schema_arrow.names)
    _column_names_check(names)
    metadata = parquet.metadata
    first_group, group_start = 0, 0
    while first_group < metadata.num_row_groups:
        group_rows = metadata.row_group(first_group).num_rows
        if group_start + group_rows > start_row:
            break
        group_start += group_rows
        first_group += 1
    if first_group >= metadata.num_row_groups:
        return
    batches = parquet.iter_batches(
        batch_size=chunk_rows, row_groups=list(range(first_group, metadata.num_row_groups)), use_threads=False
    )
    records: list[Record] = []
    errors: list[RecordError] = []
    row_number, chunk_start = group_start, start_row
    try:
        for batch in batches:
            columns = [_column_values(column) for column in batch.columns]
            for position in range(batch.num_rows):
                index = row_number
                row_number += 1
                if index < start_row:
                    continue
                values = {name: column[position] for name, column in zip(names, columns, strict=True)}
                fields = {name: value for name, value in values.items() if value is not None}
                nested = next((name for name, value in fields.items() if isinstance(value, _Nested)), None)
                if nested is not None:
                    shown = {name: getattr(value, "value", value) for name, value in fields.items()}
                    errors.append(_nested_error(index, nested, shown))
                else:
                    records.append(Record(index=index, fields=fields))
                if row_number - chunk_start >= chunk_rows:
                    yield records, errors, row_number
                    records, errors, chunk_start = [], [], row_number
    except pa.ArrowException as error:
        raise PayloadError(
            "invalid_parquet", f"The Parquet file is unreadable near row {row_number}: {error}."
        ) from None
    if row_number > chunk_start:
        yield records, errors, row_number


def tabular_readers() -> dict[str, tuple[Callable[..., Iterator[Chunk]], Callable[[str | Path], int]]]:
    """Reader and row counter per payload format value ("csv", "parquet")."""
    return {"csv": (csv_records, csv_count_rows), "parquet": (parquet_records, parquet_count_rows)}


def tabular_sniff(head: bytes) -> str | None:
    """The format of a file from its first bytes: "parquet" (magic), "csv" (UTF-8 text), or None."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if not head or b"\x00" in head:
        return None
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # only a character cut at the end of the sample is forgivable
            return None
    return "csv"
