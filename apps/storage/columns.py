"""A batch of points held column by column (Arrow arrays), for writers that never need a Python object per point.

The line-protocol endpoint turns a plain body straight into columns (apps/ingestion/line_protocol_columnar.py);
`points_write` takes them like a list of (series_id, time, value) tuples. Columns are sorted by (series, time)
before the COPY: PostgreSQL then inserts a series' points into the same primary-key leaf one after another,
which costs it about a sixth less than the body's time-major order (measured in bench/ingest.py's stage profile).
"""

from __future__ import annotations

import array
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# PostgreSQL's binary timestamptz counts microseconds from 2000-01-01 UTC.
PG_EPOCH_OFFSET_MICROS = 946_684_800_000_000


def time_micros(moment: datetime) -> int:
    """Microseconds since 1970 (UTC; a naive time is taken as UTC): exact, unlike a float timestamp."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // MICROSECOND


@dataclass
class PointColumns:
    """series_id (int32), time as microseconds since 1970 UTC (int64) and value (float64), one row per point."""

    series_ids: pa.Int32Array
    micros: pa.Int64Array
    values: pa.DoubleArray
    moments: set[datetime] = field(default_factory=set)  # the distinct times, as datetimes

    @classmethod
    def build(cls, series_ids: pa.Array, micros: pa.Array, values: pa.Array) -> PointColumns:
        """Columns sorted by (series, time), stably: of two points with the same key the later one stays later."""
        order = pc.sort_indices(
            pa.table({"s": series_ids, "t": micros}), sort_keys=[("s", "ascending"), ("t", "ascending")]
        )
        micros = pc.take(micros, order)
        distinct = pc.unique(micros).to_pylist()
        return cls(
            series_ids=pc.take(series_ids, order),
            micros=micros,
            values=pc.take(values, order),
            moments={EPOCH + timedelta(microseconds=value) for value in distinct},
        )

    def __len__(self) -> int:
        return len(self.series_ids)

    def __iter__(self) -> Iterator[tuple[int, datetime, float]]:
        """(series_id, time, value) tuples, for the rare paths that want them (late points, redeliveries)."""
        times = {time_micros(moment): moment for moment in self.moments}
        for series_id, moment, value in zip(
            self.series_ids.to_pylist(), self.micros.to_pylist(), self.values.to_pylist(), strict=True
        ):
            yield series_id, times[moment], value

    def series_distinct(self) -> list[int]:
        return sorted(pc.unique(self.series_ids).to_pylist())

    def copy_binary(self, schema_id: int | None) -> bytes:
        """PostgreSQL binary COPY rows for (series_id, time, value, schema_id), assembled column by column.

        Every row is a fixed-width record, so a template row repeated n times is filled in byte lane by byte
        lane with extended-slice assignments from each big-endian column: no Python work per point.
        """
        count = len(self)
        schema = struct.pack(">i", -1) if schema_id is None else struct.pack(">ii", 4, schema_id)
        template = (
            struct.pack(">hi", 4, 4) + bytes(4) + struct.pack(">i", 8) + bytes(8) + struct.pack(">i", 8) + bytes(8)
        ) + schema
        width = len(template)
        rows = bytearray(template * count)
        pg_micros = pc.subtract(self.micros, PG_EPOCH_OFFSET_MICROS)
        for offset, column, code in ((6, self.series_ids, "i"), (14, pg_micros, "q"), (26, self.values, "d")):
            data = _big_endian(column, code)
            size = len(data) // count if count else 0
            for lane in range(size):
                rows[offset + lane :: width] = data[lane::size]
        return bytes(rows)


def _big_endian(column: pa.Array, code: str) -> bytes:
    """A null-free fixed-width Arrow column's values as big-endian bytes."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = array.array(code)
    start = column.offset * values.itemsize
    values.frombytes(memoryview(column.buffers()[1])[start : start + len(column) * values.itemsize])
    if sys.byteorder == "little":
        values.byteswap()
    return values.tobytes()
