"""Live dashboards end to end: from the HTTP ingest call to the WebSocket message in a client.

The factory of the product brief: 10,000 sensors at 1 Hz stream in through POST /api/v1/sources/<slug>/ingest
(10 batches a second of 1,000 points, each sensor once a second) while 40 clients watch dashboards over
/ws/live/ (Bearer token on the upgrade). 30 clients watch dashboard 1 (three panels over every sensor), 10
watch dashboard 2 (two panels of one facility); each also watches one device of its own (raw points) and the
probe panel.

Latency: every batch carries one extra "probe" point whose value is the batch's sequence number; every client
subscribes to the raw probe series, so each arrival gives the time from the start of that batch's HTTP call
(the batch is committed as one transaction, so all its points share it) to the data message in the client.
A second phase sends batches as fast as the server takes them (saturation) and counts delivered messages.

Production setup: `manage.py serve` with prod settings (BENCH_LIVE_WEB_PROCESSES daphne processes on one port,
default 1, sharing clients and ingest as the kernel and serve's balance split them; with BENCH_LIVE_SPLIT=1 one
`serve` of one process takes the ingest calls and a second `serve` with the rest holds the WebSockets), own
database, Redis db 9. BENCH_LIVE_DASHBOARDS=0 leaves
the dashboard panels out (probe and per-client device panels only), to separate the fan-out from the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import websockets

from bench import smoke
from bench.django_server import database_drop, database_versions, manage, prod_environment
from bench.influx import process_cpu_seconds
from bench.ingest import _database_cpu_seconds, _start_web

BENCH_DATABASE = "analytics_bench_live"
SENSORS = 10_000
FACILITIES = 5
BATCHES_PER_SECOND = 10
BATCH_POINTS = SENSORS // BATCHES_PER_SECOND
CLIENTS = 40
DASHBOARD_1 = [
    {"source": "bench", "metric": "temperature", "aggregation": "avg", "group_by": ["facility"], "start": "-15m",
     "bucket": "10s"},
    {"source": "bench", "metric": "temperature", "aggregation": "max", "group_by": ["facility"], "start": "-1h"},
    {"source": "bench", "metric": "temperature", "aggregation": "count", "group_by": ["facility"], "start": "-5m",
     "bucket": "1s"},
]  # fmt: skip
DASHBOARD_2 = [
    {"source": "bench", "metric": "temperature", "aggregation": "avg", "filters": {"facility": "f1"},
     "group_by": ["facility"], "start": "-15m", "bucket": "1s"},
    {"source": "bench", "metric": "temperature", "aggregation": "p95", "filters": {"facility": "f1"},
     "group_by": ["facility"], "start": "-5m", "bucket": "10s"},
]  # fmt: skip
PROBE = {"source": "bench", "metric": "probe", "aggregation": "raw", "start": "-5m"}


def _log(message: str) -> None:
    print(f"[bench live] {message}", file=sys.stderr, flush=True)


def _prepare(environment: dict[str, str]) -> tuple[str, str]:
    """A fresh database, an organisation with a source and a (non-superuser) member; returns (token, write key)."""
    database_drop(environment["DATABASE_URL"])
    manage(environment, "check_services", "--create-database")
    manage(environment, "migrate", "--noinput")
    script = (
        "from django.contrib.auth import get_user_model; "
        "from apps.access.models import Membership, Organization; "
        "from apps.access.services import api_token_create; from apps.sources.services import source_create; "
        "o, _ = Organization.objects.get_or_create(slug='bench', defaults={'name': 'Bench'}); "
        "s, key = source_create(organization=o, name='Bench', slug='bench'); "
        "u = get_user_model().objects.create_user(username='watcher', password='x' * 20); "
        "Membership.objects.create(organization=o, user=u, role='viewer'); "
        "t, raw = api_token_create(user=u, name='live'); print(raw); print(key)"
    )
    lines = manage(environment, "shell", "-c", script).strip().splitlines()
    return lines[-2], lines[-1]


class Ingest:
    """Sends batches of the factory's readings; remembers when each batch's HTTP call started."""

    def __init__(self, *, ports: list[int], key: str) -> None:
        self.ports = ports
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.sent: dict[int, float] = {}
        self.answered: dict[int, float] = {}  # when each batch's HTTP response came back
        self.durations: list[float] = []
        self.failures: list[str] = []
        self.sequence = 0
        self.points = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        # Record prefixes built once: a body is then a join with this second's time and values.
        self._devices = [
            f'"device":"d{index:05d}","facility":"f{index % FACILITIES + 1}","temperature":' for index in range(SENSORS)
        ]

    def _body(self, sequence: int, second: int) -> bytes:
        part = sequence % BATCHES_PER_SECOND
        stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        records = [
            f'{{"time":"{stamp}",{prefix}{20 + (index % 17) * 0.5 + (second % 60) * 0.01:.2f}}}'
            for index, prefix in enumerate(
                self._devices[part * BATCH_POINTS : (part + 1) * BATCH_POINTS], start=part * BATCH_POINTS
            )
        ]
        probe_time = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        records.append(f'{{"time":"{probe_time}","device":"probe","probe":{sequence}}}')
        return ("[" + ",".join(records) + "]").encode()

    def send_one(self) -> None:
        with self._lock:
            sequence = self.sequence
            self.sequence += 1
        connection = getattr(self._local, "connection", None)
        if connection is None:
            port = self.ports[threading.get_ident() % len(self.ports)]
            connection = self._local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        # Each sensor reports once a second: batch k carries sensors (k mod 10) * 1,000 ... of its second.
        body = self._body(sequence, int(time.time()))
        started = time.time()
        with self._lock:
            self.sent[sequence] = started
        try:
            connection.request("POST", "/api/v1/sources/bench/ingest", body=body, headers=self.headers)
            response = connection.getresponse()
            text = response.read()
        except OSError as error:
            self._local.connection = None
            self.failures.append(str(error))
            return
        answered = time.time()
        with self._lock:
            self.answered[sequence] = answered
            self.durations.append((answered - started) * 1000)
            if response.status != 200:
                self.failures.append(f"{response.status}: {text[:200]!r}")
            else:
                self.points += BATCH_POINTS + 1

    def paced(self, seconds: float, stop: threading.Event) -> None:
        """BATCHES_PER_SECOND batches a second on a fixed schedule (late batches are not made up for)."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            start = time.monotonic()
            tick = 0
            while not stop.is_set() and time.monotonic() - start < seconds:
                pool.submit(self.send_one)
                tick += 1
                delay = start + tick / BATCHES_PER_SECOND - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def flat_out(self, seconds: float, senders: int = 4) -> None:
        """As fast as the server takes them, from `senders` keep-alive connections."""
        deadline = time.monotonic() + seconds

        def sender() -> None:
            while time.monotonic() < deadline:
                self.send_one()

        threads = [threading.Thread(target=sender) for _ in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


class Clients:
    """40 WebSocket clients; records probe latencies and counts delivered data messages."""

    def __init__(self, *, ports: list[int], token: str, ingest: Ingest) -> None:
        self.ports = ports
        self.token = token
        self.ingest = ingest
        self.latencies: list[tuple[float, float]] = []  # (arrival, milliseconds)
        # (arrival, probe sequence, client), for the time from the ingest call's response to the message
        self.arrivals: list[tuple[float, int, int]] = []
        self.messages: list[float] = []  # arrival of every non-initial data message
        self.points = 0
        self.errors: list[str] = []
        self.crashes: list[str] = []
        self.ready = 0

    def _panels(self, number: int) -> list[dict]:
        dashboard = DASHBOARD_1 if number < 30 else DASHBOARD_2
        if os.environ.get("BENCH_LIVE_DASHBOARDS", "1") == "0":
            dashboard = []  # diagnosis: only the probe and the per-client device panel
        own = {"source": "bench", "metric": "temperature", "aggregation": "raw",
               "filters": {"device": f"d{number * 250:05d}"}, "start": "-5m"}  # fmt: skip
        return [PROBE, *dashboard, own]

    async def client(self, number: int, stop: asyncio.Event) -> None:
        try:
            await self._client(number, stop)
        except Exception as error:  # a client that stops early would otherwise only show as missing deliveries
            self.crashes.append(f"client {number} at {time.time():.1f}: {error!r}")
            raise

    async def _client(self, number: int, stop: asyncio.Event) -> None:
        url = f"ws://127.0.0.1:{self.ports[number % len(self.ports)]}/ws/live/"
        seen: set[int] = set()
        async with websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {self.token}"}, max_size=2**24
        ) as socket:
            await socket.recv()
            panels = self._panels(number)
            for index, query in enumerate(panels):
                await socket.send(json.dumps({"type": "subscribe", "id": f"panel-{index}", "query": query}))
            initial = 0
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(socket.recv(), 0.5)
                except TimeoutError:
                    continue
                arrival = time.time()
                message = json.loads(raw)
                if message["type"] == "error":
                    self.errors.append(message["message"])
                    continue
                if message["type"] != "data":
                    continue
                if message.get("initial"):
                    initial += 1
                    if initial == len(panels):  # every panel's snapshot is in
                        self.ready += 1
                    continue
                self.messages.append(arrival)
                for series in message["series"]:
                    self.points += len(series["points"])
                if message["id"] != "panel-0":
                    continue
                for _, value in message["series"][0]["points"]:
                    sequence = int(value)
                    sent = self.ingest.sent.get(sequence)
                    if sequence in seen or sent is None:
                        continue
                    seen.add(sequence)
                    self.latencies.append((arrival, (arrival - sent) * 1000))
                    self.arrivals.append((arrival, sequence, number))


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


