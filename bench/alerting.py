"""Alerting end to end: from the HTTP ingest call of a breaching point to the webhook's arrival, under load.

Production setup (prod settings, own database, Redis db 7): `manage.py serve` (one process) takes ingest,
`manage.py alerts_evaluator` evaluates rules as their series change, a Celery worker delivers notifications.
1,000 rules are active, one per machine (`temperature > 90` of device dNNNN, each to the same signed webhook).
Background ingest sends 10,000 points a second (10 batches of 1,000, in range) for devices d0000-d0949; the
probes use devices d0950-d0999, which nothing else writes: each probe POSTs one breaching point and waits for
the firing webhook of that device (the latency), then POSTs one normal point and waits for the resolved one.

Evaluation cost: every rule evaluated in one process, one after another (one core, plus PostgreSQL's share),
for per-machine rules (one instance each) and for grouped rules (one rule over 100 machines: 100 instances).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench import smoke
from bench.django_server import REPO_ROOT, database_drop, database_versions, manage, prod_environment
from bench.ports import port_in

BENCH_DATABASE = "analytics_bench_alerting"
REDIS_DB = 7
PORTS = range(18650, 18700)
PROBE_DEVICES = 50
LOG_DIR = REPO_ROOT / "var" / "bench-alerting"
# Deliveries: a thread pool is plenty for short HTTP calls.
CELERY_WORKER = [
    sys.executable, "-m", "celery", "--app", "analytics_platform", "worker", "--pool", "threads", "--concurrency", "4",
    "--queues", "default", "--loglevel", "WARNING",
]  # fmt: skip


def _log(message: str) -> None:
    print(f"[bench alerting] {message}", file=sys.stderr, flush=True)


def _port() -> int:
    return port_in(PORTS)


class Receiver:
    """The webhook receiver: when each (device, status) arrived."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, str, float]] = []
        self.condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.time()
                payload = json.loads(body)
                with receiver.condition:
                    for alert in payload["alerts"]:
                        receiver.arrivals.append((alert["labels"].get("device", ""), payload["status"], now))
                    receiver.condition.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", _port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait(self, device: str, status: str, after: float, timeout: float = 10.0) -> float | None:
        deadline = time.time() + timeout
        with self.condition:
            while True:
                for arrived_device, arrived_status, at in self.arrivals:
                    if arrived_device == device and arrived_status == status and at >= after:
                        return at
                remaining = deadline - time.time()
                if remaining <= 0:
                    return None
                self.condition.wait(remaining)


def _prepare(environment: dict[str, str], *, rules: int, webhook: str) -> str:
    """A fresh database, an organisation, a source, an editor owning `rules` per-machine rules; the write key."""
    database_drop(environment["DATABASE_URL"])
    manage(environment, "check_services", "--create-database")
    manage(environment, "migrate", "--noinput")
    script = f"""
from django.contrib.auth import get_user_model
from apps.access.models import Membership, Organization
from apps.sources.services import source_create
from apps.alerts.alerting.services import alert_rule_create, contact_point_create
o, _ = Organization.objects.get_or_create(slug='bench', defaults={{'name': 'Bench'}})
s, key = source_create(organization=o, name='Bench', slug='bench')
u = get_user_model().objects.create_user(username='operator', password='x' * 20)
Membership.objects.create(organization=o, user=u, role='editor')
hook = contact_point_create(organization=o, created_by=u, name='hook', kind='webhook',
                            config={{'url': {webhook!r}, 'secret': 'bench-secret'}})
for index in range({rules}):
    alert_rule_create(organization=o, owner=u, data={{
        'name': f'press d{{index:04d}} hot',
        'query': {{'source': 'bench', 'metric': 'temperature', 'aggregation': 'last',
                  'filters': {{'device': f'd{{index:04d}}'}}, 'group_by': ['device']}},
        'condition': {{'type': 'threshold', 'op': '>', 'value': 90}}, 'for': '0s', 'window': '5m',
        'interval': '1h', 'group_wait': '0s', 'group_interval': '0s', 'contact_points': [hook.id]}})
print(key)
"""
    return manage(environment, "shell", "-c", script).strip().splitlines()[-1]


