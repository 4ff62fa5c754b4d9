"""API request latency through daphne with production settings: session auth (reference) vs API token."""

from __future__ import annotations

import http.client
import socket
import statistics
import subprocess
import sys
import threading
import time

from bench import smoke
from bench.django_server import REPO_ROOT, database_versions, manage, prod_environment

BENCH_DATABASE = "analytics_bench"


def _prepare(environment: dict[str, str]) -> tuple[str, str]:
    """Create the database, migrate, and return (token, session id) for a bench user."""
    manage(environment, "check_services", "--create-database")
    manage(environment, "migrate", "--noinput")
    script = (
        "from django.contrib.auth import get_user_model; from django.test import Client; "
        "from apps.access.services import api_token_create; "
        "u, _ = get_user_model().objects.get_or_create(username='bench'); "
        "t, raw = api_token_create(user=u, name='bench'); c = Client(); c.force_login(u); "
        "print(raw); print(c.cookies['sessionid'].value)"
    )
    lines = manage(environment, "shell", "-c", script).strip().splitlines()
    return lines[-2], lines[-1]


def _wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("daphne exited early")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("daphne did not start")


def _measure(port: int, path: str, headers: dict[str, str], count: int) -> list[float]:
    """Sequential requests on one keep-alive connection; returns latencies in milliseconds."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
        latencies.append((time.perf_counter() - started) * 1000)
    connection.close()
    return latencies


def _throughput(port: int, path: str, headers: dict[str, str], clients: int, seconds: float) -> float:
    """Requests per second with several concurrent keep-alive clients."""
    done = [0] * clients
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop_at:
            connection.request("GET", path, headers=headers)
            connection.getresponse().read()
            done[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 3),
    }


def run(*, quick: bool = False) -> dict:
    """Measure GET /api/v1/me by session (reference) and by token, and GET /healthz."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    environment = prod_environment(database=BENCH_DATABASE, redis_db=14, WEB_PORT=str(port))
    token, session_id = _prepare(environment)
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "analytics_platform.asgi:application"],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    count = 20 if smoke() else 200 if quick else 2000
    try:
        _wait_listening(port, process)
        cases = {
            "me_session": ("/api/v1/me", {"Cookie": f"sessionid={session_id}"}),
            "me_token": ("/api/v1/me", {"Authorization": f"Bearer {token}"}),
            "healthz": ("/healthz", {}),
        }
        for path, headers in cases.values():
            _measure(port, path, headers, 5 if smoke() else 50)  # warm-up: connections, caches
        results = {}
        # Interleave rounds so machine noise hits every case alike.
        rounds = {name: [] for name in cases}
        for _ in range(5):
            for name, (path, headers) in cases.items():
                rounds[name].extend(_measure(port, path, headers, count // 5))
        for name, latencies in rounds.items():
            results[name] = _summary(latencies)
        seconds = 0.5 if smoke() else 3.0 if quick else 10.0
        results["me_token"]["throughput_8_clients_rps"] = round(
            _throughput(port, *cases["me_token"], clients=8, seconds=seconds), 1
        )
        results["me_session"]["throughput_8_clients_rps"] = round(
            _throughput(port, *cases["me_session"], clients=8, seconds=seconds), 1
        )
        results["database"] = database_versions(environment["DATABASE_URL"])
        results["reference"] = "me_session"
        results["ratio_token_to_session_median"] = round(
            results["me_token"]["median_ms"] / results["me_session"]["median_ms"], 3
        )
        return results
    finally:
        process.terminate()
        process.wait(timeout=10)