def _phase(clients: Clients, ingest: Ingest, start: float, end: float) -> dict:
    latencies = [ms for arrival, ms in clients.latencies if start <= arrival < end]
    messages = sum(1 for arrival in clients.messages if start <= arrival < end)
    # The part after the ingest call: from its HTTP response to each client's message (negative when the message
    # overtakes the response: the change is published at commit, before the response is written).
    after = [
        (arrival - ingest.answered[sequence]) * 1000
        for arrival, sequence, _ in clients.arrivals
        if start <= arrival < end and sequence in ingest.answered
    ]
    # Every probe point should reach every client: count the (batch, client) deliveries that never came.
    batches = [sequence for sequence, sent in ingest.sent.items() if start <= sent < end - 1.0]
    counts: dict[int, int] = {}
    per_client: dict[int, set[int]] = {number: set() for number in range(CLIENTS)}
    for _, sequence, number in clients.arrivals:
        counts[sequence] = counts.get(sequence, 0) + 1
        per_client[number].add(sequence)
    missing = sum(CLIENTS - counts.get(sequence, 0) for sequence in batches)
    missing_by_client = sorted((len(set(batches) - got) for got in per_client.values()), reverse=True)
    return {
        "probe_latency": _percentiles(latencies),
        "probe_deliveries_missing": {
            "batches": len(batches),
            "batches_reaching_no_client": sum(1 for sequence in batches if sequence not in counts),
            "deliveries_missing": missing,
            "most_missed_by_one_client": missing_by_client[:5],
        },
        "probe_after_ingest_response": _percentiles(after),
        "delivered_messages_per_second": round(messages / (end - start)),
    }


