"""Many people opening one dashboard at once: the plant's floor managers at shift change.

N users (1, 10, 40) open the demo's Factory floor dashboard at the same moment, each as a browser does: one GET of
the dashboard, then every panel's queries through POST /api/v1/query, six at a time (a browser's connections per
host), shaped like static/js/dashboards/dashboard.js prepares them (the dashboard's range, variables substituted,
`max_points` from the panel's width at 1440 px, stat and gauge panels asking for their reduced value). Each user
has an API token of their own (a viewer of the demo organisation, so every user has the same data scope).

Production-like: `manage.py serve` with prod settings (one daphne process per core), the simulator streaming every
scenario into the sources over HTTP meanwhile (`simulate --scenario all`, as `make demo`), the rollup refresh every
10 s (as Celery beat schedules it), after one hour of history was backfilled through the ingest API.

Reported per N: the time until a user has every panel's data (median and p95 over users and rounds) and the query
latency p95, for the server as configured (answers shared) and, outside smoke runs, with sharing turned off
(STORAGE_RESULT_CACHE_SECONDS=0), the way it answered before.

Targets (issue 17): 40 users each within 2 s, 10 users within 1 s.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from bench import smoke
from bench.django_server import REPO_ROOT, database_drop, database_versions, manage, prod_environment
from bench.ingest import _start_web

BENCH_DATABASE = "analytics_bench_dashboards"
REDIS_DB = 13
DASHBOARD_TITLE = "Factory floor"
BROWSER_CONNECTIONS = 6
VIEWPORT_PIXELS = 1400  # a 1440 px window less the page's margins: 12 grid columns
# Stat and gauge panels: the dashboard's reduce option as a calculation, and how series combine (what the title
# implies: a count or sum adds up, a max is the highest, else the mean).
CALCULATIONS = {"last": "last_not_null", "sum": "sum", "mean": "mean", "max": "max", "min": "min"}
COMBINATIONS = {"sum": "sum", "count": "sum", "max": "max", "min": "min"}


def _log(message: str) -> None:
    print(f"[bench dashboards] {message}", file=sys.stderr, flush=True)


def _prepare(environment: dict[str, str], users: int) -> tuple[list[str], dict[str, str]]:
    """A fresh database with the demo's sources and dashboards; (one API token per user, the simulator's keys)."""
    database_drop(environment["DATABASE_URL"])
    manage(environment, "check_services", "--create-database")
    manage(environment, "migrate", "--noinput")
    script = (
        "import json; from django.contrib.auth import get_user_model; from django.core.management import call_command; "
        "from apps.access.models import Membership, Organization; from apps.access.services import api_token_create; "
        "from analytics_platform.management.commands.demo_data import simulator_write_keys; "
        "User = get_user_model(); "
        "User.objects.create_superuser(username='admin', email='admin@example.com', password='x' * 20); "
        "call_command('demo_data', verbosity=0); o = Organization.objects.get(slug='demo'); tokens = []\n"
        f"for number in range({users}):\n"
        "    u = User.objects.create_user(username=f'manager{number}', password='x' * 20)\n"
        "    Membership.objects.create(organization=o, user=u, role='viewer')\n"
        "    tokens.append(api_token_create(user=u, name='bench')[1])\n"
        "print(json.dumps({'tokens': tokens, 'keys': simulator_write_keys()}))"
    )
    output = json.loads(manage(environment, "shell", "-c", script).strip().splitlines()[-1])
    return output["tokens"], output["keys"]


def _simulate(environment: dict[str, str], port: int, keys: dict[str, str], *extra: str) -> subprocess.Popen:
    arguments = [f"--write-key={slug}={key}" for slug, key in keys.items()]
    return subprocess.Popen(
        [sys.executable, "manage.py", "simulate", "--scenario", "all", "--sink", "http",
         "--url", f"http://127.0.0.1:{port}", "--seed", "17", *arguments, *extra],
        cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _refresher(environment: dict[str, str]) -> subprocess.Popen:
    """The rollup refresh every 10 s, as Celery beat runs it in production."""
    loop = (
        "import time\nfrom apps.storage.services import rollups_refresh\n"
        "while True:\n    rollups_refresh()\n    time.sleep(10)\n"
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", loop],
        cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _request(connection: http.client.HTTPConnection, method: str, path: str, token: str, body: Any = None) -> bytes:
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path} answered {response.status}: {payload[:300]!r}")
    return payload


def panel_requests(document: dict) -> list[dict]:
    """The query bodies a browser sends for the dashboard, as dashboard.js prepares them."""
    values = {variable["name"]: variable.get("default") for variable in document.get("variables", [])}
    time_range = document.get("time_range") or {"start": "-6h", "end": "now"}
    bodies = []
    for panel in document["panels"]:
        width = max(10, round(panel["grid"]["w"] * VIEWPORT_PIXELS / 12) - 24)
        for item in panel.get("queries", []):
            spec = dict(item["query"])
            filters = {}
            for label, condition in (spec.get("filters") or {}).items():
                if isinstance(condition, str) and condition.startswith("$"):
                    chosen = [value for value in [values.get(condition[1:])] if value not in (None, "")]
                    chosen = [value for entry in chosen for value in (entry if isinstance(entry, list) else [entry])]
                    if chosen:
                        filters[label] = chosen[0] if len(chosen) == 1 else chosen
                else:
                    filters[label] = condition
            spec["filters"] = filters
            spec.update(start=time_range["start"], end=time_range["end"], max_points=min(10_000, width))
            spec.setdefault("bucket", "auto")
            if panel["type"] in ("stat", "gauge"):
                reduce = panel.get("options", {}).get("reduce", "last")
                spec["reduce"] = {
                    "calculation": CALCULATIONS.get(reduce, "last_not_null"),
                    "combination": COMBINATIONS.get(spec.get("aggregation", "avg"), "mean"),
                }
            bodies.append(spec)
    return bodies


def _open_dashboard(port: int, token: str, uid: str, bodies: list[dict], latencies: list[float]) -> float:
    """One user: the dashboard, then its queries six at a time; seconds until the last answer."""
    started = time.perf_counter()
    work: queue.Queue = queue.Queue()
    work.put(("GET", f"/api/v1/dashboards/{uid}/", None))
    failures: list[str] = []

    def connection_worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while True:
                try:
                    method, path, body = work.get_nowait()
                except queue.Empty:
                    return
                asked = time.perf_counter()
                _request(connection, method, path, token, body)
                latencies.append(time.perf_counter() - asked)
                if method == "GET":  # the page has its document: the panels ask for their data
                    for spec in bodies:
                        work.put(("POST", "/api/v1/query", spec))
        except Exception as error:  # reported below
            failures.append(str(error))
        finally:
            connection.close()

    first = threading.Thread(target=connection_worker)
    first.start()
    first.join()  # the document first, as the page loads it; then six connections
    threads = [threading.Thread(target=connection_worker) for _ in range(BROWSER_CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(failures[0])
    return time.perf_counter() - started


def _crowd(port: int, tokens: list[str], uid: str, bodies: list[dict]) -> tuple[list[float], list[float]]:
    """Every user opens the dashboard at the same moment; (time to all panels per user, every request's latency)."""
    barrier = threading.Barrier(len(tokens))
    per_user: list[float] = []
    latencies: list[float] = []
    failures: list[str] = []

    def user(token: str) -> None:
        barrier.wait()
        try:
            per_user.append(_open_dashboard(port, token, uid, bodies, latencies))
        except Exception as error:
            failures.append(str(error))

    threads = [threading.Thread(target=user, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} users failed: {failures[0]}")
    return per_user, latencies


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _measure(environment: dict[str, str], tokens: list[str], keys: dict[str, str], crowds: tuple[int, ...]) -> dict:
    launcher, port, _ = _start_web(environment, None)
    simulator = _simulate(environment, port, keys)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        listing = json.loads(_request(connection, "GET", "/api/v1/dashboards/", tokens[0]))
        items = listing["results"] if isinstance(listing, dict) else listing
        uid = next(item["uid"] for item in items if item["title"] == DASHBOARD_TITLE)
        document = json.loads(_request(connection, "GET", f"/api/v1/dashboards/{uid}/", tokens[0]))["document"]
        connection.close()
        bodies = panel_requests(document)
        time.sleep(1 if smoke() else 5)  # the simulator is streaming
        _crowd(port, tokens[:2], uid, bodies)  # warm-up: every process has imported its views and met the database
        rounds = 1 if smoke() else 5
        results: dict[str, Any] = {"queries_per_user": len(bodies)}
        for users in crowds:
            per_user: list[float] = []
            latencies: list[float] = []
            load_before = os.getloadavg()[0]
            for _ in range(rounds):
                times, waits = _crowd(port, tokens[:users], uid, bodies)
                per_user += times
                latencies += waits
                time.sleep(0.5 if smoke() else 3)
            results[f"users_{users}"] = {
                "time_to_all_panels_median_s": round(statistics.median(per_user), 3),
                "time_to_all_panels_p95_s": round(_percentile(per_user, 0.95), 3),
                "time_to_all_panels_max_s": round(max(per_user), 3),
                "query_p95_s": round(_percentile(latencies, 0.95), 3),
                "requests": len(latencies),
                "rounds": rounds,
                # The machine's 1-minute load average around the rounds: other work slows every figure.
                "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            }
            _log(f"{users} users: {results[f'users_{users}']}")
        if simulator.poll() is not None:
            raise RuntimeError(f"the simulator stopped: {simulator.stderr.read()[-2000:]}")
        return results
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
        launcher.terminate()
        launcher.wait(timeout=20)


def _crowds_wanted() -> tuple[int, ...]:
    """The crowd sizes: BENCH_DASHBOARD_USERS (e.g. `10,40`: fewer, to iterate on a busy machine), else 1, 10, 40."""
    configured = os.environ.get("BENCH_DASHBOARD_USERS", "")
    sizes = tuple(int(size) for size in configured.split(",") if size.strip())
    if any(size < 1 for size in sizes):
        raise ValueError(f"BENCH_DASHBOARD_USERS: use positive numbers separated by commas, not {configured!r}")
    return sizes or (1, 10, 40)


def run(*, quick: bool = False) -> dict:
    """Measure N users opening the Factory floor dashboard at once, with the simulator streaming."""
    crowds = (1, 2) if smoke() else _crowds_wanted()
    environment = prod_environment(database=BENCH_DATABASE, redis_db=REDIS_DB)
    _log("preparing the database and the demo's dashboards")
    tokens, keys = _prepare(environment, max(crowds))
    refresher = _refresher(environment)
    try:
        # One hour of history (the dashboard's range), written through the ingest API as the demo's backfill is.
        launcher, port, _ = _start_web(environment, None)
        try:
            history = "-5m" if smoke() else "-1h"
            _log(f"backfilling {history} of every scenario")
            backfill = _simulate(environment, port, keys, "--no-realtime", "--start", history)
            if backfill.wait() != 0:
                raise RuntimeError(f"the backfill failed: {backfill.stderr.read()[-2000:]}")
        finally:
            launcher.terminate()
            launcher.wait(timeout=20)
        manage(environment, "shell", "-c", "from apps.storage.services import rollups_refresh; rollups_refresh()")
        results: dict[str, Any] = {"dashboard": DASHBOARD_TITLE, "configurations": {}}
        configurations = (
            {"shared": {}} if smoke() or quick else {"shared": {}, "unshared": {"STORAGE_RESULT_CACHE_SECONDS": "0"}}
        )
        for name, changes in configurations.items():
            _log(f"measuring: answers {name}")
            results["configurations"][name] = _measure({**environment, **changes}, tokens, keys, crowds)
        results["database"] = database_versions(environment["DATABASE_URL"])
        results["targets"] = {"users_40_within_s": 2.0, "users_10_within_s": 1.0}
        return results
    finally:
        refresher.terminate()
        refresher.wait(timeout=10)
