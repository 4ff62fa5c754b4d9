"""Ensemble: several detectors on the same series; a point's score is the highest of theirs."""

from __future__ import annotations

import struct

import numpy as np

from apps.alerts.detectors.bank import DetectorBank, StateField


class EnsembleDetector(DetectorBank):
    """Runs member detectors side by side and reports the largest score."""

    name = "ensemble"
    description = "The highest score of the novelty and seasonal detectors."
    members: tuple[type[DetectorBank], ...] = ()

    def __init__(self, *, capacity: int = 0) -> None:
        self.parts = [member(capacity=capacity) for member in self.members]
        self.state = {}
        self.size = capacity

    def fields(self) -> dict[str, StateField]:
        return {f"{part.name}.{name}": spec for part in self.parts for name, spec in part.fields().items()}

    def rows_add(self, *, count: int) -> np.ndarray:
        for part in self.parts:
            part.rows_add(count=count)
        first = self.size
        self.size += count
        return np.arange(first, self.size)

    def _step(self, rows: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
        scores = np.zeros(len(rows))
        for part in self.parts:
            scores = np.maximum(scores, part._step(rows, times, values))
        return scores

    def row_pack(self, *, row: int) -> bytes:
        packed = [part.row_pack(row=row) for part in self.parts]
        return b"".join(struct.pack("<I", len(chunk)) + chunk for chunk in packed)

    def row_unpack(self, *, row: int, data: bytes) -> None:
        offset = 0
        for part in self.parts:
            if offset + 4 > len(data):
                raise ValueError(f"detector state too short for {self.name}")
            (length,) = struct.unpack_from("<I", data, offset)
            part.row_unpack(row=row, data=data[offset + 4 : offset + 4 + length])
            offset += 4 + length
        if offset != len(data):
            raise ValueError(f"detector state does not fit {self.name}")

    def bytes_per_series(self) -> int:
        return sum(part.bytes_per_series() for part in self.parts)