async def _scenario(*, ports: list[int], token: str, ingest: Ingest, paced_seconds: float, flat_seconds: float,
                    servers: list[WebServer], database_url: str) -> dict:  # fmt: skip
    clients = Clients(ports=ports, token=token, ingest=ingest)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stop_ingest = threading.Event()
    # Every sensor once, so the panels' metrics exist before anyone subscribes.
    await loop.run_in_executor(None, ingest.paced, 1.0, stop_ingest)
    if ingest.failures:
        raise RuntimeError(f"ingest failed: {ingest.failures[0]}")
    tasks = [asyncio.create_task(clients.client(number, stop)) for number in range(CLIENTS)]
    result: dict = {}
    try:
        # Warm-up: the series exist and every feed has seen them before the clock starts.
        warmup = loop.run_in_executor(None, ingest.paced, 3.0, stop_ingest)
        deadline = time.monotonic() + 60
        while clients.ready < CLIENTS and time.monotonic() < deadline:
            if clients.errors:
                raise RuntimeError(f"subscription refused: {clients.errors[0]}")
            await asyncio.sleep(0.1)
        await warmup
        _log(f"{clients.ready} clients subscribed; paced phase {paced_seconds:.0f} s")
        cpu = [process_cpu_seconds(pid) for server in servers for pid in server.pids]
        database_cpu = _database_cpu_seconds(database_url)
        points_before, durations_before = ingest.points, len(ingest.durations)
        delivered_before = clients.points
        start = time.time()
        await loop.run_in_executor(None, ingest.paced, paced_seconds, stop_ingest)
        await asyncio.sleep(1.0)  # the last batches' messages
        end = time.time()
        paced = _phase(clients, ingest, start, end - 1.0)
        paced["ingested_points_per_second"] = round((ingest.points - points_before) / (end - 1.0 - start))
        paced["ingest_call_ms"] = _percentiles(ingest.durations[durations_before:])
        paced["delivered_points_per_second"] = round((clients.points - delivered_before) / (end - 1.0 - start))
        web_cpu = sum(process_cpu_seconds(pid) for server in servers for pid in server.pids) - sum(cpu)
        paced["web_cpu_seconds_per_second"] = round(web_cpu / (end - start), 2)
        paced["postgres_cpu_seconds_per_second"] = round(
            (_database_cpu_seconds(database_url) - database_cpu) / (end - start), 2
        )
        result["paced"] = paced
        _log(f"paced: {paced['probe_latency']}")
        if flat_seconds:
            _log(f"saturation phase {flat_seconds:.0f} s")
            points_before, durations_before = ingest.points, len(ingest.durations)
            messages_points = clients.points
            start = time.time()
            await loop.run_in_executor(None, ingest.flat_out, flat_seconds)
            await asyncio.sleep(1.0)
            end = time.time()
            flat = _phase(clients, ingest, start, end - 1.0)
            flat["ingested_points_per_second"] = round((ingest.points - points_before) / (end - 1.0 - start))
            flat["ingest_call_ms"] = _percentiles(ingest.durations[durations_before:])
            flat["delivered_points_per_second"] = round((clients.points - messages_points) / (end - 1.0 - start))
            result["saturation"] = flat
            _log(f"saturation: {flat['probe_latency']}")
        if ingest.failures:
            result["ingest_failures"] = {"count": len(ingest.failures), "first": ingest.failures[0]}
        if clients.errors:
            result["subscription_errors"] = {"count": len(clients.errors), "first": clients.errors[0]}
        if clients.crashes:
            result["client_crashes"] = {"count": len(clients.crashes), "first": clients.crashes[:3]}
    finally:
        stop_ingest.set()
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
    return result


