"""Storage at scale on either backend (plain PostgreSQL or TimescaleDB), against InfluxDB 1.x loaded with the same
points in the same run.

Loads 1,000 series (metric "temperature", devices d0000..d0999, facilities f1..f5 with 200 devices each) at
1 Hz ending "now" through the real write path (`points_write`, time-ordered batches like live ingest): 100
million points, or 2 million with --quick. Then refreshes the rollup tiers, and times the dashboard queries
through the real query engine (`query_execute`, a real user): raw last 15 minutes of one device; last 24 hours
at 1-minute buckets grouped by facility; last 30 days hourly for one facility and for the fleet by facility.
"Now" for the queries is the end of the data (the moment the load started). InfluxDB 1.x (`influxd` from the
Debian package `influxdb`) is started on a free loopback port in a temp dir, loaded with the same points by
line protocol, asked the equivalent InfluxQL, then stopped and its data deleted.

    .venv/bin/python -m bench storage [--quick]

The parent process (no Django) drops and recreates the database (BENCH_STORAGE_DATABASE_URL, else
BENCH_DATABASE_URL, else analytics_bench_storage on the local server), migrates it with STORAGE_BACKEND from
BENCH_STORAGE_BACKEND (default auto: TimescaleDB where the server offers it), and runs the body in a child
(`python -m bench.storage --worker`) whose DATABASE_URL points at it. The result names the backend and the server
versions it measured. Knobs: BENCH_STORAGE_KEEP_DATABASE=1 (keep the loaded
database for EXPLAIN experiments; it is dropped otherwise), BENCH_STORAGE_SECONDS (span of the data),
BENCH_STORAGE_SKIP_INFLUX=1, BENCH_STORAGE_BACKFILL_POINTS (size of the backfill phase, see _backfill_drain),
BENCH_STORAGE_REDIS_URL (default redis://127.0.0.1:6379/13: the benchmark's own Redis database, emptied before
each "cold" query so the engine's query cache, if any, cannot answer it).

Each query is timed cold (cache emptied: a dashboard's first load; compared with InfluxDB, which has no result
cache) and as a warm refresh (the same query 5 s later, as an auto-refreshing dashboard asks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import add
from pathlib import Path

from bench import smoke
from bench.django_server import (
    bench_database_url,
    database_versions,
    postgres_backend_cpu_seconds,
    storage_backend_wanted,
)
from bench.influx import Influx, InfluxUnavailable, self_cpu_seconds
from bench.storage_database import (
    Capture,
    backend_pid,
    compression_timescaledb,
    maintenance,
    postgres_settings,
    rollup_refresh_timed,
    sizes_and_counts,
    sql_text,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "analytics_bench_storage"
SERIES = 1_000
FACILITIES = 5
FULL_SECONDS = 100_000  # x 1,000 series = 100 million points (27.8 hours at 1 Hz)
QUICK_SECONDS = 2_000  # 2 million points
SMOKE_SECONDS = 120  # --smoke: 120,000 points, every stage once
BATCH_SECONDS = 10  # 10,000 points per points_write / per InfluxDB request
INFLUX_CLIENTS = 4
SEED = 20_260_101
TARGET_P95_MS = 100.0
DASHBOARD_REFRESH_SECONDS = 5  # the "warm" run is the dashboard's next auto-refresh, this much later
METRIC = "temperature"
# Issue 15: a backfill of this many points spread over the 30 days before the end, written while the dashboard
# queries run and the refresh drains the late points' deltas as the beat task would (every 10 s).
BACKFILL_POINTS = {"full": 10_000_000, "quick": 1_000_000, "smoke": 20_000}
BACKFILL_DAYS = 30
REFERENCE_SECONDS = 30  # the query mix alone, before the backfill and after its drain (the same-run reference)
REFRESH_EVERY_SECONDS = 10
REDELIVER_EVERY = 25  # every 25th backfill batch is written twice (a redelivery, re-aggregated)


def _log(message: str) -> None:
    print(f"[storage {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- parent: database and child process ----------------------------------------------------------------------
def _environment(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "analytics_platform.settings.prod",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": url,
        # Its own Redis database: the benchmark empties the cache before every "cold" query.
        "REDIS_URL": os.environ.get("BENCH_STORAGE_REDIS_URL", "redis://127.0.0.1:6379/13"),
        "STORAGE_BACKEND": storage_backend_wanted(),
        "LOG_LEVEL": "WARNING",
    }


def _database_recreate(url: str, *, drop_only: bool = False) -> None:
    import psycopg
    from psycopg import conninfo, sql

    name = conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(conninfo.make_conninfo(url, dbname="postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not drop_only:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _run_lock(url: str):
    """Hold a server-wide advisory lock for the run: two runs would drop each other's database (and skew timings)."""
    import psycopg
    from psycopg import conninfo

    connection = psycopg.connect(conninfo.make_conninfo(url, dbname="postgres"), autocommit=True)
    name = conninfo.conninfo_to_dict(url)["dbname"]
    locked = connection.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [f"bench.storage:{name}"]).fetchone()[0]
    if not locked:
        connection.close()
        raise RuntimeError(
            f"another storage benchmark is running against {name!r} on this server; wait for it, "
            "or give this run its own database with BENCH_STORAGE_DATABASE_URL."
        )
    return connection


def run(*, quick: bool = False) -> dict:
    """Recreate and migrate the bench database, run the body in a child process, return its result."""
    url = os.environ.get("BENCH_STORAGE_DATABASE_URL") or bench_database_url(BENCH_DATABASE)
    environment = _environment(url)
    lock = _run_lock(url)
    try:
        _log(f"recreating {url}")
        _database_recreate(url)
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=REPO_ROOT,
            env=environment,
            capture_output=True,
            text=True,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{migrate.stderr}")
        _log(f"measuring {database_versions(url)}")
        with tempfile.TemporaryDirectory(prefix="bench-storage-") as directory:
            output = Path(directory) / "result.json"
            command = [sys.executable, "-m", "bench.storage", "--worker", "--output", str(output)]
            subprocess.run([*command, *(["--quick"] if quick else [])], cwd=REPO_ROOT, env=environment, check=True)
            result = json.loads(output.read_text())
        if os.environ.get("BENCH_STORAGE_KEEP_DATABASE") == "1":
            result["database_kept"] = url
        else:
            _database_recreate(url, drop_only=True)
        return result
    finally:
        lock.close()


