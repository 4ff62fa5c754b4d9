"""Ensemble: several detectors on the same series; a point's surprise is the highest of theirs.

The members' surprises are combined before the burst reporting, so an anomaly that several members see is still
reported once.
"""

from __future__ import annotations

import struct

import numpy as np

from apps.alerts.detectors.bank import DetectorBank
from apps.alerts.detectors.fields import StateField


class EnsembleDetector(DetectorBank):
    """Runs member detectors side by side and reports the largest surprise."""

    name = "ensemble"
    description = "The highest surprise of the novelty and seasonal detectors, reported once per burst."
    members: tuple[type[DetectorBank], ...] = ()

    def __init__(self, *, capacity: int = 0) -> None:
        self.parts = [member(capacity=capacity) for member in self.members]
        super().__init__(capacity=capacity)

    def _fields(self) -> dict[str, StateField]:
        return {}  # the members keep their own state

    def rows_add(self, *, count: int) -> np.ndarray:
        for part in self.parts:
            part.rows_add(count=count)
        return super().rows_add(count=count)

    def _surprise(self, rows: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
        surprises = np.zeros(len(rows))
        for part in self.parts:
            surprises = np.maximum(surprises, part._surprise(rows, times, values))
        return surprises

    def row_pack(self, *, row: int) -> bytes:
        packed = [super().row_pack(row=row)] + [part.row_pack(row=row) for part in self.parts]
        return b"".join(struct.pack("<I", len(chunk)) + chunk for chunk in packed)

    def row_unpack(self, *, row: int, data: bytes) -> None:
        chunks = []
        offset = 0
        while offset < len(data):
            if offset + 4 > len(data):
                raise ValueError(f"detector state too short for {self.name}")
            (length,) = struct.unpack_from("<I", data, offset)
            chunks.append(data[offset + 4 : offset + 4 + length])
            offset += 4 + length
        if len(chunks) != len(self.parts) + 1 or offset != len(data):
            raise ValueError(f"detector state does not fit {self.name}")
        super().row_unpack(row=row, data=chunks[0])
        for part, chunk in zip(self.parts, chunks[1:], strict=True):
            part.row_unpack(row=row, data=chunk)

    def bytes_per_series(self) -> int:
        return super().bytes_per_series() + sum(part.bytes_per_series() for part in self.parts)
