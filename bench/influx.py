"""A throw-away InfluxDB 1.x for comparisons: started on free loopback ports in a temp dir, stopped and deleted after.

Only the Debian package's `influxd` binary is used; nothing is installed or started as a system service here.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlencode

INFLUXD = "influxd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def directory_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


class InfluxUnavailable(Exception):
    """influxd is missing or would not start; the message says why."""


class Influx:
    """An influxd process with its own config and data directory."""

    def __init__(self, *, cache_max_memory: str = "4g") -> None:
        if shutil.which(INFLUXD) is None:
            raise InfluxUnavailable(
                "influxd is not on PATH: install InfluxDB 1.x with `apt-get update && apt-get install -y influxdb`."
            )
        self.version = subprocess.run([INFLUXD, "version"], capture_output=True, text=True, check=False).stdout.strip()
        self.directory = Path(tempfile.mkdtemp(prefix="bench-influx-"))
        self.port = _free_port()
        self.config = {
            "cache-max-memory-size": cache_max_memory,
            "http": f"127.0.0.1:{self.port}",
            "index-version": "inmem",
        }
        config = self.directory / "influxdb.conf"
        config.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{_free_port()}"\n'
            f'[meta]\n  dir = "{self.directory / "meta"}"\n'
            f'[data]\n  dir = "{self.directory / "data"}"\n  wal-dir = "{self.directory / "wal"}"\n'
            f'  query-log-enabled = false\n  cache-max-memory-size = "{cache_max_memory}"\n'
            '  index-version = "inmem"\n'
            "[retention]\n  enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            "[subscriber]\n  enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
            f'[http]\n  enabled = true\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "  auth-enabled = false\n"
            '[logging]\n  level = "warn"\n'
        )
        self._log = (self.directory / "influxd.log").open("wb")
        self.process = subprocess.Popen(
            [INFLUXD, "run", "-config", str(config)], stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "influxd.log").read_text(errors="replace")[-2000:]
                raise InfluxUnavailable(f"influxd exited with {self.process.returncode}: {log}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/ping")
                if connection.getresponse().status == 204:
                    connection.close()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise InfluxUnavailable("influxd did not answer /ping within 60 s")

    def stop(self) -> None:
        """Stop influxd and delete its data."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def data_bytes(self) -> dict[str, int]:
        return {name: directory_bytes(self.directory / name) for name in ("data", "wal")}

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def query(self, connection: http.client.HTTPConnection, text: str, *, database: str = "bench") -> dict:
        """Run InfluxQL (GET /query, epoch seconds); raises on an error answer."""
        connection.request("GET", "/query?" + urlencode({"db": database, "q": text, "epoch": "s"}))
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"InfluxQL {text!r} answered {response.status}: {body[:500]!r}")
        document = json.loads(body)
        for statement in document.get("results", []):
            if "error" in statement:
                raise RuntimeError(f"InfluxQL {text!r} failed: {statement['error']}")
        return document

    def create_database(self, name: str) -> None:
        connection = self.connection()
        connection.request(
            "POST",
            "/query",
            body=urlencode({"q": f"CREATE DATABASE {name}"}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status != 200:
            raise RuntimeError(f"CREATE DATABASE answered {response.status}")

    def settle(self, *, max_seconds: float, idle_cpu_fraction: float = 0.05, idle_seconds: int = 3) -> float:
        """Wait until influxd is idle (compactions done) for `idle_seconds` in a row; returns seconds waited."""
        started = time.monotonic()
        quiet = 0
        previous = self.cpu_seconds()
        while time.monotonic() - started < max_seconds and quiet < idle_seconds:
            time.sleep(1)
            current = self.cpu_seconds()
            quiet = quiet + 1 if current - previous < idle_cpu_fraction else 0
            previous = current
        return time.monotonic() - started

    def load(
        self, bodies: Iterable[bytes], *, clients: int, database: str = "bench", on_batch: Callable | None = None
    ) -> dict:
        """POST line-protocol bodies (precision s) with `clients` concurrent keep-alive connections.

        `bodies` is consumed in this thread (so its generation cost is measured here as `producer_busy_seconds`);
        senders retry a 5xx answer (e.g. cache full) after a pause.
        """
        work: queue.Queue = queue.Queue(maxsize=clients * 2)
        latencies: list[float] = []
        failures: list[str] = []
        retries = [0]
        lock = threading.Lock()
        path = f"/write?{urlencode({'db': database, 'precision': 's'})}"

        def sender() -> None:
            connection = self.connection()
            while True:
                body = work.get()
                if body is None:
                    break
                for attempt in range(20):
                    started = time.perf_counter()
                    connection.request("POST", path, body=body, headers={"Content-Type": "text/plain"})
                    response = connection.getresponse()
                    answer = response.read()
                    if response.status == 204:
                        with lock:
                            latencies.append((time.perf_counter() - started) * 1000)
                        break
                    with lock:
                        retries[0] += 1
                    if response.status < 500 or attempt == 19:
                        with lock:
                            failures.append(f"{response.status}: {answer[:300]!r}")
                        break
                    time.sleep(0.5)
            connection.close()

        threads = [threading.Thread(target=sender, daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        server_cpu = self.cpu_seconds()
        client_cpu = self_cpu_seconds()
        started = time.perf_counter()
        busy = blocked = 0.0
        batches = 0
        tick = time.perf_counter()
        for body in bodies:
            produced = time.perf_counter()
            busy += produced - tick
            work.put(body)
            tick = time.perf_counter()
            blocked += tick - produced
            batches += 1
            if on_batch:
                on_batch(batches)
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"{len(failures)} InfluxDB writes failed, first: {failures[0]}")
        ordered = sorted(latencies)
        return {
            "wall_seconds": wall,
            "batches": batches,
            "retries": retries[0],
            "producer_busy_seconds": busy,
            "producer_blocked_seconds": blocked,
            "request_ms_p50": ordered[len(ordered) // 2] if ordered else None,
            "request_ms_p95": ordered[max(0, int(len(ordered) * 0.95) - 1)] if ordered else None,
            "server_cpu_seconds": self.cpu_seconds() - server_cpu,
            "client_cpu_seconds": self_cpu_seconds() - client_cpu,
        }
