"""The demo's history: the simulator's scenarios over the last N days, written through a sink (the HTTP ingest API
in `make demo`) as fast as the server takes it, with a progress line.

Machines report coarser further back, so a month of 50 machines stays a few hundred thousand records while every
range a dashboard offers is drawn without gaps: every 30 min beyond a week (a 30-day chart has about hour-wide
buckets), every 5 min within the week, every minute within the day, every 10 s within the hour (the live
simulator then goes on at 1 s). Events (web, ERP) are written at the demo's event rate throughout, the rate the
live simulator goes on with, so charts show no step where history meets live data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from apps.ingestion.simulator.runner import simulation_run
from apps.ingestion.simulator.scenarios import FactoryScenario, Record, Scenario, scenarios_build
from apps.ingestion.simulator.sinks import Sink

# (how far back the tier starts, the factory's sample interval in seconds), oldest first; the first tier starts
# where the history does, each ends where the next starts, the last one now.
FACTORY_TIERS: tuple[tuple[timedelta | None, float], ...] = (
    (None, 1800.0),
    (timedelta(days=7), 300.0),
    (timedelta(days=1), 60.0),
    (timedelta(hours=1), 10.0),
)
EVENTS_TICK_SECONDS = 60.0


@dataclass
class HistoryProgress:
    """Records written so far per source, shared by the writer threads; `line()` says where the run is."""

    total_seconds: float
    started: float = field(default_factory=time.monotonic)
    records: dict[str, int] = field(default_factory=dict)
    covered_seconds: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *, source_slug: str, count: int, covered_seconds: float) -> None:
        with self.lock:
            self.records[source_slug] = self.records.get(source_slug, 0) + count
            self.covered_seconds[source_slug] = max(self.covered_seconds.get(source_slug, 0.0), covered_seconds)

    def line(self) -> str:
        with self.lock:
            total = sum(self.records.values())
            days_done = min(self.covered_seconds.values(), default=0.0) / 86_400
            elapsed = max(time.monotonic() - self.started, 1e-6)
            return (
                f"History: {days_done:4.1f} of {self.total_seconds / 86_400:.0f} days written, {total:,} records "
                f"({', '.join(f'{slug} {count:,}' for slug, count in sorted(self.records.items()))}), "
                f"{total / elapsed:,.0f} records/s, {elapsed:.0f} s"
            )


class _CountingSink:
    """Passes batches on and counts them: how far into the span each source has got."""

    def __init__(self, sink: Sink, progress: HistoryProgress, span_start: datetime) -> None:
        self._sink = sink
        self._progress = progress
        self._span_start = span_start

    def write(self, *, source_slug: str, records: list[Record]) -> None:
        self._sink.write(source_slug=source_slug, records=records)
        newest = datetime.fromisoformat(str(records[-1]["time"]).replace("Z", "+00:00"))
        covered = (newest - self._span_start).total_seconds()
        self._progress.add(source_slug=source_slug, count=len(records), covered_seconds=covered)

    def close(self) -> None:
        """The wrapped sink is closed by whoever made it."""


def _factory_history(
    *, sink: Sink, progress: HistoryProgress, now: datetime, days: float, seed: int, devices: int
) -> None:
    scenario = FactoryScenario(seed=seed, devices=devices)
    start = now - timedelta(days=days)
    counting = _CountingSink(sink, progress, start)
    tiers = [(start, FACTORY_TIERS[0][1])]
    tiers += [(now - back, interval) for back, interval in FACTORY_TIERS[1:] if back and now - back > start]
    for index, (tier_start, interval) in enumerate(tiers):
        tier_end = tiers[index + 1][0] if index + 1 < len(tiers) else now
        if tier_end <= tier_start:
            continue
        scenario.sample_interval_set(seconds=interval)
        simulation_run(
            scenarios=[scenario],
            sink=counting,
            duration_seconds=(tier_end - tier_start).total_seconds(),
            realtime=False,
            start=tier_start,
            tick_seconds=interval,
        )


def _events_history(
    *, sink: Sink, progress: HistoryProgress, now: datetime, days: float, seed: int, event_rate: float
) -> None:
    start = now - timedelta(days=days)
    scenarios: list[Scenario] = scenarios_build(names=["marketing", "business"], seed=seed, rate=event_rate)
    simulation_run(
        scenarios=scenarios,
        sink=_CountingSink(sink, progress, start),
        duration_seconds=days * 86_400,
        realtime=False,
        start=start,
        tick_seconds=EVENTS_TICK_SECONDS,
    )


def demo_history_write(
    *,
    sink_factory: Callable[[], Sink],
    now: datetime,
    days: float,
    seed: int,
    devices: int,
    event_rate: float,
    report: Callable[[str], None],
    report_every_seconds: float = 5.0,
    parallel: bool = True,
) -> HistoryProgress:
    """Write `days` of history up to `now` for the three demo sources, the factory and the events side by side
    (one sink each, so two requests are in flight), reporting a progress line every few seconds and at the end.

    Raises the first writer's error after both have stopped. `parallel=False` writes one after the other in the
    caller's thread (and database transaction: tests).
    """
    progress = HistoryProgress(total_seconds=days * 86_400)
    errors: list[BaseException] = []
    sinks = [sink_factory(), sink_factory()]

    def run(target: Callable[..., None], sink: Sink, **kwargs: object) -> None:
        try:
            target(sink=sink, progress=progress, now=now, days=days, seed=seed, **kwargs)
        except BaseException as error:  # reported by the caller's thread
            errors.append(error)
        finally:
            sink.close()

    if not parallel:
        _factory_history(sink=sinks[0], progress=progress, now=now, days=days, seed=seed, devices=devices)
        _events_history(sink=sinks[1], progress=progress, now=now, days=days, seed=seed, event_rate=event_rate)
        report(progress.line())
        return progress
    threads = [
        threading.Thread(target=run, args=(_factory_history, sinks[0]), kwargs={"devices": devices}, daemon=True),
        threading.Thread(target=run, args=(_events_history, sinks[1]), kwargs={"event_rate": event_rate}, daemon=True),
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        deadline = time.monotonic() + report_every_seconds
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        report(progress.line())
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return progress
