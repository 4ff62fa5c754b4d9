"""The state machine of an alert instance (pure: no database), one step per evaluation.

    Normal --breach--> Pending --held for `for`--> Firing --no breach--> Recovering --`keep firing for`--> Normal
    (with `for` = 0 a breach fires at once; with `keep firing for` = 0 a firing alert clears at once)
    any --no data for `no data for`--> NoData --data--> (as above);  any --query failed--> Error

An evaluation without a value that is not yet "no data" keeps the state as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from apps.alerts.models import AlertState

# States in which contact points have been (or should be) told the alert fires.
ALERTING_STATES = frozenset({AlertState.FIRING, AlertState.RECOVERING, AlertState.NO_DATA})


@dataclass(frozen=True)
class Step:
    """What an evaluation found for one instance."""

    breach: bool | None  # None: no value this time
    no_data: bool = False  # no point for at least the rule's `no data for`
    error: str = ""


@dataclass(frozen=True)
class Next:
    """The state an instance moves to, and why (empty reason: unchanged)."""

    state: str
    reason: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.reason)


def state_next(
    *,
    state: str,
    state_since: datetime,
    last_breach_at: datetime | None,
    step: Step,
    now: datetime,
    for_seconds: int,
    keep_firing_seconds: int,
) -> Next:
    """The next state of an instance in `state` (since `state_since`) given this evaluation's `step`."""
    if step.error:
        return Next(state) if state == AlertState.ERROR else Next(AlertState.ERROR, f"evaluation failed: {step.error}")
    if step.no_data:
        return Next(state) if state == AlertState.NO_DATA else Next(AlertState.NO_DATA, "no data")
    if step.breach is None:
        if state in (AlertState.ERROR, AlertState.NO_DATA):
            return Next(AlertState.NORMAL, "no value (recovered from " + state + ")")
        return Next(state)
    if step.breach:
        if state == AlertState.FIRING:
            return Next(state)
        if state == AlertState.RECOVERING:
            return Next(AlertState.FIRING, "breaching again while recovering")
        if state == AlertState.PENDING:
            if (now - state_since).total_seconds() >= for_seconds:
                return Next(AlertState.FIRING, f"breached for {for_seconds}s")
            return Next(state)
        if for_seconds <= 0:
            return Next(AlertState.FIRING, "breached")
        return Next(AlertState.PENDING, "breached; pending")
    if state == AlertState.PENDING:
        return Next(AlertState.NORMAL, "stopped breaching before the pending period ended")
    if state == AlertState.FIRING:
        if keep_firing_seconds > 0:
            return Next(AlertState.RECOVERING, "stopped breaching; keeping firing")
        return Next(AlertState.NORMAL, "recovered")
    if state == AlertState.RECOVERING:
        since = last_breach_at or state_since
        if (now - since).total_seconds() >= keep_firing_seconds:
            return Next(AlertState.NORMAL, f"recovered for {keep_firing_seconds}s")
        return Next(state)
    if state in (AlertState.NO_DATA, AlertState.ERROR):
        return Next(AlertState.NORMAL, "data back, not breaching")
    return Next(state)
