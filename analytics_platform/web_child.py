"""One web process under `manage.py serve`: daphne, whose listening port lets the process with fewer connections
take the next one.

Every child of `serve` waits in accept() on the same socket, and the kernel gives a new connection to whichever
takes it first. Agents and proxies keep a handful of long-lived connections open, and they tend to connect all
at once, when every process is idle: one process could end up with three of four and a core of its own to spare
(docs/ingestion.md measured 3:1 splits half of the time). So each child publishes how many connections it holds
in its slot of a small file that `serve` shares between them (WEB_CONNECTIONS_FILE, WEB_PROCESS_SLOT,
WEB_PROCESS_COUNT), accepts one connection at a time, and, while it holds more than another process, leaves a
waiting connection to that one: it stops reading the socket for RECHECK_SECONDS and looks again. It never waits
longer than HOLD_SECONDS for one connection, so a process that is stopped or busy cannot keep new connections
waiting; the slot of a process that is starting or has died reads as full (serve writes it so), so none waits for it.

Run as `python -m analytics_platform.web_child` with daphne's arguments; without the variables it is plain daphne.
"""

from __future__ import annotations

import mmap
import os
import time
import weakref
from pathlib import Path

from daphne.cli import CommandLineInterface
from daphne.server import Server  # installs daphne's asyncio reactor: import twisted's reactor after it
from twisted.internet import reactor, task

from analytics_platform.web_processes import (
    CONNECTIONS_FILE_VARIABLE,
    CONNECTIONS_SLOT,
    COUNT_VARIABLE,
    SLOT_VARIABLE,
)

RECHECK_SECONDS = 0.002
HOLD_SECONDS = 0.05
# Connections close without passing through the port: the count is also refreshed this often.
REFRESH_SECONDS = 0.25
_SLOT = CONNECTIONS_SLOT


class ConnectionBalance:
    """Publish this process's open connections and hold back accepting while a sibling process holds fewer."""

    def __init__(self, port, *, path: Path, slot: int, count: int) -> None:
        self.port = port
        self.slot = slot
        self.others = [other for other in range(count) if other != slot]
        with open(path, "r+b") as handle:
            self.shared = mmap.mmap(handle.fileno(), _SLOT.size * count)
        self.transports: weakref.WeakSet = weakref.WeakSet()
        self.held_since: float | None = None
        self.last_hold = 0.0
        self.accept = port.doRead
        self.make_transport = port.transport

    def install(self) -> None:
        self.port.transport = self._transport
        self.port.doRead = self._do_read
        self.publish()
        task.LoopingCall(self.publish).start(REFRESH_SECONDS, now=False)

    def _transport(self, *args):
        transport = self.make_transport(*args)
        self.transports.add(transport)
        return transport

    def publish(self) -> int:
        """Count the open connections (closed transports are no longer `connected`) and publish the count."""
        held = sum(1 for transport in list(self.transports) if transport.connected)
        _SLOT.pack_into(self.shared, self.slot * _SLOT.size, held)
        return held

    def _fewest_elsewhere(self) -> int:
        return min(_SLOT.unpack_from(self.shared, other * _SLOT.size)[0] for other in self.others)

    def _do_read(self) -> None:
        """The socket has a connection waiting: take it, unless a process holding fewer should, for a while."""
        now = time.monotonic()
        if self.held_since is not None and now - self.last_hold > 4 * RECHECK_SECONDS:
            self.held_since = None  # the connection held back last time was taken elsewhere: this is a new one
        if self.others and self.publish() > self._fewest_elsewhere():
            if self.held_since is None:
                self.held_since = now
            if now - self.held_since < HOLD_SECONDS:
                self.last_hold = now
                self.port.stopReading()
                reactor.callLater(RECHECK_SECONDS, self._resume)
                return
        self.held_since = None
        self.port.numberAccepts = 1  # one at a time, so that the count is published between two accepts
        self.accept()
        self.publish()

    def _resume(self) -> None:
        if self.port.connected and not self.port.disconnecting:
            self.port.startReading()


class BalancingServer(Server):
    """daphne's server, with the connection balance installed on its listening port when serve shares one."""

    def listen_success(self, port):
        super().listen_success(port)
        path = os.environ.get(CONNECTIONS_FILE_VARIABLE)
        if path and hasattr(port, "numberAccepts"):
            ConnectionBalance(
                port, path=Path(path), slot=int(os.environ[SLOT_VARIABLE]), count=int(os.environ[COUNT_VARIABLE])
            ).install()


def main() -> None:
    CommandLineInterface.server_class = BalancingServer
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
