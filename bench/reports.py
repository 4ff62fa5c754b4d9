"""Report rendering at scale: 30 days of 1-minute data for 100 series, as PDF, XLSX and CSV, timed, with peak memory.

Loads 100 series (metric "power", devices m000..m099 in 5 facilities) with one point a minute for 30 days ending
"now" (4.32 million points) through the real write path, refreshes the rollup tiers, then renders a report whose
one panel reads all 100 series at 1-minute buckets (43,200 rows x 100 columns in the XLSX and CSV; the PDF charts
them at 600 buckets) through the same code a run uses (`report_content` + `report_files_render`), one format at a
time, and both XLSX and CSV together (one read of the rows for both). For each: wall time, and the peak
resident memory a forked process gained while rendering it, sampled every 20 ms from /proc/self/statm (it counts
WeasyPrint's and openpyxl's C memory too, which tracemalloc would not). The bound checked is
REPORT_MEMORY_BOUND_MB (stated in docs/reports.md).

    .venv/bin/python -m bench reports [--quick]

Size and scope knobs (for profiling at a smaller size; the documented figures use the defaults):
BENCH_REPORTS_SERIES (100), BENCH_REPORTS_DAYS (30; --quick 7), BENCH_REPORTS_FORMATS (which renders, comma
separated, default "pdf,xlsx,csv,xlsx+csv"), BENCH_REPORTS_PROFILE (a directory: each render is profiled with
pyinstrument, when it is importable, into <directory>/<format>.txt).

As the storage benchmark: the parent drops and recreates its own database (BENCH_REPORTS_DATABASE_URL, else
BENCH_DATABASE_URL, else analytics_bench_reports), migrates it, runs the body in a child process and drops it.
--quick: 7 days; --smoke: 1 day of 5 series.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import smoke
from bench.django_server import bench_database_url, database_versions, storage_backend_wanted

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "analytics_bench_reports"
SERIES, DAYS = 100, 30
REPORT_MEMORY_BOUND_MB = 300  # peak RSS growth while rendering one format, for this size (docs/reports.md)


def _log(message: str) -> None:
    print(f"[reports {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _environment(url: str, files: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "analytics_platform.settings.prod",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": url,
        "REDIS_URL": os.environ.get("BENCH_REPORTS_REDIS_URL", "redis://127.0.0.1:6379/12"),
        "STORAGE_BACKEND": storage_backend_wanted(),
        "REPORT_FILES_ROOT": files,
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


def run(*, quick: bool = False) -> dict:
    """Recreate and migrate the bench database, render in a child process, return its result."""
    url = os.environ.get("BENCH_REPORTS_DATABASE_URL") or bench_database_url(BENCH_DATABASE)
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as directory:
        environment = _environment(url, directory)
        _log(f"recreating {url}")
        _database_recreate(url)
        try:
            migrate = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO_ROOT,
                                     env=environment, capture_output=True, text=True)  # fmt: skip
            if migrate.returncode != 0:
                raise RuntimeError(f"migrate failed:\n{migrate.stderr}")
            output = Path(directory) / "result.json"
            command = [sys.executable, "-m", "bench.reports", "--worker", "--output", str(output)]
            subprocess.run([*command, *(["--quick"] if quick else [])], cwd=REPO_ROOT, env=environment, check=True)
            result = json.loads(output.read_text())
            result["database"] = database_versions(url)
        finally:
            _database_recreate(url, drop_only=True)
    return result


class PeakMemory:
    """Samples this process's resident memory every 20 ms; `peak_mb` is the highest above the level at start."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self) -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * self.page

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def peak_mb(self) -> float:
        return round((self.peak - self.start) / 1e6, 1)


def _load(*, series: int, days: int) -> tuple[object, object, datetime]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from apps.access.models import Organization
    from apps.sources.models import Source
    from apps.storage.backends import backend_for
    from apps.storage.services import points_write, series_key, series_resolve
    from apps.storage.tiers import bucket_floor

    organization, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    source = Source.objects.create(name="Bench plant", slug="bench-plant", organization=organization)
    keys = [series_key(source_id=source.pk, metric="power", labels={"device": f"m{index:03d}",
                                                                    "facility": f"f{index % 5 + 1}"})
            for index in range(series)]  # fmt: skip
    resolved = series_resolve(keys=keys)
    ids = [resolved[key] for key in keys]
    user = get_user_model().objects.create_user(username="bench-reports", email="bench@example.com",
                                                password=secrets.token_urlsafe(16))  # fmt: skip
    organization.memberships.create(user=user, role="editor")
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    if backend_for().name == "postgres":
        with connection.cursor() as cursor:
            cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL",
                           [bucket_floor(start, 60)])  # fmt: skip
    generator = random.Random(7)  # noqa: S311 - reproducible test data, not secrets
    levels = [generator.uniform(50, 500) for _ in ids]
    minutes = days * 1440
    started = time.perf_counter()
    for first in range(0, minutes, 1440):
        batch = []
        for minute in range(first, min(first + 1440, minutes)):
            moment = start + timedelta(minutes=minute)
            for index, series_id in enumerate(ids):
                levels[index] = max(0.0, levels[index] + generator.gauss(0, 2))
                batch.append((series_id, moment, round(levels[index], 3)))
        points_write(points=batch)
    load_seconds = time.perf_counter() - started
    _log(f"loaded {minutes * series:,} points in {load_seconds:.1f} s; refreshing rollups")
    started = time.perf_counter()
    backend_for().rollup_refresh(now=end)
    _log(f"rollups refreshed in {time.perf_counter() - started:.1f} s")
    return organization, user, end


