"""`manage.py serve`: several daphne processes on one socket, restarted when they die, metrics summed over them."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from analytics_platform.web_processes import (
    CONNECTIONS_FULL,
    WebProcesses,
    WebProcessesFailed,
    default_process_count,
    listening_socket,
)
from tests.conftest import REPO_ROOT, free_port, server_environment
from tests.platform.test_metrics import _sample
from tests.waiting import wait_for


def _get(port: int, path: str) -> tuple[int, str]:
    """One request on a new connection (so the kernel picks the process that accepts it).

    serve listens before its processes have started, so a request waits in the backlog until one accepts it.
    """
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        client.request("GET", path)
        response = client.getresponse()
        return response.status, response.read().decode()
    finally:
        client.close()


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _pings_counted(port: int) -> float:
    status, text = _get(port, "/metrics")
    assert status == 200
    return _sample(text, "analytics_http_requests_total", method="GET", view="influx-ping", status="204") or 0


@pytest.mark.django_db(transaction=True)
def test_processes_share_the_port_are_restarted_and_their_counters_are_summed():
    port = free_port()
    launcher = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", "127.0.0.1", "--port", str(port), "--processes", "2"],
        cwd=REPO_ROOT,
        env=server_environment(database_name=connection.settings_dict["NAME"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: len(_children(launcher.pid)) == 2, timeout=30, what="two web processes")
        first, second = _children(launcher.pid)
        metrics_directory = dict(
            item.split("=", 1) for item in Path(f"/proc/{first}/environ").read_text().split("\0") if "=" in item
        )["PROMETHEUS_MULTIPROC_DIR"]
        assert _get(port, "/ping")[0] == 204
        pings = 1
        # While one process is stopped only the other can accept, so each answers five requests on its own.
        for stopped in (first, second):
            os.kill(stopped, signal.SIGSTOP)
            try:
                for _ in range(5):
                    assert _get(port, "/ping")[0] == 204
                    pings += 1
            finally:
                os.kill(stopped, signal.SIGCONT)
        # Whichever process answers the scrape, it counts what both did.
        assert _pings_counted(port) == pings
        assert _pings_counted(port) == pings

        os.kill(first, signal.SIGKILL)
        wait_for(
            lambda: first not in _children(launcher.pid) and len(_children(launcher.pid)) == 2,
            timeout=30,
            what="the killed process replaced",
        )
        assert _get(port, "/ping")[0] == 204
        pings += 1
        # The dead process's requests still count: its file stays in the directory.
        assert _pings_counted(port) >= pings
        survivors = _children(launcher.pid)
    finally:
        launcher.send_signal(signal.SIGTERM)
        output = launcher.communicate(timeout=40)[0].decode()
    assert launcher.returncode == 0, output
    assert "2 daphne process(es)" in output
    assert "exited with -9" in output
    for pid in survivors:
        assert not Path(f"/proc/{pid}").exists(), f"web process {pid} outlived serve"
    assert not Path(metrics_directory).exists()


def test_process_count_comes_from_web_processes_or_the_cores(monkeypatch):
    monkeypatch.setenv("WEB_PROCESSES", "3")
    assert default_process_count() == 3
    monkeypatch.setenv("WEB_PROCESSES", "0")
    with pytest.raises(ValueError, match="at least 1"):
        default_process_count()
    monkeypatch.setenv("WEB_PROCESSES", "two")
    with pytest.raises(ValueError, match="whole number, not 'two'"):
        default_process_count()
    monkeypatch.delenv("WEB_PROCESSES")
    assert default_process_count() == len(os.sched_getaffinity(0))


def test_serve_refuses_a_port_in_use_a_count_below_one_and_ipv6():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"Cannot listen on 127.0.0.1:{port}"):
            call_command("serve", "--port", str(port), "--processes", "1")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("serve", "--processes", "0")
    with pytest.raises(CommandError, match="IPv4 only"):
        call_command("serve", "--bind", "::1", "--processes", "1")


def test_a_process_that_keeps_dying_at_start_stops_serve_with_the_reason():
    # daphne refuses an unknown option at once, as it would a broken setting: restarted twice, then given up.
    sock = listening_socket("127.0.0.1", 0)
    server = WebProcesses(
        sock=sock, count=1, daphne_arguments=["--no-such-option"], give_up_after=3, first_pause_seconds=0.05
    )
    server.start()
    first = server.pids()[0]
    try:
        with pytest.raises(WebProcessesFailed, match="exited with 2 within 10 s of its start 3 times in a row"):
            server.watch(poll_seconds=0.05)
        assert server.pids()[0] != first  # it was started again before serve gave up
    finally:
        server.stop()
        sock.close()


def _established(pids: list[int], port: int) -> list[int]:
    """How many established connections to `port` each process holds: its socket fds in the kernel's TCP table."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # local port, ESTABLISHED
            inodes.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in pids:
        held = 0
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                held += os.readlink(descriptor) in inodes
        counts.append(held)
    return counts


def test_connections_opened_at_once_are_split_evenly_between_the_processes():
    """Four agents connecting at the same moment get two processes each, every time, not 3:1 or 4:0."""
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = WebProcesses(
        sock=sock, count=2, environment=server_environment(database_name=connection.settings_dict["NAME"])
    )
    server.start()
    try:
        wait_for(lambda: CONNECTIONS_FULL not in server.connections(), timeout=60, what="both processes counting")
        for attempt in range(5):
            barrier = threading.Barrier(4)
            clients: list[socket.socket] = []

            def connect(barrier: threading.Barrier = barrier, clients: list = clients) -> None:
                barrier.wait()
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))

            threads = [threading.Thread(target=connect) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wait_for(lambda: sum(_established(server.pids(), port)) == 4, timeout=10, what="four connections taken")
            assert sorted(_established(server.pids(), port)) == [2, 2], f"attempt {attempt}"
            wait_for(lambda: server.connections() == [2, 2], timeout=5, what="the counts published")
            for client in clients:
                client.close()
            wait_for(lambda: server.connections() == [0, 0], timeout=5, what="closed connections no longer counted")
        # A stopped process holds fewer connections but takes none: the other stops waiting for it and takes them.
        stopped, running = server.pids()
        os.kill(stopped, signal.SIGSTOP)
        try:
            clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
            wait_for(lambda: _established([running], port) == [3], timeout=5, what="the running process taking all")
            for client in clients:
                client.close()
        finally:
            os.kill(stopped, signal.SIGCONT)
    finally:
        server.stop()
        sock.close()
