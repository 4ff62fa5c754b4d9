"""Several daphne processes on one listening socket, so HTTP and WebSocket work uses every core.

One daphne runs each request's Python under one GIL: at full ingest load a 2-core machine sat 15-20 % idle with
one process and 5-9 % with two (docs/ingestion.md). So `python manage.py serve` binds the socket itself and
starts `--processes` daphne children (default: WEB_PROCESSES, else the cores this process may use) that each
adopt it with daphne's `--fd`. The kernel hands each new connection to whichever child accepts it first; the
children (analytics_platform.web_child) publish their open connections in a file beside the metrics (below)
and leave a waiting connection to a child that holds fewer, so a few agents connecting at once split evenly.

Nothing a request needs lives only in one process: sessions, caches, channel groups, change events and rate
limits are in PostgreSQL or Redis, and the in-process caches (write keys, source settings, series ids) expire
on their own. Prometheus counters are the exception, so the children write them to files in one fresh
directory (prometheus_client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR) and /metrics sums them
(analytics_platform.metrics). The directory is made per start and removed at exit, so a restart counts from
zero as a single process would.

A child that dies is started again, after a pause that doubles while it keeps dying young; one that dies young
`give_up_after` times in a row (a broken setting or import) stops them all and `serve` exits with an error, so a
process manager sees the failure. SIGTERM or SIGINT stops them all, politely and then by force.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

ASGI_APPLICATION = "analytics_platform.asgi:application"
# How the children balance connections (analytics_platform.web_child): a file of one count per process.
CONNECTIONS_FILE_VARIABLE = "WEB_CONNECTIONS_FILE"
SLOT_VARIABLE = "WEB_PROCESS_SLOT"
CONNECTIONS_SLOT = struct.Struct("<I")  # one unsigned 32-bit count of open connections per process
CONNECTIONS_FULL = 2**32 - 1  # the slot of a process that is not accepting (starting, or dead)
# A child that lived shorter than this counts as dying young: the next start waits twice as long as the last.
_YOUNG_SECONDS = 10.0
_STOP_GRACE_SECONDS = 20.0


class WebProcessesFailed(Exception):
    """A web process kept dying right after its start (a broken setting or import): give up, say so."""


def default_process_count() -> int:
    """WEB_PROCESSES if set, else the number of cores this process may run on."""
    configured = os.environ.get("WEB_PROCESSES", "").strip()
    if configured:
        try:
            count = int(configured)
        except ValueError:
            raise ValueError(f"WEB_PROCESSES must be a whole number, not {configured!r}.") from None
        if count < 1:
            raise ValueError(f"WEB_PROCESSES must be at least 1, not {count}.")
        return count
    return len(os.sched_getaffinity(0))


def listening_socket(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """An IPv4 TCP socket bound and listening, inheritable by children.

    IPv4 only: daphne adopts an inherited socket as IPv4 whatever it is (its `fd:` endpoint takes no other
    family), which garbles IPv6 peers' addresses. Serve IPv6 through the proxy in front.
    """
    if ":" in host:
        raise ValueError(f"{host!r} is an IPv6 address; serve listens on IPv4 only (put the proxy in front on IPv6).")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


@dataclass
class _Child:
    slot: int
    process: subprocess.Popen
    started_at: float
    young_deaths: int = 0


@dataclass
class WebProcesses:
    """Start, watch and stop `count` daphne children sharing `sock`."""

    sock: socket.socket
    count: int
    daphne_arguments: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    give_up_after: int = 5
    first_pause_seconds: float = 0.5
    _children: dict[int, _Child] = field(default_factory=dict, init=False)
    _metrics_directory: Path | None = field(default=None, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)

    def start(self) -> None:
        self._metrics_directory = Path(tempfile.mkdtemp(prefix="analytics-metrics-"))
        # prometheus_client reads only *.db files there, so the connection counts can live beside them. A slot
        # reads "full" until its process starts counting, so that no other process waits for one that cannot accept.
        self.connections_file.write_bytes(CONNECTIONS_SLOT.pack(CONNECTIONS_FULL) * self.count)
        for slot in range(self.count):
            self._children[slot] = self._spawn(slot, young_deaths=0)

    @property
    def connections_file(self) -> Path:
        return self._metrics_directory / "connections"

    def connections(self) -> list[int]:
        """The open connections each process last published (tests and diagnostics)."""
        return [count for (count,) in CONNECTIONS_SLOT.iter_unpack(self.connections_file.read_bytes())]

    def _connections_full(self, slot: int) -> None:
        with open(self.connections_file, "r+b") as handle:
            handle.seek(slot * CONNECTIONS_SLOT.size)
            handle.write(CONNECTIONS_SLOT.pack(CONNECTIONS_FULL))

    def _spawn(self, slot: int, *, young_deaths: int) -> _Child:
        fd = self.sock.fileno()
        environment = {**self.environment, "PROMETHEUS_MULTIPROC_DIR": str(self._metrics_directory)}
        if self.count > 1:
            environment.update({CONNECTIONS_FILE_VARIABLE: str(self.connections_file), SLOT_VARIABLE: str(slot)})
        process = subprocess.Popen(  # noqa: S603 (our own interpreter running daphne with fixed arguments)
            [sys.executable, "-m", "analytics_platform.web_child", "--fd", str(fd), *self.daphne_arguments,
             ASGI_APPLICATION],
            env=environment,
            pass_fds=(fd,),
        )  # fmt: skip
        logger.info("web process %d started (pid %d)", slot, process.pid)
        return _Child(slot=slot, process=process, started_at=time.monotonic(), young_deaths=young_deaths)

    def pids(self) -> list[int]:
        return [child.process.pid for child in self._children.values()]

    def watch(self, *, poll_seconds: float = 0.5) -> None:
        """Restart children that exit until stop() is called; WebProcessesFailed when one keeps dying young."""
        while not self._stopping.wait(poll_seconds):
            for slot, child in list(self._children.items()):
                code = child.process.poll()
                if code is None or self._stopping.is_set():
                    continue
                self._connections_full(slot)  # until its successor counts, nobody should leave connections to it
                lived = time.monotonic() - child.started_at
                young_deaths = child.young_deaths + 1 if lived < _YOUNG_SECONDS else 0
                if young_deaths >= self.give_up_after:
                    raise WebProcessesFailed(
                        f"web process {slot} exited with {code} within {_YOUNG_SECONDS:.0f} s of its start "
                        f"{young_deaths} times in a row; its output above says why"
                    )
                pause = self.first_pause_seconds * 2 ** (young_deaths - 1) if young_deaths else 0.0
                logger.error(
                    "web process %d (pid %d) exited with %s after %.1f s; starting another in %.1f s",
                    slot, child.process.pid, code, lived, pause,
                )  # fmt: skip
                if self._stopping.wait(pause):
                    return
                self._children[slot] = self._spawn(slot, young_deaths=young_deaths)

    def request_stop(self) -> None:
        """Make watch() return (safe from a signal handler); then call stop()."""
        self._stopping.set()

    def stop(self) -> None:
        """Stop every child (SIGTERM, then SIGKILL after a grace period) and remove the metrics directory."""
        self._stopping.set()
        for child in self._children.values():
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for child in self._children.values():
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if self._metrics_directory is not None:
            shutil.rmtree(self._metrics_directory, ignore_errors=True)
