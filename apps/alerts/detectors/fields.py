"""The description of one array of a detector's per-series state."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StateField:
    """One array of a detector's state: its shape per series, dtype, and initial value."""

    shape: tuple[int, ...]
    dtype: str
    fill: float = 0.0
