"""A real HTTP receiver for notification tests: a threaded http.server on a port of this worktree's range that
records every request (and can answer errors first), and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import port_in

PORTS = range(18600, 18700)


def port_free() -> int:
    """A port of this worktree's range (18600-18699) nothing listens on."""
    return port_in(PORTS)


@dataclass
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """The recorder behind the server; `fail_first` requests answer `fail_status`."""

    fail_first: int = 0
    fail_status: int = 500
    redirect_to: str = ""
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def answered_ok(self) -> list[Received]:
        with self.lock:
            return self.requests[self.fail_first :]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.01)
        with self.lock:
            return list(self.requests)


def receiver_start(receiver: Receiver) -> Receiver:
    """Serve `receiver` on 127.0.0.1 in a background thread (stop with receiver_stop)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers), body, time.time()))
                number = len(receiver.requests)
            if receiver.redirect_to:
                self.send_response(302)
                self.send_header("Location", receiver.redirect_to)
            elif number <= receiver.fail_first:
                self.send_response(receiver.fail_status)
            else:
                self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", port_free()), Handler)
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    return receiver


def receiver_stop(receiver: Receiver) -> None:
    receiver.server.shutdown()
    receiver.server.server_close()