def _start(environment: dict[str, str], port: int) -> list[subprocess.Popen]:
    """The web server, the evaluator and a Celery worker; their output goes to var/bench-alerting/<name>.log."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    commands = {
        "web": [sys.executable, "manage.py", "serve", "--bind", "127.0.0.1", "--port", str(port), "--processes", "1"],
        "evaluator": [sys.executable, "manage.py", "alerts_evaluator"],
        "worker": CELERY_WORKER,
    }
    processes = []
    for name, command in commands.items():
        # BENCH_ALERTING_EVALUATOR_LOG_LEVEL=DEBUG logs each change message's and each evaluation's cost.
        level = os.environ.get("BENCH_ALERTING_EVALUATOR_LOG_LEVEL", "WARNING") if name == "evaluator" else "WARNING"
        with (LOG_DIR / f"{name}.log").open("wb") as log:
            processes.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                 env={**environment, "LOG_LEVEL": level})
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
        if any(process.poll() is not None for process in processes) or time.monotonic() > deadline:
            _stop(processes)
            raise RuntimeError("the web server, evaluator or worker did not start")
        time.sleep(0.2)
    time.sleep(3)  # the evaluator has loaded its index, the worker joined the queue
    return processes


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


class Ingest:
    """Keep-alive JSON ingest calls."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.local = threading.local()
        self.failures: list[str] = []
        self.points = 0
        self.lock = threading.Lock()

    def post(self, records: list[str]) -> None:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", "/api/v1/sources/bench/ingest", body="[" + ",".join(records) + "]",
                               headers=self.headers)  # fmt: skip
            response = connection.getresponse()
            text = response.read()
        except OSError as error:
            self.local.connection = None
            self.failures.append(str(error))
            return
        if response.status != 200:
            self.failures.append(f"{response.status}: {text[:200]!r}")
        else:
            with self.lock:
                self.points += len(records)


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _background(ingest: Ingest, *, devices: int, points_per_second: int, stop: threading.Event) -> None:
    """`points_per_second` in-range readings in 10 batches a second, round-robin over `devices` machines."""
    batch = points_per_second // 10
    with ThreadPoolExecutor(max_workers=4) as pool:
        start = time.monotonic()
        tick = 0
        cursor = 0
        while not stop.is_set():
            stamp = _stamp()
            records = []
            for _ in range(batch):
                records.append(f'{{"time":"{stamp}","device":"d{cursor % devices:04d}","temperature":'
                               f'{40 + (cursor % 17):.1f}}}')  # fmt: skip
                cursor += 1
            pool.submit(ingest.post, records)
            tick += 1
            delay = start + tick / 10 - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"samples": 0}
    ordered = sorted(values)
    return {
        "samples": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[int(len(ordered) * 0.90) - 1], 1),
        "p99_ms": round(ordered[max(int(len(ordered) * 0.99) - 1, 0)], 1),
        "max_ms": round(ordered[-1], 1),
    }


