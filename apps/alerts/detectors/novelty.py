"""Novelty: how far a value, and the recent average, are from anything the series has done before.

Two views of each point (VIEWS): the value itself and the mean of the last 24 values (which sees a burst of spikes,
a change of duty cycle or a slow slide that single values hide). For each view the raw oddness is the distance to
the nearest value that view ever took (a nearest neighbour over the series' whole history, kept as a bitmap of
visited grid bins: see grid.py); each view is calibrated against its own past (calibration.py) and the point's
score is the larger. A level never seen before scores high at its first point; a pattern the series repeats (a
nightly batch job's spike) scores high the first time or two and then not at all.

The warm-up (WARMUP points, scored 0: a day of 5-minute readings) learns the series' centre and spread, which fix
its grid; its points are then replayed into the history so the first scored point is already judged against them.
"""

from __future__ import annotations

import numpy as np

from apps.alerts.detectors.bank import DetectorBank
from apps.alerts.detectors.calibration import calibrate, calibration_fields, calibration_learn
from apps.alerts.detectors.fields import StateField
from apps.alerts.detectors.grid import (
    GRID_BINS,
    grid_bin,
    nearest_visited_distance,
    robust_centre_and_spread,
)

WARMUP = 300
CALIBRATE_FROM = 20  # warm-up points before this one have too little history to say what is normal
# Each view: its name and how many of the latest values it averages (1: the value itself).
VIEWS: tuple[tuple[str, int], ...] = (("value", 1), ("mean", 24))
_REPLAY_CHUNK = 64  # rows replayed at once at the end of their warm-up (memory: chunk x WARMUP^2 x 4 bytes)


class NoveltyDetector(DetectorBank):
    """Nearest-neighbour novelty of the value and of the short-term mean against the series' whole history."""

    name = "novelty"
    description = "Distance of the value and of the recent mean to anything the series did before."

    def _fields(self) -> dict[str, StateField]:
        fields = {
            "seen": StateField((), "i8"),
            "warmup": StateField((WARMUP,), "f8"),
            "centre": StateField((), "f8"),
            "spread": StateField((), "f8", 1.0),
            "recent": StateField((_longest(),), "f8"),
        }
        for view, _ in VIEWS:
            fields[f"{view}_visited"] = StateField((GRID_BINS,), "?")
            fields.update(calibration_fields(view))
        return fields

    def _surprise(self, rows: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
        state = self.state
        seen = state["seen"][rows]
        longest = _longest()
        recent = state["recent"]
        recent[rows, seen % longest] = values
        # recent values newest first, to average the last `window` of them
        newest_first = np.take_along_axis(recent[rows], (seen[:, None] - np.arange(longest)[None, :]) % longest, axis=1)
        observed = {}
        for view, window in VIEWS:
            filled = np.minimum(seen + 1, window)
            taken = np.arange(window)[None, :] < filled[:, None]
            observed[view] = np.where(taken, newest_first[:, :window], 0.0).sum(axis=1) / filled

        warming = seen < WARMUP
        if warming.any():
            state["warmup"][rows[warming], seen[warming]] = values[warming]
        state["seen"][rows] = seen + 1
        finishing = rows[seen == WARMUP - 1]
        for start in range(0, len(finishing), _REPLAY_CHUNK):
            self._warmup_finish(finishing[start : start + _REPLAY_CHUNK])

        active = ~warming
        best = np.zeros(len(rows))
        if not active.any():
            return best
        centre = state["centre"][rows]
        spread = state["spread"][rows]
        for view, _ in VIEWS:
            z = (observed[view] - centre) / spread
            visited = state[f"{view}_visited"]
            raw = np.zeros(len(rows))
            raw[active] = nearest_visited_distance(visited=visited[rows[active]], z=z[active])
            surprises = calibrate(state=state, prefix=view, rows=rows, raw=raw, active=active)
            best = np.maximum(best, surprises)
            visited[rows[active], grid_bin(z[active])] = True
        return best

    def _warmup_finish(self, rows: np.ndarray) -> None:
        """Fix the grid of series whose warm-up just ended, and replay the warm-up into their history."""
        state = self.state
        values = state["warmup"][rows]
        centre, spread = robust_centre_and_spread(values)
        state["centre"][rows] = centre
        state["spread"][rows] = spread
        z = (values - centre[:, None]) / spread[:, None]
        cumulative = np.cumsum(np.pad(z, ((0, 0), (1, 0))), axis=1)
        earlier = np.tril(np.ones((WARMUP, WARMUP), dtype=bool), k=-1)  # earlier[i, j]: j came before i
        for view, window in VIEWS:
            starts = np.maximum(np.arange(WARMUP) + 1 - window, 0)
            series = (cumulative[:, 1:] - cumulative[:, starts]) / (np.arange(WARMUP) + 1 - starts)
            compact = series.astype(np.float32)
            distance = np.abs(compact[:, :, None] - compact[:, None, :])
            nearest = np.where(earlier[None], distance, np.float32(np.inf)).min(axis=2).astype(np.float64)
            for index in range(CALIBRATE_FROM, WARMUP):
                calibration_learn(state=state, prefix=view, rows=rows, raw=nearest[:, index])
            visited = state[f"{view}_visited"]
            for index in range(WARMUP):
                visited[rows, grid_bin(series[:, index])] = True
        state["warmup"][rows] = 0.0  # no longer needed: zeros pack to almost nothing


def _longest() -> int:
    return max(window for _, window in VIEWS)