@dataclass(frozen=True)
class WebServer:
    """One `manage.py serve`: its launcher, the port its daphne children share, and their pids (for CPU)."""

    launcher: subprocess.Popen
    port: int
    pids: list[int]


def _servers_start(environment: dict[str, str], processes: int, *, split: bool) -> list[WebServer]:
    """One `serve` with every process, or (split) one of one process for ingest and one with the rest."""
    counts = [1, processes - 1] if split else [processes]
    servers: list[WebServer] = []
    try:
        for count in counts:
            servers.append(WebServer(*_start_web(environment, count)))
    except BaseException:
        for server in servers:
            server.launcher.terminate()
        raise
    return servers


def run(*, quick: bool = False) -> dict:
    """Probe latency (ingest call -> WebSocket message) at 10,000 points/s with 40 clients, then saturation."""
    web_processes = int(os.environ.get("BENCH_LIVE_WEB_PROCESSES", "1"))
    paced_seconds = 2.0 if smoke() else 15.0 if quick else 60.0
    flat_seconds = 1.0 if smoke() else 5.0 if quick else 20.0
    # One token opens every simulated viewer's socket: lift the per-user cap (20 in production).
    environment = prod_environment(
        database=BENCH_DATABASE, redis_db=9, INGEST_MAX_IN_FLIGHT="16", WEBSOCKET_MAX_CONNECTIONS_PER_USER="100000"
    )
    _log("preparing database")
    token, key = _prepare(environment)
    # BENCH_LIVE_SPLIT=1 (with 2+ processes): one `serve` process takes the ingest calls and another `serve` with
    # the rest holds the WebSockets, as a deployment routing /ws/ and the write API to different servers would.
    split = os.environ.get("BENCH_LIVE_SPLIT", "0") == "1" and web_processes > 1
    servers = _servers_start(environment, web_processes, split=split)
    ingest = Ingest(ports=[servers[0].port], key=key)
    try:
        measured = asyncio.run(
            _scenario(ports=[servers[-1].port], token=token, ingest=ingest, paced_seconds=paced_seconds,
                      flat_seconds=flat_seconds, servers=servers, database_url=environment["DATABASE_URL"])
        )  # fmt: skip
    finally:
        for server in servers:
            server.launcher.terminate()
            server.launcher.wait(timeout=20)
    return {
        "database": database_versions(environment["DATABASE_URL"]),
        "sensors": SENSORS,
        "batches_per_second": BATCHES_PER_SECOND,
        "batch_points": BATCH_POINTS + 1,
        "clients": CLIENTS,
        "panels_per_client": len(DASHBOARD_1) + 2,
        "web_processes": web_processes,
        "ingest_and_websockets_split": split,
        "latency": "from the start of a batch's HTTP ingest call to the data message carrying its probe point",
        "target_p99_ms": 250,
        **measured,
        "load_average": os.getloadavg(),
    }
