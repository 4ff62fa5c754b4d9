"""Alert conditions: when a reduced value breaches, and (hysteresis) when a firing alert may clear.

    {"type": "threshold", "op": ">", "value": 90, "recovery": 85}   fire above 90, clear below 85
    {"type": "above", "value": 90} / {"type": "below", "value": 10, "recovery": 12}
    {"type": "outside", "min": 10, "max": 90, "recovery_min": 12, "recovery_max": 85}
    {"type": "inside", "min": 40, "max": 60}
    {"type": "anomaly", "level": 0.9, "points": 1}   the anomaly score of the last `points` points reaches level

Without a recovery threshold an alert clears as soon as the value stops breaching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from apps.alerts.detectors.calibration import DEFAULT_SENSITIVITY, sensitivity_level

OPERATORS = (">", ">=", "<", "<=")
TYPES = ("threshold", "above", "below", "outside", "inside", "anomaly")
ANOMALY_MAX_POINTS = 100


class ConditionError(ValueError):
    """A condition that cannot be used; `field` names the offending key (e.g. condition.value)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Condition:
    """A validated condition; `op` is one of OPERATORS for one-sided conditions."""

    type: str
    op: str = ">"
    value: float = 0.0
    recovery: float | None = None
    low: float = 0.0
    high: float = 0.0
    recovery_low: float | None = None
    recovery_high: float | None = None
    points: int = 1

    def breaching(self, value: float | None, *, firing: bool) -> bool:
        """Whether `value` breaches; a firing alert with a recovery threshold keeps breaching until it recovers."""
        if value is None or math.isnan(value):
            return False
        if self.type in ("threshold", "anomaly"):
            if firing and self.recovery is not None:
                return value >= self.recovery if self.op in (">", ">=") else value <= self.recovery
            return _compare(value, self.op, self.value)
        if self.type == "outside":
            low = self.recovery_low if firing and self.recovery_low is not None else self.low
            high = self.recovery_high if firing and self.recovery_high is not None else self.high
            return value < low or value > high
        low = self.recovery_low if firing and self.recovery_low is not None else self.low
        high = self.recovery_high if firing and self.recovery_high is not None else self.high
        return low <= value <= high

    def describe(self) -> str:
        """The condition in words, for annotations and history."""
        if self.type in ("threshold", "anomaly"):
            what = "anomaly score" if self.type == "anomaly" else "value"
            return f"{what} {self.op} {self.value:g}"
        return f"value {self.type} [{self.low:g}, {self.high:g}]"


def _compare(value: float, op: str, limit: float) -> bool:
    if op == ">":
        return value > limit
    if op == ">=":
        return value >= limit
    if op == "<":
        return value < limit
    return value <= limit


def _number(data: dict, key: str, *, required: bool = True) -> float | None:
    raw = data.get(key)
    if raw is None and not required:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ConditionError(f"condition.{key}", "a finite number is required.")
    return float(raw)


def condition_parse(data: Any) -> Condition:
    """Validate a condition object; ConditionError names the offending key."""
    if not isinstance(data, dict):
        raise ConditionError("condition", 'an object such as {"type": "threshold", "op": ">", "value": 90}.')
    kind = data.get("type")
    if kind not in TYPES:
        raise ConditionError("condition.type", f"use one of {', '.join(TYPES)}.")
    known = {"type", "op", "value", "recovery", "min", "max", "recovery_min", "recovery_max", "level", "points"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConditionError(f"condition.{unknown[0]}", "unknown key.")
    if kind == "anomaly":
        level = _number(data, "level", required=False)
        level = sensitivity_level(DEFAULT_SENSITIVITY) if level is None else level
        if not 0.0 < level <= 1.0:
            raise ConditionError("condition.level", "an anomaly score level between 0 and 1.")
        points = data.get("points", 1)
        if isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= ANOMALY_MAX_POINTS:
            raise ConditionError("condition.points", f"a whole number from 1 to {ANOMALY_MAX_POINTS}.")
        return Condition(type="anomaly", op=">=", value=level, points=points)
    if kind in ("threshold", "above", "below"):
        op = {"above": ">", "below": "<"}.get(kind, data.get("op"))
        if op not in OPERATORS:
            raise ConditionError("condition.op", f"use one of {', '.join(OPERATORS)}.")
        value = _number(data, "value")
        recovery = _number(data, "recovery", required=False)
        if recovery is not None and (recovery > value if op in (">", ">=") else recovery < value):
            side = "at or below" if op in (">", ">=") else "at or above"
            raise ConditionError("condition.recovery", f"must be {side} the value ({value:g}) it recovers from.")
        return Condition(type="threshold", op=op, value=value, recovery=recovery)
    low = _number(data, "min")
    high = _number(data, "max")
    if low > high:
        raise ConditionError("condition.max", "must be at least min.")
    recovery_low = _number(data, "recovery_min", required=False)
    recovery_high = _number(data, "recovery_max", required=False)
    if kind == "outside" and (
        (recovery_low is not None and recovery_low < low) or (recovery_high is not None and recovery_high > high)
    ):
        raise ConditionError("condition.recovery_min", "the recovery range must lie within [min, max].")
    return Condition(type=kind, low=low, high=high, recovery_low=recovery_low, recovery_high=recovery_high)
