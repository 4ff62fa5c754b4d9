"""Drive scenarios tick by tick into a sink, either paced to the wall clock or as fast as possible (backfill)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apps.ingestion.simulator.scenarios import Record, Scenario
from apps.ingestion.simulator.sinks import Sink

# Large enough that an HTTP backfill needs few requests, small enough to stay well under request size limits.
DEFAULT_BACKFILL_BATCH_RECORDS = 5000


@dataclass(frozen=True)
class SimulationSummary:
    """What a run produced: records per source slug, ticks, simulated span, and whether it was interrupted."""

    records_by_slug: dict[str, int]
    ticks: int
    start: datetime
    simulated_seconds: float
    wall_seconds: float
    interrupted: bool

    @property
    def total_records(self) -> int:
        """Records written across all sources."""
        return sum(self.records_by_slug.values())


def simulation_run(
    *,
    scenarios: Sequence[Scenario],
    sink: Sink,
    duration_seconds: float | None,
    realtime: bool,
    start: datetime | None = None,
    tick_seconds: float = 1.0,
    backfill_batch_records: int = DEFAULT_BACKFILL_BATCH_RECORDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SimulationSummary:
    """Write each scenario's records tick by tick to `sink`, then close it; Ctrl-C stops cleanly.

    Realtime: simulated time runs at wall-clock speed from `start` (default: now); each tick's records are written,
    one batch per source, once the tick's window has closed; this goes on for `duration_seconds` or forever.
    Backfill (realtime=False): the span [start, start + duration_seconds) is generated without sleeping (`start`
    defaults to duration_seconds ago), and batches are combined across ticks up to `backfill_batch_records` per
    source so an HTTP backfill makes a few large requests rather than one per tick and source.
    KeyboardInterrupt (raise it from a SIGTERM handler too) ends the run with `interrupted=True` after writing what
    was generated; the sink is closed, and so flushed, in every case.
    """
    if not scenarios:
        raise ValueError("Select at least one scenario.")
    if tick_seconds <= 0:
        raise ValueError(f"tick_seconds must be positive, got {tick_seconds}.")
    if duration_seconds is not None and duration_seconds <= 0:
        raise ValueError(f"duration_seconds must be positive, got {duration_seconds}.")
    if not realtime and duration_seconds is None:
        raise ValueError("A backfill (realtime=False) needs duration_seconds: it would otherwise never end.")
    if start is None:
        now = datetime.now(UTC).replace(microsecond=0)
        start = now if realtime or duration_seconds is None else now - timedelta(seconds=duration_seconds)
    elif start.tzinfo is None:
        raise ValueError(f"start must be timezone-aware, got naive {start.isoformat()}.")

    records_by_slug = {scenario.source_slug: 0 for scenario in scenarios}
    pending: dict[str, list[Record]] = {scenario.source_slug: [] for scenario in scenarios}
    batch_limit = 1 if realtime else max(1, backfill_batch_records)

    def deliver(*, source_slug: str, minimum: int) -> None:
        records = pending[source_slug]
        if records and len(records) >= minimum:
            pending[source_slug] = []
            sink.write(source_slug=source_slug, records=records)
            records_by_slug[source_slug] += len(records)

    ticks = 0
    offset_seconds = 0.0
    interrupted = False
    wall_started = clock()
    try:
        try:
            # The epsilon stops float error from adding an empty tick at the end of e.g. a 0.3 s run of 0.1 s ticks.
            while duration_seconds is None or offset_seconds < duration_seconds - 1e-9:
                length = (
                    tick_seconds if duration_seconds is None else min(tick_seconds, duration_seconds - offset_seconds)
                )
                if realtime:
                    # Wait until the window has closed so no record is from the future. The deadline is measured from
                    # the run's start, not the previous tick, so slow ticks and oversleeping never add up to drift.
                    deadline = wall_started + offset_seconds + length
                    while (remaining := deadline - clock()) > 0:
                        sleep(remaining)
                window_start = start + timedelta(seconds=offset_seconds)
                for scenario in scenarios:
                    pending[scenario.source_slug].extend(
                        scenario.records_for_tick(at=window_start, tick_seconds=length)
                    )
                    deliver(source_slug=scenario.source_slug, minimum=batch_limit)
                ticks += 1
                # Multiply rather than accumulate so float error cannot build up over a long run.
                offset_seconds = ticks * tick_seconds
        except KeyboardInterrupt:
            interrupted = True
        # Reached on a normal end and on an interrupt, not when the sink failed: retrying it here would only fail again.
        try:
            for source_slug in pending:
                deliver(source_slug=source_slug, minimum=1)
        except KeyboardInterrupt:
            interrupted = True
    finally:
        sink.close()
    simulated_seconds = offset_seconds if duration_seconds is None else min(offset_seconds, duration_seconds)
    return SimulationSummary(
        records_by_slug=records_by_slug,
        ticks=ticks,
        start=start,
        simulated_seconds=simulated_seconds,
        wall_seconds=clock() - wall_started,
        interrupted=interrupted,
    )
