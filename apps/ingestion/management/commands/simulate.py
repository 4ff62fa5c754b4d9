"""Generate realistic demo data for the factory, marketing and business sources and send it to a sink."""

from __future__ import annotations

import os
import re
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import FrameType

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.ingestion.simulator.runner import SimulationSummary, simulation_run
from apps.ingestion.simulator.scenarios import (
    DEFAULT_DEVICES,
    DEFAULT_FAULTS_PER_DEVICE_HOUR,
    DEFAULT_SAMPLE_INTERVAL_SECONDS,
    EVENT_RATE_SHARES,
    SCENARIO_NAMES,
    BusinessScenario,
    FactoryScenario,
    MarketingScenario,
    Scenario,
    scenario_names_parse,
    scenarios_build,
)
from apps.ingestion.simulator.sinks import (
    SINK_NAMES,
    HttpSink,
    HttpSinkError,
    LineProtocolSink,
    LogSink,
    NdjsonSink,
    Sink,
)

DEFAULT_RATE = 100.0
DEFAULT_URL = "http://127.0.0.1:8000"
WRITE_KEYS_ENVIRONMENT_VARIABLE = "SIMULATE_WRITE_KEYS"
SOURCE_SLUGS = {
    scenario.name: scenario.source_slug for scenario in (FactoryScenario, MarketingScenario, BusinessScenario)
}
_RELATIVE_START = re.compile(r"-((?:\d+(?:\.\d+)?[smhdw])+)")
# argparse takes any "-..." value for an option unless it looks like a negative number; widening that test
# lets `--start -2h` work as well as `--start=-2h`.
_NEGATIVE_NUMBER_OR_RELATIVE_TIME = re.compile(r"^-\d+$|^-\d*\.\d+$|^-(?:\d+(?:\.\d+)?[smhdw])+$")
_RELATIVE_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def start_parse(*, value: str, now: datetime) -> datetime:
    """Parse --start: 'now', a relative offset like -2h / -90m / -1d12h, or an ISO 8601 time (naive means UTC)."""
    text = value.strip()
    if text.lower() == "now":
        return now
    relative = _RELATIVE_START.fullmatch(text)
    if relative:
        seconds = sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in _RELATIVE_PART.findall(relative[1]))
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--start must be 'now', a relative time like -2h, -90m or -1d12h, or ISO 8601 like "
            f"2024-05-01T08:00:00Z; got {value!r}."
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def write_keys_parse(*, values: list[str], origin: str) -> dict[str, str]:
    """Parse 'slug=key' items (each may itself be a comma list) into {slug: key}; ValueError names `origin`."""
    keys: dict[str, str] = {}
    for value in values:
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            slug, separator, key = item.partition("=")
            slug, key = slug.strip(), key.strip()
            if not separator or not slug or not key:
                raise ValueError(f"{origin}: expected SLUG=KEY such as demo-factory=KEY, got {_redacted(item)!r}.")
            if slug not in SOURCE_SLUGS.values():
                raise ValueError(
                    f"{origin}: unknown source slug {slug!r}; the demo sources are {', '.join(SOURCE_SLUGS.values())}."
                )
            keys[slug] = key
    return keys


def _redacted(item: str) -> str:
    # Error messages end up in logs; never echo what may be a secret.
    slug, separator, _ = item.partition("=")
    return f"{slug}=***" if separator else "***"


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _sigterm_as_keyboard_interrupt() -> Iterator[None]:
    # Process managers (honcho, systemd, docker) stop us with SIGTERM; treat it like Ctrl-C so the sink is flushed.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _plain(text: str) -> str:
    return text


