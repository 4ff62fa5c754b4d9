"""Run the TimescaleDB backend tests against TimescaleDB on PGlite (`make test` runs this).

    .venv/bin/python -m tests.timescaledb [PYTEST ARGS...]   # start a server, run tests/timescaledb, stop it
    .venv/bin/python -m tests.timescaledb --serve            # just serve; prints DATABASE_URL; Ctrl-C stops

A throwaway PGlite database (PostgreSQL 17 + TimescaleDB, WebAssembly, from `npm ci`) is served on a free
port from a temporary data directory. DATABASE_URL and STORAGE_BACKEND=timescaledb are set before pytest
(and so Django) starts; tests/timescaledb/conftest.py migrates that database in place. The exit code is
pytest's.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.timescaledb import SESSION_FLAG

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = Path(__file__).with_name("pglite_server.mjs")
TESTS_DIR = Path(__file__).parent
START_TIMEOUT_SECONDS = 120


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("tests.timescaledb: node is not installed; it serves TimescaleDB on PGlite.")
    if not (REPO_ROOT / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
        raise SystemExit("tests.timescaledb: node_modules is missing; run `npm ci` (or `make install`).")
    return node


@contextmanager
def pglite_server(data_dir: Path, log_path: Path) -> Iterator[str]:
    """Serve a PGlite + TimescaleDB database from `data_dir`; yields its DATABASE_URL."""
    log = log_path.open("w")
    process = subprocess.Popen(
        [_node(), str(SERVER_SCRIPT), str(data_dir), "0"],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,  # the server stops when this closes, even if we are killed
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
            log.write(line)
            log.flush()
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        address = None
        while address is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"PGlite did not start within {START_TIMEOUT_SECONDS} s; see {log_path}") from None
            if line is None:
                raise RuntimeError(f"PGlite exited with code {process.wait()}:\n{log_path.read_text()}")
            if line.startswith("listening "):
                address = line.split()[1]
        yield f"postgres://postgres:pglite@{address}/postgres?sslmode=disable"
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        log.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    # Stop cleanly (server stopped, temporary directory removed) on Ctrl-C or kill, also when started in
    # the background, where SIGINT starts out ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    serve_only = argv[:1] == ["--serve"]
    work = Path(tempfile.mkdtemp(prefix="pglite-timescaledb-"))
    log_path = work / "server.log"
    started = time.monotonic()
    keep_log = False
    try:
        with pglite_server(work / "data", log_path) as url:
            print(f"TimescaleDB on PGlite at {url} (started in {time.monotonic() - started:.1f} s)", flush=True)
            if serve_only:
                print(f"DATABASE_URL={url} STORAGE_BACKEND=timescaledb; Ctrl-C stops.", flush=True)
                while True:
                    time.sleep(3600)
            environment = {
                **os.environ,
                "DATABASE_URL": url,
                # PGlite serves one connection at a time; a pool would hold two.
                "DATABASE_POOL_MAX_SIZE": "0",
                "STORAGE_BACKEND": "timescaledb",
                SESSION_FLAG: "1",
                "PYTHONUNBUFFERED": "1",
            }
            named = any((REPO_ROOT / arg.split("::")[0]).exists() for arg in argv if not arg.startswith("-"))
            paths = [] if named else [str(TESTS_DIR.relative_to(REPO_ROOT))]
            command = [sys.executable, "-m", "pytest", *paths, *argv]
            code = subprocess.call(command, cwd=REPO_ROOT, env=environment)
            keep_log = code not in (0, 5)
    except RuntimeError as error:
        print(f"tests.timescaledb: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("tests.timescaledb: interrupted", file=sys.stderr)
        return 130
    finally:
        if keep_log and log_path.exists():
            print(f"--- PGlite server log (tail) ---\n{log_path.read_text()[-4000:]}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    print(f"TimescaleDB session took {time.monotonic() - started:.1f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
