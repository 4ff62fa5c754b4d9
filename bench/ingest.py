"""Ingest throughput: line protocol (/api/v2/write) and JSON (/api/v1/sources/<slug>/ingest) vs InfluxDB 1.x.

Same run, same machine, same bodies: 1,000 series (device x facility, like the factory), one field per line,
batches of 5,000 points, several concurrent keep-alive clients. Our endpoints answer only after PostgreSQL's
commit (synchronous_commit on); InfluxDB 1.x answers after its WAL write. Bodies are built before the clock
starts, so the client measures the servers, not itself.

The server is the production setup: `manage.py serve` with prod settings, which runs one daphne process per core
on one listening socket (`BENCH_INGEST_WEB_PROCESSES` sets another count), each taking a new connection only while
it holds no more than the others (analytics_platform/web_child.py); the result lists each process's CPU seconds,
which shows how the clients' keep-alive connections were split.

A stage profile runs the same batches in-process through each step of the write path (parse, validate, series
ids, COPY + commit) to say where the time goes.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import smoke
from bench.django_server import (
    REPO_ROOT,
    database_backend_pids,
    database_drop,
    database_versions,
    manage,
    postgres_backend_cpu_seconds,
    prod_environment,
)
from bench.influx import Influx, InfluxUnavailable, process_cpu_seconds

BENCH_DATABASE = "analytics_bench_ingest"
BATCH_POINTS = 5_000
WARMUP_BATCHES = 8
SERIES = 1_000
FACILITIES = 5
# Live data: points start at the whole minute the module is loaded, so they land after the rollup watermark like
# a live feed does (older points would take the late-data path, which re-aggregates their buckets at once).
START_EPOCH = int(time.time()) // 60 * 60
# Backfill: the same line-protocol bodies stamped this far back (issue 15's ages), against live ones, each sent to
# both servers in the same round.
BACKFILL_AGES = {"1h": 3_600, "1d": 86_400, "30d": 30 * 86_400, "300d": 300 * 86_400}
BACKFILL_LIVE_SECOND = 10_000  # live bodies of the backfill phase start here (after every other phase's)


def _log(message: str) -> None:
    print(f"[bench ingest] {message}", file=sys.stderr, flush=True)


def _prepare(environment: dict[str, str]) -> str:
    """A fresh database with one inferred source; returns its write key."""
    database_drop(environment["DATABASE_URL"])
    manage(environment, "check_services", "--create-database")
    manage(environment, "migrate", "--noinput")
    script = (
        "from apps.access.models import Organization; from apps.sources.services import source_create; "
        "o, _ = Organization.objects.get_or_create(slug='bench', defaults={'name': 'Bench'}); "
        # Raw points kept 400 days: the backfill phase sends points 300 days old (ingest refuses points older than a
        # source's raw retention, 7 days by default on plain PostgreSQL).
        "s, key = source_create(organization=o, name='Bench', slug='bench', raw_retention_days=400); print(key)"
    )
    return manage(environment, "shell", "-c", script).strip().splitlines()[-1]


def _series_tags() -> list[str]:
    return [f"device=d{index:04d},facility=f{index % FACILITIES + 1}" for index in range(SERIES)]


def _line_bodies(batches: int, *, first_second: int) -> list[bytes]:
    """Line protocol, 5,000 points a batch: 5 seconds of 1,000 series, one float field each."""
    tags = _series_tags()
    seconds_per_batch = BATCH_POINTS // SERIES
    bodies = []
    for batch in range(batches):
        lines = []
        for offset in range(seconds_per_batch):
            second = START_EPOCH + first_second + batch * seconds_per_batch + offset
            stamp = second * 1_000_000_000
            for index, tag in enumerate(tags):
                value = 20.0 + (index % 17) * 0.5 + (second % 60) * 0.01
                lines.append(f"factory,{tag} temperature={value} {stamp}")
        bodies.append(("\n".join(lines) + "\n").encode())
    return bodies


def _json_bodies(batches: int, *, first_second: int) -> list[bytes]:
    """The same kind of points as JSON records (epoch-second times), 5,000 a batch."""
    seconds_per_batch = BATCH_POINTS // SERIES
    bodies = []
    for batch in range(batches):
        records = []
        for offset in range(seconds_per_batch):
            second = START_EPOCH + first_second + batch * seconds_per_batch + offset
            for index in range(SERIES):
                records.append(
                    {"time": second, "device": f"d{index:04d}", "facility": f"f{index % FACILITIES + 1}",
                     "temperature": 20.0 + (index % 17) * 0.5 + (second % 60) * 0.01}
                )  # fmt: skip
        bodies.append(json.dumps(records, separators=(",", ":")).encode())
    return bodies


def _send_all(
    *, ports: list[int], path: str, headers: dict[str, str], bodies: list[bytes], clients: int, expect: int
) -> dict:
    """Send bodies from `clients` threads (each its own keep-alive connection); points/s and latency."""
    next_body = iter(range(len(bodies)))
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", ports[number % len(ports)], timeout=300)
        while True:
            with lock:
                index = next(next_body, None)
            if index is None:
                break
            started = time.perf_counter()
            connection.request("POST", path, body=bodies[index], headers=headers)
            response = connection.getresponse()
            text = response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed * 1000)
                if response.status != expect:
                    failures.append(f"{response.status}: {text[:300]!r}")
        connection.close()

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]}")
    points = len(bodies) * BATCH_POINTS
    return {"points": points, "seconds": seconds, "points_per_second": round(points / seconds), "latencies": latencies}


def _rounds_summary(rounds: list[dict]) -> dict:
    """One endpoint's rounds: overall points/s, each round's, batch latency over all, CPU seconds summed."""
    points = sum(item["points"] for item in rounds)
    seconds = sum(item["seconds"] for item in rounds)
    ordered = sorted(latency for item in rounds for latency in item["latencies"])
    summary = {
        "points": points,
        "seconds": round(seconds, 2),
        "points_per_second": round(points / seconds),
        "points_per_second_per_round": [item["points_per_second"] for item in rounds],
        "batch_latency_ms": {
            "median": round(statistics.median(ordered), 1),
            "p95": round(ordered[int(len(ordered) * 0.95) - 1], 1),
        },
    }
    for name in ("web_cpu_seconds", "postgres_cpu_seconds", "influxd_cpu_seconds"):
        if name in rounds[0]:
            summary[name] = round(sum(item[name] for item in rounds), 1)
    if "web_cpu_seconds_per_process" in rounds[0]:
        summary["web_cpu_seconds_per_process"] = [
            round(sum(values), 1)
            for values in zip(*(item["web_cpu_seconds_per_process"] for item in rounds), strict=True)
        ]
    return summary


def _start_web(environment: dict[str, str], count: int | None) -> tuple[subprocess.Popen, int, list[int]]:
    """`manage.py serve` on a free port; (the launcher, the port, its daphne children's pids) once it answers."""
    with socket.socket() as sock:
        # BENCH_WEB_PORT pins the port (machines where each user has a range of ports), else any free one.
        # SO_REUSEADDR: a pinned port still has the previous server's connections in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(os.environ.get("BENCH_WEB_PORT", "0"))))
        port = sock.getsockname()[1]
    processes = [] if count is None else ["--processes", str(count)]
    launcher = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", "127.0.0.1", "--port", str(port), *processes],
        cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 204:
                break
        except OSError:
            pass
        if launcher.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("manage.py serve did not start")
        time.sleep(0.2)
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    time.sleep(3)  # every child has imported the app and adopted the socket (the first answered already)
    return launcher, port, [int(pid) for pid in children]


def _database_cpu_seconds(url: str) -> float:
    """CPU seconds of every PostgreSQL backend connected to the bench database (for the split of work); 0 for a
    server on another machine, whose processes are not here to read."""
    return sum(postgres_backend_cpu_seconds(pid) for pid in database_backend_pids(url))


def _backfill(
    *,
    port: int,
    influx_port: int,
    line: tuple[str, dict[str, str]],
    clients: int,
    rounds: int,
    per_round: int,
    cpu: tuple[list[int], str],
) -> dict:
    """Line protocol stamped live and 1 hour, 1 day, 30 days and 300 days back, each body sent to us and then to
    InfluxDB in the same round; per age, the median of the rounds' ratios. InfluxDB takes old points as fast as new.
    """
    seconds_per_round = per_round * (BATCH_POINTS // SERIES)
    web_pids, database_url = cpu
    ages = {"live": None, **BACKFILL_AGES}
    measured: dict[str, dict[str, list[dict]]] = {name: {"ours": [], "influxdb": []} for name in ages}
    for number in range(rounds):
        for name, age in ages.items():
            first = (BACKFILL_LIVE_SECOND if age is None else -age) + number * seconds_per_round
            bodies = _line_bodies(per_round, first_second=first)  # built before the clock starts
            web_cpu = sum(process_cpu_seconds(pid) for pid in web_pids)
            database_cpu = _database_cpu_seconds(database_url)
            item = _send_all(ports=[port], path=line[0], headers=line[1], bodies=bodies, clients=clients, expect=204)
            item["web_cpu_seconds"] = sum(process_cpu_seconds(pid) for pid in web_pids) - web_cpu
            item["postgres_cpu_seconds"] = _database_cpu_seconds(database_url) - database_cpu
            measured[name]["ours"].append(item)
            influx_item = _send_all(
                ports=[influx_port],
                path="/write?db=bench&precision=ns",
                headers={},
                bodies=bodies,
                clients=clients,
                expect=204,
            )
            measured[name]["influxdb"].append(influx_item)
        _log(f"backfill round {number + 1}/{rounds}: " + ", ".join(
            f"{name} {items['ours'][-1]['points_per_second']:,} vs {items['influxdb'][-1]['points_per_second']:,}"
            for name, items in measured.items()
        ))  # fmt: skip
    summary: dict = {}
    for name, items in measured.items():
        ratios = [
            ours["points_per_second"] / theirs["points_per_second"]
            for ours, theirs in zip(items["ours"], items["influxdb"], strict=True)
        ]
        # Ours against our own live rate in the same round: what a late point costs beyond a live one.
        to_live = [
            ours["points_per_second"] / live["points_per_second"]
            for ours, live in zip(items["ours"], measured["live"]["ours"], strict=True)
        ]
        ours_summary = _rounds_summary(items["ours"])
        summary[name] = {
            "age_seconds": ages[name] or 0,
            "ours_points_per_second": ours_summary["points_per_second"],
            "ours_batch_latency_ms": ours_summary["batch_latency_ms"],
            # CPU milliseconds per 5,000-point batch: where our time goes at each age.
            "ours_web_cpu_ms_per_batch": round(
                ours_summary["web_cpu_seconds"] * 1000 * BATCH_POINTS / ours_summary["points"], 1
            ),
            "ours_postgres_cpu_ms_per_batch": round(
                ours_summary["postgres_cpu_seconds"] * 1000 * BATCH_POINTS / ours_summary["points"], 1
            ),
            "influxdb_points_per_second": _rounds_summary(items["influxdb"])["points_per_second"],
            "ratio_to_influxdb": round(statistics.median(ratios), 3),
            "ratio_to_influxdb_per_round": [round(ratio, 3) for ratio in ratios],
            "ratio_to_our_live": round(statistics.median(to_live), 3),
            "ratio_to_our_live_per_round": [round(ratio, 3) for ratio in to_live],
        }
    summary["bar"] = "every backfill ratio at least 0.5 of InfluxDB's rate (target: 1.0)"
    summary["meets_bar"] = all(summary[name]["ratio_to_influxdb"] >= 0.5 for name in BACKFILL_AGES)
    return summary


def _stage_profile(environment: dict[str, str], key: str) -> dict:
    """Run batches through each stage in a child process with prod settings; seconds per 5,000 points each."""
    script = r"""
import json, time
import django
django.setup()
from django.db import transaction
from apps.ingestion.parsers.line_protocol import line_protocol_parse
from apps.ingestion.parsers.json_records import json_records_parse
from apps.ingestion.services import ingest_target_get, _series_ids
from apps.sources.models import Source
from apps.storage.services import points_write
from django.utils import timezone
from bench.ingest import _line_bodies, _json_bodies
source = Source.objects.get(slug="bench")
target = ingest_target_get(source_id=source.id)
result = {}
def stages_summary(stages):
    medians = {stage: sorted(values)[len(values) // 2] for stage, values in stages.items()}
    total = sum(medians.values())
    summary = {stage: {"ms_per_batch": round(seconds * 1000, 1), "share": round(seconds / total, 3)}
               for stage, seconds in medians.items()}
    summary["points_per_second_one_core"] = round(5000 / total)
    return summary
for name, bodies, parse in (("line_careful_path", _line_bodies(8, first_second=4_000), line_protocol_parse),
                            ("json", _json_bodies(8, first_second=4_100), json_records_parse)):
    stages = {"parse": [], "validate": [], "series_ids": [], "copy_commit": []}
    for body in bodies:
        t0 = time.perf_counter(); parsed = parse(body)
        t1 = time.perf_counter(); validated = target.validator.validate(parsed.records, received_at=timezone.now())
        t2 = time.perf_counter()
        with transaction.atomic():
            ids, _, _ = _series_ids(target, validated.points)
            rows = [(ids[k], m, v) for k, m, v, _ in validated.points]
            t3 = time.perf_counter()
            points_write(points=rows, schema_id=target.schema_id)
        t4 = time.perf_counter()
        for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[stage].append(seconds)
    result[name] = stages_summary(stages)
# The line-protocol endpoint's real path: known series go through the fast path (cache learned by a first batch).
from apps.ingestion.services import batch_ingest_line_protocol, ingest_targets_forget
from apps.ingestion.line_protocol_fast import line_protocol_rows
ingest_targets_forget()
warm = _line_bodies(1, first_second=4_200)[0]
batch_ingest_line_protocol(source_id=source.id, body=warm, precision="ns", transport="influx_v2")
target = ingest_target_get(source_id=source.id)
stages = {"decode": [], "fast_path": [], "copy_commit": []}
for body in _line_bodies(8, first_second=4_300):
    t0 = time.perf_counter(); text = body.decode()
    t1 = time.perf_counter()
    fast = line_protocol_rows(text=text, precision="ns", cache=target.line_cache, validator=target.validator,
                              received_at=timezone.now())
    assert not fast.careful, fast.careful[:2]
    t2 = time.perf_counter()
    with transaction.atomic():
        points_write(points=fast.rows, schema_id=target.schema_id)
    t3 = time.perf_counter()
    for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
        stages[stage].append(seconds)
result["line_fast_path"] = stages_summary(stages)
# What the endpoint does with a plain body of known series: Arrow columns, sorted by series, COPYed column-wise.
from apps.ingestion.line_protocol_columnar import line_protocol_columns
stages = {"columns": [], "copy_commit": []}
for body in _line_bodies(8, first_second=4_400):
    t0 = time.perf_counter()
    columns = line_protocol_columns(body=body, precision="ns", cache=target.line_cache, validator=target.validator,
                                    received_at=timezone.now())
    assert columns is not None
    t1 = time.perf_counter()
    with transaction.atomic():
        points_write(points=columns, schema_id=target.schema_id)
    t2 = time.perf_counter()
    for stage, seconds in zip(stages, (t1 - t0, t2 - t1)):
        stages[stage].append(seconds)
result["line_columnar_path"] = stages_summary(stages)
# Where PostgreSQL's share goes: the same 5,000 rows COPYed (binary, one transaction each, synchronous commit)
# into a logged heap without indexes, the same with the (series_id, time) primary key, that and the BRIN index on
# time that points has (PostgreSQL 15 reads its metapage and revmap again for every row), and into points.
from datetime import timedelta
from django.db import connection
from apps.storage.columns import EPOCH
with connection.cursor() as cursor:
    for table, key in (("bench_copy_heap", ""), ("bench_copy_pk", ", PRIMARY KEY (series_id, time)"),
                       ("bench_copy_pk_brin", ", PRIMARY KEY (series_id, time)")):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TABLE {table} (time timestamptz NOT NULL, series_id integer NOT NULL, "
                       f"schema_id integer, value double precision NOT NULL{key})")
    cursor.execute("CREATE INDEX ON bench_copy_pk_brin USING brin (time) "
                   "WITH (pages_per_range = 32, autosummarize = on)")
import pyarrow as pa
from apps.storage.columns import PointColumns
copy = {"heap_no_index": [], "heap_primary_key": [], "heap_primary_key_brin": [], "points_write": [],
        "points_write_columns_sorted": []}
rows = fast.rows
for repetition in range(8):
    shifted = [(series_id, moment + timedelta(hours=2 + repetition), value) for series_id, moment, value in rows]
    for name, table in (("heap_no_index", "bench_copy_heap"), ("heap_primary_key", "bench_copy_pk"),
                        ("heap_primary_key_brin", "bench_copy_pk_brin")):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            with cursor.copy(f"COPY {table} (series_id, time, value, schema_id) FROM STDIN (FORMAT BINARY)") as out:
                out.set_types(["int4", "timestamptz", "float8", "int4"])
                for series_id, moment, value in shifted:
                    out.write_row((series_id, moment, value, target.schema_id))
        copy[name].append(time.perf_counter() - started)
    started = time.perf_counter()
    points_write(points=shifted, schema_id=target.schema_id)
    copy["points_write"].append(time.perf_counter() - started)
    later = [(series_id, moment + timedelta(minutes=30), value) for series_id, moment, value in shifted]
    columns = PointColumns.build(
        pa.array([row[0] for row in later], pa.int32()),
        pa.array([(row[1] - EPOCH) // timedelta(microseconds=1) for row in later], pa.int64()),
        pa.array([row[2] for row in later], pa.float64()),
    )
    started = time.perf_counter()
    points_write(points=columns, schema_id=target.schema_id)
    copy["points_write_columns_sorted"].append(time.perf_counter() - started)
with connection.cursor() as cursor:
    cursor.execute("DROP TABLE bench_copy_heap, bench_copy_pk, bench_copy_pk_brin")
result["postgres_copy_ms_per_batch"] = {name: round(sorted(values)[len(values) // 2] * 1000, 1)
                                        for name, values in copy.items()}
result["postgres_copy_ms_per_batch"]["note"] = (
    "5,000 rows per transaction; heap_primary_key minus heap_no_index is the cost of the primary key that makes "
    "writes idempotent, heap_primary_key_brin adds the BRIN index on time; points_write adds partition routing "
    "and the watermark lock; "
    "points_write_columns_sorted is the same with the rows sorted by (series, time), as the columnar path sends them")
# A probe of a layout with fewer index entries, not what points uses: each batch appended as one row of arrays
# (a segment), and every 60 batches the segments folded into one row per series (a block), as InfluxDB's WAL and
# TSM files or TimescaleDB's compressed chunks hold points. PostgreSQL backend CPU per 5,000 points, beside the
# same rows COPYed one row per point into a table with the (series_id, time) primary key, in one loop.
import os
def backend_cpu(cursor):
    cursor.execute("SELECT pg_backend_pid()")
    fields = open(f"/proc/{cursor.fetchone()[0]}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
with connection.cursor() as cursor:
    cursor.execute("DROP TABLE IF EXISTS bench_probe_rows, bench_probe_segments, bench_probe_blocks")
    cursor.execute("CREATE TABLE bench_probe_rows (time timestamptz NOT NULL, series_id integer NOT NULL, "
                   "value double precision NOT NULL, PRIMARY KEY (series_id, time))")
    cursor.execute("CREATE TABLE bench_probe_segments (id bigserial PRIMARY KEY, series integer[] NOT NULL, "
                   "times bigint[] NOT NULL, vals double precision[] NOT NULL)")
    cursor.execute("CREATE TABLE bench_probe_blocks (series_id integer NOT NULL, first_time bigint NOT NULL, "
                   "last_time bigint NOT NULL, times bigint[] NOT NULL, vals double precision[] NOT NULL, "
                   "PRIMARY KEY (series_id, first_time))")
probe = {"rows_primary_key": 0.0, "segment_append": 0.0, "segment_compaction": 0.0}
probe_batches = 120
base = [(series_id, (moment - EPOCH) // timedelta(microseconds=1), value) for series_id, moment, value in sorted(rows)]
for batch in range(probe_batches):
    shift = batch * 5_000_000
    moved = [(series_id, micros + shift, value) for series_id, micros, value in base]
    with transaction.atomic(), connection.cursor() as cursor:
        before = backend_cpu(cursor)
        with cursor.copy("COPY bench_probe_rows (series_id, time, value) FROM STDIN (FORMAT BINARY)") as out:
            out.set_types(["int4", "timestamptz", "float8"])
            for series_id, micros, value in moved:
                out.write_row((series_id, EPOCH + timedelta(microseconds=micros), value))
    with connection.cursor() as cursor:
        probe["rows_primary_key"] += backend_cpu(cursor) - before
    with transaction.atomic(), connection.cursor() as cursor:
        before = backend_cpu(cursor)
        cursor.execute("INSERT INTO bench_probe_segments (series, times, vals) VALUES (%b, %b, %b)",
                       [[row[0] for row in moved], [row[1] for row in moved], [row[2] for row in moved]])
    with connection.cursor() as cursor:
        probe["segment_append"] += backend_cpu(cursor) - before
    if (batch + 1) % 60 == 0:
        with transaction.atomic(), connection.cursor() as cursor:
            before = backend_cpu(cursor)
            cursor.execute(
                "WITH folded AS (DELETE FROM bench_probe_segments RETURNING series, times, vals) "
                "INSERT INTO bench_probe_blocks SELECT u.s, min(u.t), max(u.t), array_agg(u.t ORDER BY u.t), "
                "array_agg(u.v ORDER BY u.t) FROM folded, "
                "unnest(folded.series, folded.times, folded.vals) AS u(s, t, v) GROUP BY u.s")
        with connection.cursor() as cursor:
            probe["segment_compaction"] += backend_cpu(cursor) - before
# What readers would pay: one series over the whole range (600 points), and every series' per-minute average.
first, last = base[0][1], base[0][1] + probe_batches * 5_000_000
reads = {
    "read_one_series_rows": ("SELECT time, value FROM bench_probe_rows WHERE series_id = %(series)s "
                             "AND time >= %(start)s AND time < %(end)s ORDER BY time", 20),
    "read_one_series_blocks": ("SELECT u.t, u.v FROM bench_probe_blocks b, unnest(b.times, b.vals) AS u(t, v) "
                               "WHERE b.series_id = %(series)s AND b.last_time >= %(first)s "
                               "AND b.first_time < %(last)s AND u.t >= %(first)s AND u.t < %(last)s ORDER BY u.t", 20),
    "read_minute_averages_rows": ("SELECT series_id, date_bin('1 minute', time, %(start)s), avg(value) "
                                  "FROM bench_probe_rows GROUP BY 1, 2", 5),
    "read_minute_averages_blocks": ("SELECT b.series_id, (u.t - %(first)s) / 60000000, avg(u.v) "
                                    "FROM bench_probe_blocks b, unnest(b.times, b.vals) AS u(t, v) GROUP BY 1, 2", 5),
}
parameters = {"series": base[0][0], "first": first, "last": last,
              "start": EPOCH + timedelta(microseconds=first), "end": EPOCH + timedelta(microseconds=last)}
read_ms = {}
with connection.cursor() as cursor:
    for name, (query, repetitions) in reads.items():
        seconds = []
        for _ in range(repetitions):
            started = time.perf_counter()
            cursor.execute(query, parameters)
            count = len(cursor.fetchall())
            seconds.append(time.perf_counter() - started)
        read_ms[f"{name}_ms"] = round(sorted(seconds)[len(seconds) // 2] * 1000, 2)
        read_ms[f"{name}_rows_returned"] = count
    cursor.execute("SELECT pg_total_relation_size('bench_probe_rows'), pg_total_relation_size('bench_probe_blocks')")
    rows_bytes, blocks_bytes = cursor.fetchone()
    cursor.execute("DROP TABLE bench_probe_rows, bench_probe_segments, bench_probe_blocks")
result["postgres_layout_probe"] = {
    **{f"{name}_backend_cpu_ms_per_batch": round(seconds * 1000 / probe_batches, 2) for name, seconds in probe.items()},
    **read_ms,
    "rows_bytes": rows_bytes,
    "blocks_bytes": blocks_bytes,
    "note": "not the storage in use: 5,000 points a batch appended as one row of arrays, folded every 60 batches into "
            "one row per series; segment_append plus segment_compaction against rows_primary_key is what that "
            "layout would save PostgreSQL per batch; the reads are wall time over the probe's 600,000 points, "
            "blocks only (a real reader would also read the segments not folded yet)",
}
print(json.dumps(result))
"""
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=False
    )
    if output.returncode != 0:
        return {"error": output.stderr[-2000:]}
    return json.loads(output.stdout.strip().splitlines()[-1])


def run(*, quick: bool = False) -> dict:
    """Points per second through our line-protocol and JSON endpoints and into InfluxDB 1.x, same bodies.

    The machine's speed drifts by a quarter within minutes, so the three are measured in interleaved rounds
    (our line protocol, our JSON, InfluxDB, then again), both servers up throughout; each ratio is the median
    of the rounds' ratios, every round's figures are kept.
    """
    batches = 4 if smoke() else 40 if quick else 300
    rounds = 2 if quick else 5
    per_round = batches // rounds
    clients = int(os.environ.get("BENCH_INGEST_CLIENTS", "4"))
    configured = os.environ.get("BENCH_INGEST_WEB_PROCESSES")
    web_processes = int(configured) if configured else None
    environment = prod_environment(
        database=BENCH_DATABASE,
        redis_db=11,
        # A run writes up to an hour of 1 Hz data ahead of the clock; the future guard must not refuse it.
        INGEST_MAX_FUTURE_SECONDS=str(86400),
        INGEST_MAX_IN_FLIGHT="16",
    )
    _log("preparing database")
    key = _prepare(environment)
    versions = database_versions(environment["DATABASE_URL"])
    _log(f"measuring the {versions['storage_backend']} backend on PostgreSQL {versions['postgres']}")
    _log(f"building {batches} bodies per endpoint")
    # Times only move forward, as agents send them: the warm-up first (seconds 0 to 80), then each round's line
    # protocol and then its JSON (all by 3,100 s, before the stage profile's). A warm-up stamped after the measured
    # batches made every measured point an insert before its series' newest, so the primary key's pages split.
    # The warm-up is eight batches of each on eight connections, so that every web process (each keeps its own
    # series ids and label checks) very likely warms up on both endpoints before it is measured.
    seconds_per_batch = BATCH_POINTS // SERIES
    warmup_line = _line_bodies(WARMUP_BATCHES, first_second=0)
    warmup_json = _json_bodies(WARMUP_BATCHES, first_second=WARMUP_BATCHES * seconds_per_batch)
    first_second = 2 * WARMUP_BATCHES * seconds_per_batch
    seconds_per_round = per_round * seconds_per_batch
    line_rounds = [
        _line_bodies(per_round, first_second=first_second + 2 * number * seconds_per_round) for number in range(rounds)
    ]
    json_rounds = [
        _json_bodies(per_round, first_second=first_second + (2 * number + 1) * seconds_per_round)
        for number in range(rounds)
    ]
    result: dict = {
        "database": versions,
        "batch_points": BATCH_POINTS,
        "series": SERIES,
        "clients": clients,
        "rounds": rounds,
        "batches_per_round": per_round,
        "durability": "ours: answered after PostgreSQL COMMIT (synchronous_commit=on); InfluxDB: after its WAL write",
    }
    try:
        influx = Influx()
    except InfluxUnavailable as error:
        result["influxdb"] = {"error": str(error)}
        influx = None
    launcher, port, web_pids = _start_web(environment, web_processes)
    result["web_processes"] = len(web_pids)
    line = ("/api/v2/write?bucket=bench&precision=ns", {"Authorization": f"Token {key}", "Content-Type": "text/plain"})
    json_endpoint = (
        "/api/v1/sources/bench/ingest",
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    measured: dict[str, list[dict]] = {"ours_line_protocol": [], "ours_json": [], "influxdb": []}
    try:
        for (path, headers), bodies, expect in ((line, warmup_line, 204), (json_endpoint, warmup_json, 200)):
            _send_all(ports=[port], path=path, headers=headers, bodies=bodies, clients=WARMUP_BATCHES, expect=expect)
        if influx is not None:
            result["influxdb_version"] = influx.version
            connection = influx.connection()
            connection.request("POST", "/query?q=CREATE+DATABASE+bench")
            connection.getresponse().read()
            _send_all(ports=[influx.port], path="/write?db=bench&precision=ns", headers={}, bodies=warmup_line,
                      clients=WARMUP_BATCHES, expect=204)  # fmt: skip
        for number in range(rounds):
            for name, (path, headers), bodies, expect in (
                ("ours_line_protocol", line, line_rounds[number], 204),
                ("ours_json", json_endpoint, json_rounds[number], 200),
            ):
                web_cpu = [process_cpu_seconds(pid) for pid in web_pids]
                database_cpu = _database_cpu_seconds(environment["DATABASE_URL"])
                item = _send_all(
                    ports=[port], path=path, headers=headers, bodies=bodies, clients=clients, expect=expect
                )
                per_process = [process_cpu_seconds(pid) - before for pid, before in zip(web_pids, web_cpu, strict=True)]
                item["web_cpu_seconds"] = sum(per_process)
                item["web_cpu_seconds_per_process"] = per_process
                item["postgres_cpu_seconds"] = _database_cpu_seconds(environment["DATABASE_URL"]) - database_cpu
                measured[name].append(item)
            if influx is not None:
                cpu_before = influx.cpu_seconds()
                item = _send_all(ports=[influx.port], path="/write?db=bench&precision=ns", headers={},
                                 bodies=line_rounds[number], clients=clients, expect=204)  # fmt: skip
                item["influxd_cpu_seconds"] = influx.cpu_seconds() - cpu_before
                measured["influxdb"].append(item)
            _log(f"round {number + 1}/{rounds}: " + ", ".join(
                f"{name} {items[-1]['points_per_second']:,} points/s" for name, items in measured.items() if items
            ))  # fmt: skip
        if influx is not None:
            result["backfill"] = _backfill(port=port, influx_port=influx.port, line=line, clients=clients,
                                           rounds=rounds, per_round=per_round,
                                           cpu=(web_pids, environment["DATABASE_URL"]))  # fmt: skip
    finally:
        launcher.terminate()
        launcher.wait(timeout=30)
        if influx is not None:
            influx.stop()
    for name, items in measured.items():
        if items:
            result[name] = _rounds_summary(items)
    if measured["influxdb"]:
        result["reference"] = "influxdb"
        for name, ours in (("line_protocol", "ours_line_protocol"), ("json", "ours_json")):
            ratios = [
                mine["points_per_second"] / theirs["points_per_second"]
                for mine, theirs in zip(measured[ours], measured["influxdb"], strict=True)
            ]
            result[f"ratio_{name}_to_influxdb"] = round(statistics.median(ratios), 3)
            result[f"ratio_{name}_to_influxdb_per_round"] = [round(ratio, 3) for ratio in ratios]
    _log("stage profile")
    result["stage_profile"] = _stage_profile(environment, key)
    result["load_average"] = os.getloadavg()
    return result