def _size(*, quick: bool) -> tuple[int, int]:
    """Series and days: the documented size unless BENCH_REPORTS_SERIES / BENCH_REPORTS_DAYS say otherwise."""
    series = int(os.environ.get("BENCH_REPORTS_SERIES") or SERIES)
    days = int(os.environ.get("BENCH_REPORTS_DAYS") or (7 if quick else DAYS))
    return series, days


def _format_sets() -> list[list[str]]:
    wanted = os.environ.get("BENCH_REPORTS_FORMATS") or "pdf,xlsx,csv,xlsx+csv"
    return [name.strip().split("+") for name in wanted.split(",") if name.strip()]


def _body(*, quick: bool) -> dict:
    from apps.dashboards.services import dashboard_create
    from apps.reporting.runs import report_content
    from apps.reporting.services import report_create

    series, days = (5, 1) if smoke() else _size(quick=quick)
    organization, user, end = _load(series=series, days=days)
    dashboard = dashboard_create(organization=organization, owner=user, document={
        "schema_version": 1, "title": "Power", "time_range": {"start": "-6h", "end": "now"},
        "panels": [{"key": "power", "title": "Power by machine", "type": "timeseries",
                    "grid": {"x": 0, "y": 0, "w": 12, "h": 8}, "options": {"unit": "kW", "decimals": 1},
                    "queries": [{"ref": "A", "query": {"source": "bench-plant", "metric": "power", "aggregation": "avg",
                                                       "bucket": "1m", "group_by": ["device"]}}]}],
    })  # fmt: skip
    report = report_create(organization=organization, owner=user, data={
        "name": "Power, last 30 days", "dashboard": dashboard.uid, "formats": ["pdf", "xlsx", "csv"],
        "recipients": {"users": [user.username]}, "time_range": {"start": f"-{days}d", "end": "now"},
    })  # fmt: skip
    start = end - timedelta(days=days)
    result: dict = {
        "scale": {"series": series, "days": days, "points": series * days * 1440,
                  "rows_per_table": days * 1440, "cells_per_table": days * 1440 * (series + 1)},
        "memory_bound_mb": REPORT_MEMORY_BOUND_MB,
        "formats": {},
    }  # fmt: skip
    with PeakMemory() as memory:
        started = time.perf_counter()
        content = report_content(report=report, principal=user, start=start, end=end)
        overview_seconds = time.perf_counter() - started
    result["overview"] = {"seconds": round(overview_seconds, 2), "peak_rss_mb": memory.peak_mb,
                          "columns": len(content.sections[0].columns)}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-report-files-") as directory:
        for formats in _format_sets():
            name = "+".join(formats)
            measured = _in_child(_render_measured, report, content, Path(directory) / name, formats)
            result["formats"][name] = {**measured, "within_bound": measured["peak_rss_mb"] <= REPORT_MEMORY_BOUND_MB}
            _log(
                f"{name}: {measured['seconds']:.1f} s, peak +{measured['peak_rss_mb']} MB, {measured['bytes']:,} bytes"
            )
    result["note"] = (
        "Each format is rendered in a process forked after the overview was read, so its peak is its own (not "
        "memory an earlier format left with the allocator). xlsx+csv reads each table from the engine once for both."
    )
    return result


def _render_measured(report, content, directory: Path, formats: list[str]) -> dict:
    from django.utils import timezone

    from apps.reporting.runs import report_files_render

    profiler = _profiler()
    with PeakMemory() as memory:
        started = time.perf_counter()
        if profiler is not None:
            profiler.start()
        files = report_files_render(report=report, content=content, directory=directory, formats=formats,
                                    generated_at=timezone.now(), recipient_label="bench")  # fmt: skip
        seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.stop()
        target = Path(os.environ["BENCH_REPORTS_PROFILE"]) / f"{'+'.join(formats)}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(profiler.output_text(show_all=False, color=False))
    return {"seconds": round(seconds, 2), "peak_rss_mb": memory.peak_mb, "bytes": sum(f["bytes"] for f in files)}


def _profiler():
    """A pyinstrument profiler when BENCH_REPORTS_PROFILE names a directory (pyinstrument is not a dependency:
    put it on PYTHONPATH for a profiling run)."""
    if not os.environ.get("BENCH_REPORTS_PROFILE"):
        return None
    from pyinstrument import Profiler

    return Profiler(interval=0.005)


def _in_child(function, *args) -> dict:
    """Run function(*args) in a forked process (with database connections of its own) and return its result."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # the child must not share the parent's sockets
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def target() -> None:
        try:
            sender.send(function(*args))
        except BaseException as error:
            sender.send({"error": repr(error)})
            raise
        finally:
            connections.close_all()

    process = context.Process(target=target)
    process.start()
    result = receiver.recv()
    process.join()
    if "error" in result:
        raise RuntimeError(f"rendering failed in the child: {result['error']}")
    return result


def _worker_main() -> int:
    parser = argparse.ArgumentParser(description="The reports benchmark's body (run by bench.reports.run).")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--output", required=True)
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    import django

    django.setup()
    result = _body(quick=arguments.quick)
    Path(arguments.output).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main())