def _probes(ingest: Ingest, receiver: Receiver, *, rules: int, count: int) -> dict:
    firing, resolved, missed = [], [], 0
    calls, after_response = [], []  # the ingest call's own duration; from its response to the webhook
    probe_devices = range(rules - min(PROBE_DEVICES, rules // 2), rules)
    for number in range(count):
        device = f"d{probe_devices[number % len(probe_devices)]:04d}"
        started = time.time()
        ingest.post([f'{{"time":"{_stamp()}","device":"{device}","temperature":95}}'])
        answered = time.time()
        arrived = receiver.wait(device, "firing", started)
        if arrived is None:
            missed += 1
            continue
        firing.append((arrived - started) * 1000)
        calls.append((answered - started) * 1000)
        after_response.append((arrived - answered) * 1000)
        started = time.time()
        ingest.post([f'{{"time":"{_stamp()}","device":"{device}","temperature":50}}'])
        arrived = receiver.wait(device, "resolved", started)
        if arrived is None:
            missed += 1
            continue
        resolved.append((arrived - started) * 1000)
        time.sleep(0.2)
    return {
        "firing": _percentiles(firing),
        "resolved": _percentiles(resolved),
        "missed": missed,
        "firing_ingest_call": _percentiles(calls),
        "firing_after_ingest_response": _percentiles(after_response),
    }


def _evaluation_cost(environment: dict[str, str]) -> dict:
    """Rule-instances evaluated per second in one process: per-machine rules, then grouped rules."""
    script = """
import json, time
from apps.access.models import Organization
from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate
from apps.alerts.alerting.services import alert_rule_create
from apps.alerts.models import AlertRule
from django.contrib.auth import get_user_model
ids = list(AlertRule.objects.order_by('id').values_list('id', flat=True))
def measure(rule_ids):
    instances = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for rule_id in rule_ids:
        instances += alert_rule_evaluate(rule_id=rule_id).instances
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {'rules': len(rule_ids), 'instances': instances, 'seconds': round(wall, 3),
             'instances_per_second': round(instances / wall, 1), 'process_cpu_share': round(cpu / wall, 2)}
measure(ids[:20])  # warm
single = measure(ids)
o = Organization.objects.get(slug='bench'); u = get_user_model().objects.get(username='operator')
grouped_ids = [alert_rule_create(organization=o, owner=u, data={
    'name': f'fleet {n}', 'query': {'source': 'bench', 'metric': 'temperature', 'aggregation': 'last',
    'filters': {'device': {'regex': f'^d0{n}[0-9][0-9]$'}}, 'group_by': ['device']},
    'condition': {'type': 'threshold', 'op': '>', 'value': 90}, 'interval': '1h'}).id for n in range(9)]
grouped = measure(grouped_ids)
print(json.dumps({'per_machine_rules': single, 'grouped_rules': grouped}))
"""
    return json.loads(manage(environment, "shell", "-c", script).strip().splitlines()[-1])


def run(*, quick: bool = False) -> dict:
    """Detection latency (ingest call -> webhook) with 1,000 rules and 10,000 points/s, and evaluation cost."""
    rules = 60 if smoke() else 1_000
    points_per_second = 1_000 if smoke() else 10_000
    probes = 3 if smoke() else 40 if quick else 150
    environment = prod_environment(
        database=BENCH_DATABASE, redis_db=REDIS_DB, ALERTS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true",
        # Pub/sub channels are shared by every Redis database: not another deployment's change messages.
        REDIS_KEY_PREFIX="analytics-bench-alerting",
        INGEST_MAX_IN_FLIGHT="16",
    )  # fmt: skip
    receiver = Receiver()
    _log(f"preparing database with {rules} rules")
    key = _prepare(environment, rules=rules, webhook=receiver.url)
    port = _port()
    processes = _start(environment, port)
    ingest = Ingest(port, key)
    stop = threading.Event()
    background = threading.Thread(
        target=_background,
        kwargs={"ingest": ingest, "devices": rules - min(PROBE_DEVICES, rules // 2),
                "points_per_second": points_per_second, "stop": stop},
    )  # fmt: skip
    try:
        background.start()
        time.sleep(1 if smoke() else 5)  # background load settles
        started = time.time()
        points_before = ingest.points
        _log(f"{probes} probes under {points_per_second} points/s")
        latency = _probes(ingest, receiver, rules=rules, count=probes)
        elapsed = time.time() - started
        background_rate = (ingest.points - points_before) / elapsed
    finally:
        stop.set()
        background.join()
        _stop(processes)
        receiver.server.shutdown()
    _log("evaluation cost")
    cost = _evaluation_cost(environment)
    return {
        "database": database_versions(environment["DATABASE_URL"]),
        "rules": rules,
        "background_points_per_second_target": points_per_second,
        "background_points_per_second_achieved": round(background_rate),
        "ingest_failures": len(ingest.failures),
        "latency": "from the start of the breaching point's HTTP ingest call to the webhook's arrival",
        "detection": latency,
        "target_p99_ms": 1000,
        "evaluation_cost": cost,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
