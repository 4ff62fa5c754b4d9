"""The shape every detector has: streaming state for many series at once, one row of arrays per series.

A detector scores a point from its series' past alone, then learns it. Keeping every series' state in the rows of a
few numpy arrays lets one step score thousands of series (the 10,000 sensors at 1 Hz of one plant) with a few dozen
array operations instead of a Python loop per series; a single series (the CSV command) is the same code with one
row. A row's state packs into a few hundred bytes (zlib over the raw arrays) for PostgreSQL.
"""

from __future__ import annotations

import zlib
from typing import ClassVar

import numpy as np

from apps.alerts.detectors.calibration import REPORT_FIELDS, report_bursts, score_from_surprise
from apps.alerts.detectors.fields import StateField

STATE_FORMAT = 1


class DetectorBank:
    """Streaming detector over many series: subclasses declare `_fields` and implement `_surprise`.

    `_surprise` gives each point's surprise (-log10 of how rare it is for its series, calibration.py); the bank
    reports a burst of surprising points once (REFRACTORY) and turns surprises into scores in [0, 1].
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    refractory: ClassVar[int] = 200  # points after a report during which only an odder point is reported

    def __init__(self, *, capacity: int = 0) -> None:
        self.state: dict[str, np.ndarray] = {}
        for field_name, spec in self.fields().items():
            self.state[field_name] = np.full((capacity, *spec.shape), spec.fill, dtype=spec.dtype)
        self.size = capacity

    def fields(self) -> dict[str, StateField]:
        """The state arrays of one series: the detector's own and the burst reporting's."""
        return {**self._fields(), **REPORT_FIELDS}

    def _fields(self) -> dict[str, StateField]:
        raise NotImplementedError

    def rows_add(self, *, count: int) -> np.ndarray:
        """Room for `count` new series, in their initial state; returns their row numbers."""
        specs = self.fields()
        for field_name, array in self.state.items():
            spec = specs[field_name]
            extra = np.full((count, *spec.shape), spec.fill, dtype=spec.dtype)
            self.state[field_name] = np.concatenate([array, extra])
        first = self.size
        self.size += count
        return np.arange(first, self.size)

    def step(self, *, rows: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Score one point for each of `rows` (distinct), then learn it. Scores are in [0, 1]."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) != len(np.unique(rows)):
            raise ValueError("a step takes at most one point per series")
        times = np.asarray(times, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        scores = np.zeros(len(rows))
        if finite.all():
            scores[:] = self._step(rows, times, values)
        elif finite.any():  # a NaN or infinity is not a reading: it is neither scored nor learnt
            scores[finite] = self._step(rows[finite], times[finite], values[finite])
        return np.clip(scores, 0.0, 1.0)

    def _step(self, rows: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
        surprises = self._surprise(rows, times, values)
        reported = report_bursts(state=self.state, rows=rows, surprises=surprises, refractory=self.refractory)
        return score_from_surprise(reported)

    def _surprise(self, rows: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Each point's surprise against its series' past (0 during the warm-up); learns the points."""
        raise NotImplementedError

    def row_pack(self, *, row: int) -> bytes:
        """One series' state as compact bytes (zlib over the arrays in field order)."""
        parts = [np.ascontiguousarray(self.state[field_name][row]).tobytes() for field_name in self.fields()]
        return bytes([STATE_FORMAT]) + zlib.compress(b"".join(parts), 6)

    def row_unpack(self, *, row: int, data: bytes) -> None:
        """Restore one series' state from `row_pack` bytes; raises ValueError if they do not fit this detector."""
        if not data or data[0] != STATE_FORMAT:
            raise ValueError("unknown detector state format")
        raw = zlib.decompress(data[1:])
        offset = 0
        for field_name, spec in self.fields().items():
            count = int(np.prod(spec.shape, dtype=np.int64))
            width = count * np.dtype(spec.dtype).itemsize
            chunk = raw[offset : offset + width]
            if len(chunk) != width:
                raise ValueError(f"detector state too short for {self.name}.{field_name}")
            self.state[field_name][row] = np.frombuffer(chunk, dtype=spec.dtype).reshape(spec.shape)
            offset += width
        if offset != len(raw):
            raise ValueError(f"detector state does not fit {self.name}")

    def bytes_per_series(self) -> int:
        """Memory one series' state takes while loaded (before compression)."""
        specs = self.fields().values()
        return sum(int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize for spec in specs)


def score_in_rounds(*, bank: DetectorBank, rows: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Score points of any series in time order, several per series allowed: steps of at most one per series."""
    rows = np.asarray(rows, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    order = np.lexsort((times, rows))  # by series, then time
    sorted_rows = rows[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_rows)) + 1]
    rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    scores = np.zeros(len(rows))
    for round_number in range(int(rank.max()) + 1 if len(rows) else 0):
        chosen = order[rank == round_number]
        scores[chosen] = bank.step(rows=rows[chosen], times=times[chosen], values=values[chosen])
    return scores