class Command(BaseCommand):
    """manage.py simulate: stream or backfill demo data into a sink."""

    help = (
        "Generate realistic demo data for three sources: demo-factory (machine sensors with occasional drifts, "
        "failures and recoveries), demo-marketing (web and app events) and demo-business (ERP orders and "
        "invoices). By default time runs with the wall clock and each source gets one batch per second; "
        "--no-realtime backfills a span of simulated time as fast as possible. Data goes to stdout (NDJSON or "
        "InfluxDB line protocol), to the HTTP ingest API, or nowhere with a once-a-second rate log. "
        "Examples: simulate --sink stdout-ndjson --scenario factory --devices 5 | head; "
        "simulate --no-realtime --start -2h --sink http --write-key demo-factory=KEY ... ; "
        "status lines go to stderr so stdout stays a clean data stream."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser._negative_number_matcher = _NEGATIVE_NUMBER_OR_RELATIVE_TIME
        parser.add_argument(
            "--scenario",
            action="append",
            metavar="NAME",
            help=(
                f"Which scenarios to run: {', '.join(SCENARIO_NAMES)} or all. Repeat the option or give a comma "
                "list (--scenario factory,marketing). Default: all."
            ),
        )
        shares = " / ".join(f"{name} {share:.0%}" for name, share in EVENT_RATE_SHARES.items()).replace("%", "%%")
        parser.add_argument(
            "--rate",
            type=float,
            default=DEFAULT_RATE,
            metavar="N",
            help=(
                "Mean records per second (averaged over a day; a week for business), shared by the event "
                "scenarios marketing and "
                f"business ({shares} when both run; all of it when only one does). The actual rate follows the "
                "time of day: evenings are busiest for marketing, weekday office hours for business. The factory "
                "is not affected: it sends one record per device per --interval, i.e. --devices / --interval "
                f"records per second. Default: {DEFAULT_RATE:g}."
            ),
        )
        parser.add_argument(
            "--devices",
            type=int,
            default=DEFAULT_DEVICES,
            metavar="N",
            help=f"Factory machines, spread over facilities f1..f5. Default: {DEFAULT_DEVICES}.",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=DEFAULT_SAMPLE_INTERVAL_SECONDS,
            metavar="SECONDS",
            help=(
                "Seconds between two readings of one factory machine (minimum 0.001). "
                f"Default: {DEFAULT_SAMPLE_INTERVAL_SECONDS:g}."
            ),
        )
        parser.add_argument(
            "--fault-rate",
            type=float,
            default=DEFAULT_FAULTS_PER_DEVICE_HOUR,
            metavar="PER_HOUR",
            help=(
                "Expected faults per factory machine per simulated hour. A fault is a 15-45 minute drift "
                "(temperature or vibration creeping up), a short spike, then 5-20 minutes down with power near 0, "
                f"then recovery. 0 disables faults. Default: {DEFAULT_FAULTS_PER_DEVICE_HOUR:g} "
                "(about two an hour across 100 machines)."
            ),
        )
        parser.add_argument(
            "--sink",
            choices=SINK_NAMES,
            default="log",
            help=(
                "Where records go. stdout-ndjson: one JSON object per line with a 'source' key. stdout-line: "
                "InfluxDB line protocol (measurement demo_factory etc., labels as tags, measures as float fields, "
                "ns timestamps). log: discard records and print records/s to stderr once a second. http: POST "
                "each batch as a JSON array to URL/api/v1/sources/SLUG/ingest. Default: log."
            ),
        )
        parser.add_argument(
            "--url",
            metavar="URL",
            help=f"Base URL of the platform for --sink http (http:// or https://). Default: {DEFAULT_URL}.",
        )
        parser.add_argument(
            "--write-key",
            action="append",
            metavar="SLUG=KEY",
            help=(
                "Write key of a source for --sink http, e.g. --write-key demo-factory=KEY; repeat for each "
                f"source. Also read from ${WRITE_KEYS_ENVIRONMENT_VARIABLE} as slug=key,slug=key (the option "
                "wins). Every selected source needs one."
            ),
        )
        parser.add_argument(
            "--duration",
            type=float,
            metavar="SECONDS",
            help=(
                "Simulated seconds to generate. Realtime: stop after this long (default: run until Ctrl-C or "
                "SIGTERM). --no-realtime: length of the backfill (default: from --start up to now)."
            ),
        )
        parser.add_argument(
            "--no-realtime",
            dest="realtime",
            action="store_false",
            help=(
                "Backfill: generate simulated time as fast as possible instead of pacing to the wall clock, "
                "writing up to 5000 records per source at a time. Needs --start, --duration or both (with only "
                "--duration, the backfill ends now)."
            ),
        )
        parser.add_argument(
            "--start",
            metavar="TIME",
            help=(
                "Simulated start time: 'now', relative like -2h, -90m or -1d12h, or ISO 8601 such as "
                "2024-05-01T08:00:00Z (no offset means UTC). Default: now (realtime) or now minus --duration "
                "(backfill)."
            ),
        )
        parser.add_argument(
            "--seed",
            type=int,
            help=(
                "Random seed; the same seed, options and --start give the same data. "
                "Default: a random seed, printed at start so a run can be repeated."
            ),
        )

    def handle(self, *args: object, **options: object) -> None:
        try:
            names = scenario_names_parse(values=options["scenario"] or ["all"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        rate = float(options["rate"])
        devices = int(options["devices"])
        interval = float(options["interval"])
        fault_rate = float(options["fault_rate"])
        duration = options["duration"]
        realtime = bool(options["realtime"])
        if not rate > 0:
            raise CommandError(f"--rate must be a positive number of records per second, got {rate:g}.")
        if devices < 1:
            raise CommandError(f"--devices must be at least 1, got {devices}.")
        if not interval >= 0.001:
            raise CommandError(f"--interval must be at least 0.001 seconds, got {interval:g}.")
        if not fault_rate >= 0:
            raise CommandError(f"--fault-rate must be 0 or more faults per device-hour, got {fault_rate:g}.")
        if duration is not None and not float(duration) > 0:
            raise CommandError(f"--duration must be a positive number of seconds, got {float(duration):g}.")

        start, duration_seconds = self._time_span(
            start_option=options["start"],
            duration=None if duration is None else float(duration),
            realtime=realtime,
        )
        seed = options["seed"] if options["seed"] is not None else secrets.randbelow(2**31)
        scenarios = scenarios_build(
            names=names,
            seed=int(seed),
            rate=rate,
            devices=devices,
            sample_interval_seconds=interval,
            faults_per_device_hour=fault_rate,
        )
        sink = self._sink_build(
            sink_name=str(options["sink"]),
            url=options["url"],
            write_key_options=options["write_key"],
            scenarios=scenarios,
        )
        self._status(self._start_description(scenarios=scenarios, options=options, seed=int(seed), start=start))
        try:
            with _sigterm_as_keyboard_interrupt():
                summary = simulation_run(
                    scenarios=scenarios,
                    sink=sink,
                    duration_seconds=duration_seconds,
                    realtime=realtime,
                    start=start,
                )
        except HttpSinkError as error:
            raise CommandError(str(error)) from None
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): that is a normal way to stop.
            self._silence_stdout()
            return
        self._status(self._end_description(summary=summary, scenarios=scenarios))

    def _time_span(
        self, *, start_option: object, duration: float | None, realtime: bool
    ) -> tuple[datetime, float | None]:
        now = datetime.now(UTC).replace(microsecond=0)
        try:
            start = None if start_option is None else start_parse(value=str(start_option), now=now)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if realtime:
            return start or now, duration
        if start is None and duration is None:
            raise CommandError(
                "--no-realtime backfills a span of simulated time: give --start (e.g. -2h), --duration SECONDS, "
                "or both."
            )
        if start is None:
            return now - timedelta(seconds=duration), duration
        if duration is None:
            duration = (now - start).total_seconds()
            if duration <= 0:
                raise CommandError(
                    f"--start {start_option} is not in the past, so there is nothing to backfill up to now; "
                    "give --duration SECONDS as well."
                )
        return start, duration

    def _sink_build(self, *, sink_name: str, url: object, write_key_options: object, scenarios: list[Scenario]) -> Sink:
        if sink_name != "http" and (url is not None or write_key_options):
            raise CommandError(f"--url and --write-key only apply to --sink http (the sink is {sink_name}).")
        if sink_name == "stdout-ndjson":
            return NdjsonSink(stream=self.stdout)
        if sink_name == "stdout-line":
            return LineProtocolSink(stream=self.stdout)
        if sink_name == "log":
            return LogSink(
                display_names={scenario.source_slug: scenario.name for scenario in scenarios}, emit=self._status
            )
        try:
            write_keys = write_keys_parse(
                values=[os.environ.get(WRITE_KEYS_ENVIRONMENT_VARIABLE, "")],
                origin=f"${WRITE_KEYS_ENVIRONMENT_VARIABLE}",
            )
            write_keys.update(write_keys_parse(values=list(write_key_options or []), origin="--write-key"))
            sink = HttpSink(base_url=str(url or DEFAULT_URL), write_keys=write_keys)
        except ValueError as error:
            raise CommandError(str(error)) from None
        missing = [scenario.source_slug for scenario in scenarios if scenario.source_slug not in write_keys]
        if missing:
            examples = " ".join(f"--write-key {slug}=KEY" for slug in missing)
            raise CommandError(
                f"--sink http needs a write key for {', '.join(missing)}: pass {examples} "
                f"or set ${WRITE_KEYS_ENVIRONMENT_VARIABLE}=slug=key,slug=key."
            )
        return sink

    def _start_description(
        self, *, scenarios: list[Scenario], options: dict[str, object], seed: int, start: datetime
    ) -> str:
        parts = []
        for scenario in scenarios:
            if isinstance(scenario, FactoryScenario):
                parts.append(f"factory {options['devices']} devices every {float(options['interval']):g} s")
            else:
                parts.append(f"{scenario.name} ~{scenario.expected_rate(at=start):,.0f}/s now")
        mode = "realtime" if options["realtime"] else "backfill"
        return f"simulate: {'; '.join(parts)} -> {options['sink']}, {mode} from {start:%Y-%m-%dT%H:%M:%SZ}, seed {seed}"

    def _end_description(self, *, summary: SimulationSummary, scenarios: list[Scenario]) -> str:
        counts = ", ".join(
            f"{scenario.name} {summary.records_by_slug[scenario.source_slug]:,}" for scenario in scenarios
        )
        how = "interrupted" if summary.interrupted else "done"
        return (
            f"simulate: {how}: {summary.total_records:,} records ({counts}) covering "
            f"{summary.simulated_seconds:,.0f} s of simulated time in {summary.wall_seconds:,.1f} s"
        )

    def _status(self, line: str) -> None:
        # stderr is styled as an error on a terminal by default; these lines are routine progress.
        self.stderr.write(line, style_func=_plain)
        self.stderr.flush()

    def _silence_stdout(self) -> None:
        # Python would otherwise report the broken pipe again when it flushes stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