# --- data ----------------------------------------------------------------------------------------------------
def _devices() -> list[tuple[str, str]]:
    per_facility = SERIES // FACILITIES
    return [(f"d{index:04d}", f"f{index // per_facility + 1}") for index in range(SERIES)]


def _walk(seconds: int, seed: int = SEED) -> Iterator[list[float]]:
    """Per second, one value per series: a mean-reverting random walk around a per-device base (deterministic).

    Steps come from a pool of Gaussian increments at a random offset each second, so a second costs two
    C-level list passes instead of a thousand random calls.
    """
    rng = random.Random(seed)  # noqa: S311 - benchmark data, not security
    pool_size = 1_000_003
    pool = [rng.gauss(0.0, 0.02) for _ in range(pool_size)]
    pool.extend(pool[:SERIES])
    bases = [15.0 + 10.0 * rng.random() for _ in range(SERIES)]
    values = list(bases)
    for second in range(seconds):
        offset = rng.randrange(pool_size)
        values = list(map(add, values, pool[offset : offset + SERIES]))
        if second % 60 == 59:  # pull back toward the base once a minute (stationary, sd ~0.5 degrees)
            values = [value + (base - value) * 0.05 for value, base in zip(values, bases, strict=True)]
        yield values


def _summary(values: list[float]) -> dict:
    ordered = sorted(values)
    count = len(ordered)

    def rank(quantile: float) -> float:
        return round(ordered[max(0, math.ceil(quantile * count) - 1)], 3)

    return {
        "n": count,
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": rank(0.95),
        "p99_ms": rank(0.99),
        "min_ms": round(ordered[0], 3),
        "max_ms": round(ordered[-1], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


# --- our side: load, rollups, sizes --------------------------------------------------------------------------
def _series_setup() -> tuple[list[int], object]:
    from django.contrib.auth import get_user_model

    from apps.access.models import Organization
    from apps.sources.models import Source
    from apps.storage.services import series_key, series_resolve

    organization, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    source = Source.objects.create(name="Bench plant", slug="bench-plant", organization=organization)
    keys = [
        series_key(source_id=source.pk, metric=METRIC, labels={"device": device, "facility": facility})
        for device, facility in _devices()
    ]
    resolved = series_resolve(keys=keys)
    user = get_user_model().objects.create_user(username="bench-storage", password=secrets.token_urlsafe(16))
    # A member of the source's organisation, so the query engine's data scope lets it read the bench series.
    organization.memberships.create(user=user, role="viewer")
    return [resolved[key] for key in keys], user


def _load_ours(ids: list[int], start: datetime, seconds: int) -> dict:
    from apps.storage.services import points_write

    generate = write = 0.0
    batch_ms: list[float] = []
    batch: list = []
    late = 0
    pid = backend_pid()
    server_cpu, client_cpu = postgres_backend_cpu_seconds(pid), self_cpu_seconds()
    report_every = max(1, seconds // 20)
    wall = time.perf_counter()
    tick = wall
    for second, values in enumerate(_walk(seconds)):
        batch.extend(zip(ids, repeat(start + timedelta(seconds=second)), values, strict=False))
        if (second + 1) % BATCH_SECONDS and second + 1 != seconds:
            continue
        before = time.perf_counter()
        generate += before - tick
        late += points_write(points=batch).late_buckets
        tick = time.perf_counter()
        write += tick - before
        batch_ms.append((tick - before) * 1000)
        batch = []
        if (second + 1) % report_every < BATCH_SECONDS:
            done = (second + 1) * SERIES
            _log(f"ours: {done:,} points, write path {done / write:,.0f} rows/s, generation {generate:.1f} s")
    wall = time.perf_counter() - wall
    points = seconds * SERIES
    return {
        "points": points,
        "batch_points": BATCH_SECONDS * SERIES,
        "batches": len(batch_ms),
        "writers": 1,
        "generate_seconds": round(generate, 2),
        "write_seconds": round(write, 2),
        "wall_seconds": round(wall, 2),
        "rows_per_second_write_path": round(points / write),
        "rows_per_second_end_to_end": round(points / wall),
        "batch_ms": _summary(batch_ms),
        "late_buckets_reaggregated": late,
        "postgres_backend_cpu_seconds": round(postgres_backend_cpu_seconds(pid) - server_cpu, 1),
        "python_client_cpu_seconds": round(self_cpu_seconds() - client_cpu, 1),
        "note": "write_seconds is the time inside points_write (Python COPY encoding + PostgreSQL), generation is "
        "excluded; end_to_end includes generating the points in the same (single) process.",
    }


# --- InfluxDB side -------------------------------------------------------------------------------------------
def _influx_bodies(start_epoch: int, seconds: int) -> Iterator[bytes]:
    prefixes = [f"{METRIC},device={device},facility={facility} value=" for device, facility in _devices()]
    chunks: list[str] = []
    for second, values in enumerate(_walk(seconds)):
        line = f"{{}}{{!r}} {start_epoch + second}\n".format
        chunks.append("".join(map(line, prefixes, values)))
        if (second + 1) % BATCH_SECONDS == 0 or second + 1 == seconds:
            yield "".join(chunks).encode()
            chunks = []


def _influx_producer(channel, start_epoch: int, seconds: int) -> None:
    """Child process: generate line-protocol bodies into `channel`, then a dict with the CPU time it took."""
    started = time.process_time()
    for body in _influx_bodies(start_epoch, seconds):
        channel.put(body)
    channel.put({"generate_cpu_seconds": time.process_time() - started})


def _influx_stream(start_epoch: int, seconds: int, stats: dict) -> Iterator[bytes]:
    """Bodies from a generator process, so formatting text runs beside the senders instead of under their GIL."""
    context = multiprocessing.get_context("spawn")
    channel = context.Queue(maxsize=16)
    process = context.Process(target=_influx_producer, args=(channel, start_epoch, seconds), daemon=True)
    process.start()
    try:
        while True:
            item = channel.get()
            if isinstance(item, dict):
                stats.update(item)
                return
            yield item
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()


def _load_influx(influx: Influx, start_epoch: int, seconds: int) -> dict:
    influx.create_database("bench")
    total_batches = math.ceil(seconds / BATCH_SECONDS)
    report_every = max(1, total_batches // 20)
    started = time.perf_counter()

    def progress(batches: int) -> None:
        if batches % report_every == 0:
            done = batches * BATCH_SECONDS * SERIES
            _log(f"influx: {done:,} points, {done / (time.perf_counter() - started):,.0f} points/s")

    generator: dict = {}
    stats = influx.load(_influx_stream(start_epoch, seconds, generator), clients=INFLUX_CLIENTS, on_batch=progress)
    points = seconds * SERIES
    return {
        "points": points,
        "batch_lines": BATCH_SECONDS * SERIES,
        "clients": INFLUX_CLIENTS,
        "wall_seconds": round(stats["wall_seconds"], 2),
        "points_per_second": round(points / stats["wall_seconds"]),
        "generate_cpu_seconds": round(generator.get("generate_cpu_seconds", 0.0), 2),
        "waiting_for_generator_seconds": round(stats["producer_busy_seconds"], 2),
        "waiting_for_senders_seconds": round(stats["producer_blocked_seconds"], 2),
        "request_ms_p50": round(stats["request_ms_p50"], 1),
        "request_ms_p95": round(stats["request_ms_p95"], 1),
        "retries": stats["retries"],
        "influxd_cpu_seconds": round(stats["server_cpu_seconds"], 1),
        "python_senders_cpu_seconds": round(stats["client_cpu_seconds"], 1),
        "note": "Line bodies are formatted in a separate generator process while the senders post, so generation "
        "overlaps the writes and points_per_second (wall) includes it. waiting_for_generator_seconds is time "
        "the senders' feeder waited for text (the generator was the bottleneck then); waiting_for_senders_seconds "
        "is time a ready body waited for a free sender (InfluxDB was the bottleneck then).",
    }


# --- queries -------------------------------------------------------------------------------------------------
def _influx_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _floor(moment: datetime, seconds: int) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()) // seconds * seconds, tz=UTC)


def _cases(end: datetime, repetition: int) -> dict[str, tuple[dict, str]]:
    """Per case: (our JSON spec, equivalent InfluxQL), varying the device and facility per repetition."""
    device = f"d{(42 + repetition * 37) % SERIES:04d}"
    facility = f"f{(2 + repetition) % FACILITIES + 1}"
    # Our aggregates read from the start down to a whole minute (engine.aggregate_start); InfluxDB is asked the
    # same range (it too filters the range and labels each bucket with its start).
    last_15m = _influx_time(end - timedelta(minutes=15))
    last_24h = _influx_time(_floor(end - timedelta(hours=24), 60))
    last_30d = _influx_time(_floor(end - timedelta(days=30), 60))
    until = _influx_time(end)
    return {
        "a_raw_15m_one_device": (
            {"metric": METRIC, "filters": {"device": device}, "aggregation": "raw", "start": "-15m", "end": "now"},
            f"SELECT value FROM {METRIC} WHERE device = '{device}' AND time >= '{last_15m}' AND time < '{until}'",  # noqa: S608
        ),
        "b_avg_1m_24h_by_facility": (
            {"metric": METRIC, "aggregation": "avg", "bucket": "1m", "group_by": ["facility"], "start": "-24h",
             "end": "now", "max_points": 1440},
            f"SELECT mean(value) FROM {METRIC} WHERE time >= '{last_24h}' AND time < '{until}' "  # noqa: S608
            "GROUP BY time(1m), facility",
        ),
        "c1_avg_1h_30d_one_facility": (
            {"metric": METRIC, "filters": {"facility": facility}, "aggregation": "avg", "bucket": "1h",
             "group_by": ["facility"], "start": "-30d", "end": "now"},
            f"SELECT mean(value) FROM {METRIC} WHERE facility = '{facility}' AND time >= '{last_30d}' "  # noqa: S608
            f"AND time < '{until}' GROUP BY time(1h)",
        ),
        "c2_avg_1h_30d_fleet_by_facility": (
            {"metric": METRIC, "aggregation": "avg", "bucket": "1h", "group_by": ["facility"], "start": "-30d",
             "end": "now"},
            f"SELECT mean(value) FROM {METRIC} WHERE time >= '{last_30d}' AND time < '{until}' "  # noqa: S608
            "GROUP BY time(1h), facility",
        ),
    }  # fmt: skip


def _ours_once(body: dict, end: datetime, user) -> tuple[float, object, list]:
    from django.db import connection

    from apps.storage.query.engine import query_execute
    from apps.storage.query.spec import query_spec_parse

    capture = Capture()
    started = time.perf_counter()
    with connection.execute_wrapper(capture):
        result = query_execute(spec=query_spec_parse(body, now=end), principal=user)
    return (time.perf_counter() - started) * 1000, result, capture.calls


def _influx_once(influx: Influx, connection, text: str) -> tuple[float, dict]:
    started = time.perf_counter()
    document = influx.query(connection, text)
    return (time.perf_counter() - started) * 1000, document


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _compare(result, document: dict) -> dict:
    """Our answer against InfluxDB's: points compared where both have a value, and the largest difference."""
    ours: dict[tuple, float | None] = {}
    for item in result.series:
        key = item["labels"].get("facility") if "facility" in item["labels"] and result.bucket_seconds else None
        for moment, value in item["points"]:
            ours[(key, _epoch(moment))] = value
    theirs: dict[tuple, float | None] = {}
    for statement in document.get("results", []):
        for series in statement.get("series", []):
            key = (series.get("tags") or {}).get("facility") if result.bucket_seconds else None
            for moment, value in series["values"]:
                theirs[(key, moment)] = value
    if result.bucket_seconds and len({key for key, _ in ours}) == 1 and len({key for key, _ in theirs}) == 1:
        # One facility, not grouped on the InfluxDB side: compare by time alone.
        ours = {(None, moment): value for (_, moment), value in ours.items()}
        theirs = {(None, moment): value for (_, moment), value in theirs.items()}
    ours_values = {key: value for key, value in ours.items() if value is not None}
    theirs_values = {key: value for key, value in theirs.items() if value is not None}
    both = ours_values.keys() & theirs_values.keys()
    difference = max((abs(ours_values[key] - theirs_values[key]) for key in both), default=None)
    return {
        "ours_values": len(ours_values),
        "influx_values": len(theirs_values),
        "compared": len(both),
        "only_ours": len(ours_values.keys() - theirs_values.keys()),
        "only_influx": len(theirs_values.keys() - ours_values.keys()),
        "max_abs_difference": difference,
        "agree": bool(both) and len(both) == len(ours_values) == len(theirs_values) and difference < 1e-6,
    }


def _answers_difference(first, second) -> dict:
    """Where two answers to the same query differ (the second may come partly from the engine's cache)."""
    differing, null_mismatches, largest, examples = 0, 0, 0.0, []
    for one, other in zip(first.series, second.series, strict=False):
        for (moment, value), (_, again) in zip(one["points"], other["points"], strict=False):
            if value != again:
                differing += 1
                if value is None or again is None:
                    null_mismatches += 1
                else:
                    largest = max(largest, abs(value - again))
                if len(examples) < 3:
                    examples.append({"labels": one.get("labels"), "time": moment, "first": value, "second": again})
    shape_equal = [len(item["points"]) for item in first.series] == [len(item["points"]) for item in second.series]
    return {
        "agrees": shape_equal and null_mismatches == 0 and largest < 1e-9,
        "points": sum(len(item["points"]) for item in first.series),
        "differing": differing,
        "null_mismatches": null_mismatches,
        "max_abs_difference": largest,
        "examples": examples,
        "note": "differences around 1e-14 are floating-point summation order (parallel aggregation), not errors",
    }


def _statement_split(total_ms: float, calls: list) -> dict:
    main = calls[-1][2] if calls else 0.0
    series = sum(ms for statement, _, ms in calls if "FROM storage_series" in sql_text(statement))
    database = sum(ms for _, _, ms in calls)
    return {
        "statements": len(calls),
        "main_sql_ms": main,
        "series_select_ms": series,
        "other_sql_ms": database - main - series,
        "python_ms": total_ms - database,
    }


def _cache_clear() -> None:
    """Empty the query cache (the benchmark's own Redis database) and the process's series plans: a first load."""
    from django.core.cache import cache

    from apps.storage.query.engine import series_plans_clear

    cache.clear()
    series_plans_clear()


def _split_summary(splits: list[dict]) -> dict:
    summary = {
        key: round(statistics.median(split[key] for split in splits), 3)
        for key in ("main_sql_ms", "series_select_ms", "other_sql_ms", "python_ms")
    }
    summary["statements"] = splits[0]["statements"]
    return summary


def _queries(end: datetime, user, influx: Influx | None, *, rounds: int, warmup: int, influx_budget: float) -> dict:
    """Per case and round: ours cold (cache emptied), ours warm (the auto-refresh 5 s later), then InfluxDB.

    Cold is what storage and the planner do and is compared with InfluxDB (which has no result cache); warm
    is what a dashboard that refreshes sees when the engine caches complete buckets (same as cold if not).
    """
    connection = influx.connection() if influx else None
    refresh_end = end + timedelta(seconds=DASHBOARD_REFRESH_SECONDS)
    names = list(_cases(end, 0))
    cold: dict[str, list[float]] = {name: [] for name in names}
    warm: dict[str, list[float]] = {name: [] for name in names}
    cold_splits: dict[str, list[dict]] = {name: [] for name in names}
    warm_splits: dict[str, list[dict]] = {name: [] for name in names}
    warm_tiers: dict[str, dict[str, int]] = {name: {} for name in names}
    theirs: dict[str, list[float]] = {name: [] for name in names}
    info: dict[str, dict] = {name: {} for name in names}
    for repetition in range(warmup):
        for name, (body, text) in _cases(end, repetition).items():
            _cache_clear()
            _, result, _ = _ours_once(body, end, user)
            _, again, _ = _ours_once(body, end, user)
            _ours_once(body, refresh_end, user)
            if repetition == 0:
                info[name] = {
                    "spec": body,
                    "influxql": text,
                    "tier": result.tier,
                    "label_rollups": result.label_rollups,
                    "bucket_seconds": result.bucket_seconds,
                    "downsampled": result.downsampled,
                    "output_series": len(result.series),
                    "output_points": sum(len(item["points"]) for item in result.series),
                    "second_answer": _answers_difference(result, again),
                }
                if connection:
                    first_ms, document = _influx_once(influx, connection, text)
                    info[name]["influx_first_ms"] = round(first_ms, 1)
                    info[name]["check_against_influx"] = _compare(result, document)
    influx_rounds = {}
    for name in names:
        if connection:
            # One more untimed run to estimate the cost, then as many rounds as the budget allows (at least 3).
            cost, _ = _influx_once(influx, connection, _cases(end, 1)[name][1])
            influx_rounds[name] = max(3, min(rounds, int(influx_budget * 1000 / max(cost, 1.0))))
    _log(f"timing {rounds} rounds (ours) and {influx_rounds or 'no'} rounds (InfluxDB), interleaved")
    for repetition in range(rounds):
        for name, (body, text) in _cases(end, warmup + repetition).items():
            _cache_clear()
            ms, _, calls = _ours_once(body, end, user)
            cold[name].append(ms)
            cold_splits[name].append(_statement_split(ms, calls))
            ms, result, calls = _ours_once(body, refresh_end, user)
            warm[name].append(ms)
            warm_splits[name].append(_statement_split(ms, calls))
            tier = f"{result.tier}, {getattr(result, 'cached_buckets', 0)} buckets from cache"
            warm_tiers[name][tier] = warm_tiers[name].get(tier, 0) + 1
            if connection and repetition < influx_rounds[name]:
                ms, _ = _influx_once(influx, connection, text)
                theirs[name].append(ms)
    report = {}
    for name in names:
        entry = dict(info[name])
        entry["ours"] = _summary(cold[name])
        entry["ours_median_split_ms"] = _split_summary(cold_splits[name])
        entry["ours_warm_refresh"] = _summary(warm[name])
        entry["ours_warm_refresh_median_split_ms"] = _split_summary(warm_splits[name])
        entry["ours_warm_refresh_tiers"] = warm_tiers[name]
        entry["target_p95_ms"] = TARGET_P95_MS
        entry["target_pass"] = entry["ours"]["p95_ms"] < TARGET_P95_MS
        entry["target_pass_warm_refresh"] = entry["ours_warm_refresh"]["p95_ms"] < TARGET_P95_MS
        if theirs[name]:
            entry["influx"] = _summary(theirs[name])
            entry["ratio_ours_to_influx_p50"] = round(entry["ours"]["p50_ms"] / entry["influx"]["p50_ms"], 3)
            entry["ratio_ours_to_influx_p95"] = round(entry["ours"]["p95_ms"] / entry["influx"]["p95_ms"], 3)
            entry["ratio_ours_warm_refresh_to_influx_p50"] = round(
                entry["ours_warm_refresh"]["p50_ms"] / entry["influx"]["p50_ms"], 3
            )
        report[name] = entry
    if connection:
        connection.close()
    return report


# --- EXPLAIN -------------------------------------------------------------------------------------------------
def _explain(statement, params, *, rollback: bool = False, setup: tuple = ()) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) as text, the SQL with parameters inlined, and the costliest plan nodes.

    `setup` holds (statement, params) the engine ran before in the same transaction (its SET LOCALs, e.g.
    work_mem), replayed first so the plan is the one the engine gets.
    """
    import psycopg
    from django.db import connection, transaction
    from psycopg import sql

    def prefixed(options: str):
        prefix = f"EXPLAIN ({options}) "
        return prefix + statement if isinstance(statement, str) else sql.SQL(prefix) + statement

    with transaction.atomic(), connection.cursor() as cursor:
        for setup_statement, setup_params in setup:
            cursor.execute(setup_statement, setup_params)
        cursor.execute(prefixed("ANALYZE, BUFFERS"), params)
        text = [_LONG_ARRAY.sub(_array_abbreviate, row[0]) for row in cursor.fetchall()]
        cursor.execute(prefixed("ANALYZE, BUFFERS, FORMAT JSON"), params)
        plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        if rollback:
            transaction.set_rollback(True)
    inlined = psycopg.ClientCursor(connection.connection).mogrify(statement, params)
    return {
        "session_settings": [sql_text(setup_statement) for setup_statement, _ in setup],
        "sql_with_parameters": inlined,
        "plan": text,
        "execution_ms": plan[0].get("Execution Time"),
        "planning_ms": plan[0].get("Planning Time"),
        "jit_ms": (plan[0].get("JIT") or {}).get("Timing", {}).get("Total"),
        "costliest_nodes": _costliest_nodes(plan[0]["Plan"]),
    }


_LONG_ARRAY = re.compile(r"'\{(\d+)((?:,\d+){8,}),(\d+)\}'")


def _array_abbreviate(match: re.Match) -> str:
    count = match.group(2).count(",") + 2
    return f"'{{{match.group(1)},...,{match.group(3)} ({count} ids)}}'"


def _costliest_nodes(root: dict, limit: int = 4) -> list[dict]:
    """Plan nodes by exclusive time (their own total minus their children's), largest first.

    For nodes under a Gather, times are summed over the leader and the workers (CPU time, not wall time).
    """
    nodes = []

    def visit(node: dict) -> float:
        total = node.get("Actual Total Time", 0.0) * node.get("Actual Loops", 1)
        children = sum(visit(child) for child in node.get("Plans", []))
        nodes.append(
            {
                "node": node["Node Type"] + (f" on {node['Relation Name']}" if "Relation Name" in node else ""),
                "index": node.get("Index Name"),
                "exclusive_ms_summed_over_workers": round(max(total - children, 0.0), 2),
                "rows": node.get("Actual Rows", 0) * node.get("Actual Loops", 1),
                "shared_hit_blocks": node.get("Shared Hit Blocks"),
                "shared_read_blocks": node.get("Shared Read Blocks"),
                "temp_written_blocks": node.get("Temp Written Blocks"),
            }
        )
        return total

    visit(root)
    return sorted(nodes, key=lambda item: item["exclusive_ms_summed_over_workers"], reverse=True)[:limit]


def _explains(end: datetime, user, rollup_statement) -> dict:
    explains = {}
    for name, (body, _) in _cases(end, 0).items():
        _cache_clear()
        _, _, calls = _ours_once(body, end, user)
        statement, params, _ = calls[-1]
        setup = tuple(
            (call[0], call[1]) for call in calls[:-1] if sql_text(call[0]).lstrip().upper().startswith("SET ")
        )
        explains[name] = _explain(statement, params, setup=setup)
    if rollup_statement:
        statement, params = rollup_statement
        explains["rollup_refresh_1m_step"] = _explain(statement, params, rollback=True)
        explains["rollup_refresh_1m_step"]["note"] = (
            "the last 1-minute-tier step of rollup_refresh, re-run in a transaction that is rolled back"
        )
    return explains


def _where_the_time_goes(queries: dict, explains: dict) -> dict:
    slowest = max(queries, key=lambda name: queries[name]["ours"]["p95_ms"])
    entry, plan = queries[slowest], explains.get(slowest, {})
    split = entry["ours_median_split_ms"]
    nodes = plan.get("costliest_nodes", [])
    described = "; ".join(
        f"{node['node']} {node['exclusive_ms_summed_over_workers']} ms over {node['rows']:,} rows" for node in nodes[:3]
    )
    return {
        "query": slowest,
        "summary": (
            f"{slowest}: p50 {entry['ours']['p50_ms']} ms, p95 {entry['ours']['p95_ms']} ms. Median split: main SQL "
            f"{split['main_sql_ms']} ms, series selection {split['series_select_ms']} ms, other SQL "
            f"{split['other_sql_ms']} ms, Python (planning, merging, filling {entry['output_points']:,} output "
            f"points) {split['python_ms']} ms. EXPLAIN ANALYZE: {plan.get('execution_ms')} ms, of which JIT "
            f"{plan.get('jit_ms')} ms; costliest nodes (CPU summed over parallel workers): {described}."
        ),
        "costliest_nodes": nodes,
    }


# --- the body (child process) --------------------------------------------------------------------------------
def _code_fingerprint() -> dict[str, str]:
    """SHA-256 (first 12 hex) of the storage code measured; others may edit it while a long run goes on."""
    root = REPO_ROOT / "apps" / "storage"
    return {
        str(path.relative_to(REPO_ROOT)): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in sorted(root.rglob("*.py"))
        if "migrations" not in path.parts
    }


def _body(*, quick: bool) -> dict:
    from django.db import connection

    import apps.storage.backends.postgres
    import apps.storage.backends.timescaledb
    import apps.storage.query.engine  # noqa: F401 - load all the code measured now, not halfway through
    from apps.storage.backends import backend_for
    from bench.storage_policies import policies_cost

    backend = backend_for()

    fingerprint = _code_fingerprint()

    default_seconds = SMOKE_SECONDS if smoke() else QUICK_SECONDS if quick else FULL_SECONDS
    seconds = int(os.environ.get("BENCH_STORAGE_SECONDS") or default_seconds)
    rounds, warmup, influx_budget = (2, 1, 2.0) if smoke() else (10, 3, 10.0) if quick else (40, 5, 90.0)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(seconds=seconds)
    result: dict = {
        "scale": {
            "series": SERIES,
            "facilities": FACILITIES,
            "interval_seconds": 1,
            "seconds": seconds,
            "points": seconds * SERIES,
            "data_start": start.isoformat(),
            "data_end": end.isoformat(),
            "span_hours": round(seconds / 3600, 2),
            "quick": quick,
            "note": f"'now' for every query is the end of the data ({end.isoformat()}). The data spans "
            f"{seconds / 3600:.1f} hours, so 'last 30 days' covers all of it and 'last 24 hours' the newest 24 h.",
        },
        "storage_backend": backend.name,
        "database": database_versions(os.environ["DATABASE_URL"]),
        "environment": {"postgres": postgres_settings(), "memory_gib": _memory_gib()},
    }
    ids, user = _series_setup()
    from apps.storage.tiers import bucket_floor

    if backend.name == "postgres":  # the watermark at the start of the data (TimescaleDB refreshes any window)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [bucket_floor(start, 60)]
            )

    _log(f"loading {seconds * SERIES:,} points into PostgreSQL ({backend.name} backend)")
    load = {"ours": _load_ours(ids, start, seconds)}
    _log(f"ours: {load['ours']['rows_per_second_write_path']:,} rows/s; refreshing rollups")
    refresh, rollup_statement = rollup_refresh_timed(end)
    refresh["raw_points_per_second"] = round(seconds * SERIES / refresh["seconds"])
    result["rollup_refresh"] = refresh
    _log(f"rollup refresh {refresh['seconds']} s; VACUUM ANALYZE")
    result["maintenance"] = maintenance()
    result.update(sizes_and_counts())

    influx = None
    if os.environ.get("BENCH_STORAGE_SKIP_INFLUX") == "1":
        result["influx"] = {"skipped": "BENCH_STORAGE_SKIP_INFLUX=1"}
    else:
        try:
            influx = Influx()
        except InfluxUnavailable as error:
            result["influx"] = {"unavailable": str(error)}
    try:
        if influx:
            result["influx"] = {"version": influx.version, "config": influx.config}
            _log(f"loading the same points into {influx.version}")
            load["influx"] = _load_influx(influx, int(start.timestamp()), seconds)
            settle = influx.settle(max_seconds=5 if smoke() else 30 if quick else 600)
            result["influx"].update({"settle_seconds_after_load": round(settle, 1), "rss_bytes": influx.rss_bytes()})
            result["influx"]["disk_bytes"] = influx.data_bytes()
            load["ratio_ours_to_influx"] = {
                "write_path": round(
                    load["ours"]["rows_per_second_write_path"] / load["influx"]["points_per_second"], 3
                ),
                "end_to_end": round(
                    load["ours"]["rows_per_second_end_to_end"] / load["influx"]["points_per_second"], 3
                ),
            }
        result["load"] = load
        _log("timing queries")
        queries = _queries(end, user, influx, rounds=rounds, warmup=warmup, influx_budget=influx_budget)
    finally:
        if influx:
            influx.stop()
    result["queries"] = queries
    result["target"] = {
        "p95_under_ms": TARGET_P95_MS,
        "pass_cold": {name: entry["target_pass"] for name, entry in queries.items()},
        "pass_warm_refresh": {name: entry["target_pass_warm_refresh"] for name, entry in queries.items()},
        "all_pass_cold": all(entry["target_pass"] for entry in queries.values()),
        "all_pass_warm_refresh": all(entry["target_pass_warm_refresh"] for entry in queries.values()),
        "note": "cold: the query cache (if the engine has one) emptied first, i.e. a dashboard's first load; "
        f"warm refresh: the same query {DASHBOARD_REFRESH_SECONDS} s later, as an auto-refreshing dashboard asks",
    }
    _log("data policies: the dashboard queries through 1, 10 and 100 policies")
    result["policies"] = policies_cost(end, _devices(), rounds=rounds)
    _log("EXPLAIN ANALYZE")
    result["explain"] = _explains(end, user, rollup_statement)
    result["where_the_time_goes"] = _where_the_time_goes(queries, result["explain"])
    _log("live tick: one more minute of points, then one refresh as the beat task runs it")
    result["rollup_refresh"]["live_tick"], tick_statement = _live_tick(ids, end)
    if tick_statement:
        result["explain"]["rollup_refresh_live_tick_1m"] = _explain(*tick_statement, rollback=True)
    size = "smoke" if smoke() else "quick" if quick else "full"
    backfill_points = int(os.environ.get("BENCH_STORAGE_BACKFILL_POINTS") or BACKFILL_POINTS[size])
    _log(f"backfill: {backfill_points:,} points over {BACKFILL_DAYS} days, queries and refreshes meanwhile")
    result["backfill"] = _backfill_drain(ids, end + timedelta(minutes=2), user, points=backfill_points)
    if backend.name == "timescaledb":
        _log("compression: the job over the backfilled chunks (older than STORAGE_COMPRESS_AFTER_DAYS)")
        result["compression"] = compression_timescaledb(backend)
    changed = sorted(path for path, digest in _code_fingerprint().items() if fingerprint.get(path) != digest)
    result["code"] = {
        "sha256_12_at_start": fingerprint,
        "changed_during_run": changed,
        "note": "the code loaded at the start was measured; files listed as changed were edited while it ran",
    }
    return result


def _live_tick(ids: list[int], end: datetime) -> tuple[dict, tuple | None]:
    """Write the minute after the end (as live ingest would) and time one refresh of the full-size partition.

    Runs after the queries and their EXPLAINs, which it would otherwise change (it moves the watermark).
    """
    from django.db import connection

    from apps.storage.services import points_write

    for offset in range(0, 60, BATCH_SECONDS):
        moments = [end + timedelta(seconds=second) for second in range(offset, offset + BATCH_SECONDS)]
        points_write(points=[(series_id, moment, 20.0) for moment in moments for series_id in ids])
    tick, statement = rollup_refresh_timed(end + timedelta(seconds=120))
    from apps.storage.backends import backend_for

    if backend_for().name != "postgres":
        tick["note"] = "After the load: 60,000 more points (the minute after the end), then one rollup_refresh."
        return tick, statement
    touched = sorted(
        {f"points_p{moment:%Y%m%d}" for moment in (end - timedelta(minutes=2), end + timedelta(minutes=1))}
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples::bigint, pg_relation_size(c.oid) FROM pg_class c WHERE c.relname = ANY(%s)",
            [touched],
        )
        tick["partitions_touched"] = [
            {"name": name, "rows_estimate": rows, "heap_bytes": heap} for name, rows, heap in cursor.fetchall()
        ]
    tick["note"] = (
        "After the load: 60,000 more points (the minute after the end), then rollup_refresh(now=end+2 min) "
        "as the every-10-s beat task would run it: it aggregates ~2 minutes of points; how much of the day's "
        "partition it reads depends on the time index (see explain.rollup_refresh_live_tick_1m)."
    )
    return tick, statement


def _mix_round(end: datetime, user, repetition: int, latencies: dict[str, list[float]], splits: list[dict]) -> None:
    """One round of the dashboard query mix, cold (cache emptied), each query's time and where it went."""
    for name, (body, _) in _cases(end, repetition).items():
        _cache_clear()
        ms, result, calls = _ours_once(body, end, user)
        latencies[name].append(ms)
        split = _statement_split(ms, calls)
        split["ms"] = ms
        split["delta_tables_read"] = (getattr(result, "sql", "") or "").count("_delta")
        splits.append(split)


def _mix_for(end: datetime, user, *, seconds: float, first_repetition: int = 0) -> dict:
    """The query mix back to back for `seconds` (at least 3 rounds): the same-run reference without a drain."""
    latencies: dict[str, list[float]] = {name: [] for name in _cases(end, 0)}
    splits: list[dict] = []
    started, repetition = time.perf_counter(), first_repetition
    while repetition - first_repetition < 3 or time.perf_counter() - started < seconds:
        _mix_round(end, user, repetition, latencies, splits)
        repetition += 1
    return _mix_report(latencies, splits)


def _mix_report(latencies: dict[str, list[float]], splits: list[dict]) -> dict:
    """Per query and over the whole mix: latency summary; for the slow ones (over the target) where the time went."""
    every = [value for values in latencies.values() for value in values]
    slow = [split for split in splits if split["ms"] >= TARGET_P95_MS]
    report = {
        "all": _summary(every),
        "per_query": {name: _summary(values) for name, values in latencies.items() if values},
        "target_pass": _summary(every)["p95_ms"] < TARGET_P95_MS,
        "median_split_ms": _split_medians(splits),
        "reading_deltas": sum(1 for split in splits if split["delta_tables_read"]),
        "slow": len(slow),
    }
    if slow:
        report["slow_median_split_ms"] = _split_medians(slow)
        report["slow_reading_deltas"] = sum(1 for split in slow if split["delta_tables_read"])
    return report


def _split_medians(splits: list[dict]) -> dict:
    keys = ("ms", "main_sql_ms", "series_select_ms", "other_sql_ms", "python_ms")
    return {key: round(statistics.median(split[key] for split in splits), 1) for key in keys}


def _backfill_drain(ids: list[int], end: datetime, user, *, points: int) -> dict:
    """Write `points` late points spread over the 30 days before `end` (half a second off the 1 Hz data, so each is
    new: the delta path) in one process, run the refresh as the beat task does (a run every 10 s, each folding
    deltas for at most STORAGE_DELTAS_DRAIN_SECONDS) in another, a live source (1,000 points a second, each write
    timed) in a third, and the dashboard queries (cold, cache emptied) in this one, from the first write until the
    backlog is drained. Separate processes, as in a deployment (ingest, worker, web), so none waits for another's
    Python.

    The same query mix runs alone before (on the data as loaded) and after (on the same data as during the drain,
    now folded) for REFERENCE_SECONDS each: the same-run reference on a machine others may share.
    """
    reference_seconds = 0 if smoke() else REFERENCE_SECONDS  # a smoke run: the minimum, 3 rounds
    reference_before = _mix_for(end, user, seconds=reference_seconds)
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as directory:
        folder = Path(directory)
        arguments = {"ids": ids, "end": end.isoformat(), "points": points, "folder": directory}
        children = {
            role: subprocess.Popen(
                [sys.executable, "-m", "bench.storage", "--backfill-part", role, "--arguments", json.dumps(arguments)],
                cwd=REPO_ROOT,
            )
            for role in ("writer", "refresher", "live")
        }
        latencies: dict[str, list[float]] = {name: [] for name in _cases(end, 0)}
        splits: list[dict] = []
        # The same queries split at the last write: while the backfill is written, and while only the drain runs.
        while_writing: tuple[dict, list] | None = None
        started = time.perf_counter()
        written_at = None
        repetition = 0
        while children["refresher"].poll() is None:
            _mix_round(end, user, repetition, latencies, splits)
            repetition += 1
            if written_at is None and (folder / "writer.json").exists():
                written_at = time.perf_counter()
                while_writing = ({name: list(values) for name, values in latencies.items()}, list(splits))
        finished = time.perf_counter()
        for role, child in children.items():
            if child.wait(timeout=600) != 0:
                raise RuntimeError(f"the backfill {role} failed (exit {child.returncode})")
        report = {"points": points, "days": BACKFILL_DAYS, "series": SERIES, "batch_points": BATCH_SECONDS * SERIES}
        report.update(json.loads((folder / "writer.json").read_text()))
        report["live_write_ms"] = json.loads((folder / "live.json").read_text())
        refreshes = json.loads((folder / "refresher.json").read_text())
    reference_after = _mix_for(end, user, seconds=reference_seconds, first_repetition=repetition)
    meanwhile = _mix_report(latencies, splits)
    draining_only = None
    if while_writing is not None:
        written_latencies, written_splits = while_writing
        rest = {name: values[len(written_latencies[name]) :] for name, values in latencies.items()}
        if any(rest.values()):
            draining_only = _mix_report(rest, splits[len(written_splits) :])
    report.update({
        "drain_seconds_after_last_write": round(finished - (written_at or finished), 1),
        "seconds_from_first_write_to_drained": round(finished - started, 1),
        "refresh_runs": len(refreshes),
        "refresh_run": _summary([run["ms"] for run in refreshes]),
        "delta_rows_folded": sum(run["folded"] for run in refreshes),
        "backlog_peak_delta_rows_sampled": max((run["backlog"] for run in refreshes), default=0),
        "queries_meanwhile": meanwhile["per_query"],
        "queries_meanwhile_all": meanwhile["all"],
        "queries_meanwhile_detail": meanwhile,
        "queries_after_last_write_while_draining": draining_only,
        "queries_reference_before_backfill": reference_before,
        "queries_reference_after_drain": reference_after,
        "target_p95_ms": TARGET_P95_MS,
        "target_pass": meanwhile["target_pass"],
        "note": "four processes: the backfill writer (points_write, batches of 10,000, each timed as batch_ms; "
        "every 25th batch is written twice, a redelivery whose points all replace themselves, timed as "
        "redelivery_ms), the refresh every 10 s as the beat task runs it (folding for at most "
        "STORAGE_DELTAS_DRAIN_SECONDS a run after moving the watermark), a live source writing 1,000 points a "
        "second stamped after the backfilled range (each write timed as live_write_ms), "
        "and cold dashboard queries back to back (cache emptied), from the first write until every delta is folded. "
        f"References: the same mix alone for {REFERENCE_SECONDS} s before the backfill (the data as loaded) and "
        "after the drain (the same data as during it, folded).",
    })  # fmt: skip
    return report


def _backfill_part(role: str, arguments: dict) -> None:
    """One process of the backfill phase: the writer, or the refresher (which stops once the writer is done and
    every delta is folded). Each writes its figures to <folder>/<role>.json."""
    from apps.storage.backends import backend_for
    from apps.storage.services import points_write

    folder = Path(arguments["folder"])
    end = datetime.fromisoformat(arguments["end"])
    ids, points = arguments["ids"], arguments["points"]
    if role == "writer":
        span = BACKFILL_DAYS * 86_400
        step = span / (points / SERIES)  # seconds between one series' backfilled points
        first = end - timedelta(seconds=span)
        started, batch, count, batches = time.perf_counter(), [], 0, 0
        redelivery_ms: list[float] = []
        batch_ms: list[float] = []  # the first writes of batches (a drain step holds them up)
        for index in range(points // SERIES):
            moment = first + timedelta(seconds=math.floor(index * step) + 0.5)
            batch.extend((series_id, moment, 15.0 + (series_id % 7)) for series_id in ids)
            if len(batch) >= BATCH_SECONDS * SERIES:
                written = time.perf_counter()
                count += points_write(points=batch).late_buckets
                batch_ms.append((time.perf_counter() - written) * 1000)
                batches += 1
                if batches % (1 if smoke() else REDELIVER_EVERY) == 0:  # a smoke run: each of its 2 batches
                    # A consumer that lost its commit sends the batch again: every point replaced, re-aggregated.
                    again = time.perf_counter()
                    points_write(points=batch)
                    redelivery_ms.append((time.perf_counter() - again) * 1000)
                batch = []
        if batch:
            count += points_write(points=batch).late_buckets
        seconds = time.perf_counter() - started
        figures = {"write_seconds": round(seconds, 1), "write_points_per_second": round(points / seconds),
                   "delta_rows_written": count, "batch_ms": _summary(batch_ms) if batch_ms else None,
                   "redeliveries": len(redelivery_ms),
                   "redelivery_ms": _summary(redelivery_ms) if redelivery_ms else None}  # fmt: skip
        (folder / "writer.json").write_text(json.dumps(figures))
        return
    if role == "live":
        # A live source beside the backfill: 1,000 points stamped after the backfilled range every second, each
        # write timed (a drain step or a redelivery that holds them up shows here), until the refresher is done.
        live_ms: list[float] = []
        second = 0
        while not (folder / "refresher.json").exists():
            started = time.perf_counter()
            second += 1
            points_write(points=[(series_id, end + timedelta(seconds=second), 20.0) for series_id in ids])
            live_ms.append((time.perf_counter() - started) * 1000)
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - started)))
        (folder / "live.json").write_text(json.dumps(_summary(live_ms) if live_ms else None))
        return
    from apps.storage.selectors import rollup_backlog

    runs: list[dict] = []
    while True:
        # The backlog as /metrics reports it, once a run (as a scrape would): here, not between the timed queries.
        backlog = sum(count for count, _ in rollup_backlog().values())
        started = time.perf_counter()
        backend = backend_for()
        info = backend.rollup_refresh(now=end)
        # TimescaleDB has no deltas: its refresh applies the invalidation log, and one run after the last write
        # finds it empty.
        runs.append({"ms": (time.perf_counter() - started) * 1000, "folded": info.get("deltas_folded", 0),
                     "backlog": backlog, "at": round(time.time(), 1)})  # fmt: skip
        if (folder / "writer.json").exists() and not info.get("deltas_left", False):
            if not backend.deltas:
                break
            with backend.connection.cursor() as cursor:
                if not backend.deltas_pending(cursor):
                    break
        time.sleep(max(0.0, REFRESH_EVERY_SECONDS - (time.perf_counter() - started)))
    (folder / "refresher.json").write_text(json.dumps(runs))


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _worker_main() -> int:
    parser = argparse.ArgumentParser(description="The storage benchmark's body (run by bench.storage.run).")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--output")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--backfill-part", choices=["writer", "refresher", "live"], help="One process of the backfill phase."
    )
    parser.add_argument("--arguments", help="The backfill phase's arguments, as JSON.")
    arguments = parser.parse_args()
    import django

    django.setup()
    if arguments.backfill_part:
        _backfill_part(arguments.backfill_part, json.loads(arguments.arguments))
        return 0
    if not (arguments.worker and arguments.output):
        parser.error("--worker and --output, or --backfill-part")
    from analytics_platform.runtime import startup_objects_freeze

    startup_objects_freeze()  # as the web server does at start-up (analytics_platform/asgi.py)
    result = _body(quick=arguments.quick)
    Path(arguments.output).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main())
