"""Free TCP ports, shared by the benchmarks and the tests (which import this module)."""

from __future__ import annotations

import socket


def port_in(ports: range) -> int:
    """The first port of `ports` nothing listens on."""
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")
