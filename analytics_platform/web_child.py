"""One web process under `manage.py serve`: daphne, whose listening port lets the process with fewer connections
take the next one.

Every child of `serve` waits in accept() on the same socket, and the kernel gives a new connection to whichever
takes it first. Agents and proxies keep a handful of long-lived connections open, and they tend to connect all
at once, when every process is idle: one process could end up with three of four and a core of its own to spare
(docs/ingestion.md measured 3:1 splits half of the time). So each child publishes how many connections it holds
in its slot of a small file that `serve` shares between them, one slot per process (WEB_CONNECTIONS_FILE,
WEB_PROCESS_SLOT): one more when its port makes the transport of a new connection, one less when that transport
is lost, however the connection ends. It accepts one connection at a time, and, while it holds more than another
process, leaves a waiting connection to that one: it stops reading the socket for RECHECK_SECONDS and looks again.
It never waits longer than HOLD_SECONDS for one connection, so a process that is stopped or busy cannot keep new
connections waiting; the slot of a process that is starting or has died reads as full (serve writes it so), so
none waits for it.

Run as `python -m analytics_platform.web_child` with daphne's arguments; without the variables it is plain daphne.
"""

from __future__ import annotations

import mmap
import os
import select
import time
from pathlib import Path

from daphne.cli import CommandLineInterface
from daphne.server import Server  # installs daphne's asyncio reactor: import twisted's reactor after it
from twisted.internet import reactor

from analytics_platform.web_processes import (
    CONNECTIONS_FILE_VARIABLE,
    CONNECTIONS_SLOT,
    SLOT_VARIABLE,
)

RECHECK_SECONDS = 0.002
HOLD_SECONDS = 0.05


class ConnectionBalance:
    """Publish this process's open connections and hold back accepting while a sibling process holds fewer."""

    def __init__(self, port, *, path: Path, slot: int) -> None:
        self.port = port
        self.slot = slot
        with open(path, "r+b") as handle:
            self.shared = mmap.mmap(handle.fileno(), 0)  # the whole file: one slot per process
        self.others = [other for other in range(len(self.shared) // CONNECTIONS_SLOT.size) if other != slot]
        self.held = 0  # open connections: one more when a transport is made, one less when it is lost
        self.held_since: float | None = None
        self.accept = port.doRead

    def install(self) -> None:
        balance = self

        class CountedTransport(self.port.transport):  # the port makes one per accepted connection
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                balance.change(1)

            def connectionLost(self, reason) -> None:  # once per connection, however it ends
                try:
                    super().connectionLost(reason)
                finally:
                    balance.change(-1)

        self.port.transport = CountedTransport
        self.port.doRead = self._do_read
        self.change(0)

    def change(self, by: int) -> None:
        self.held += by
        CONNECTIONS_SLOT.pack_into(self.shared, self.slot * CONNECTIONS_SLOT.size, self.held)

    def _fewest_elsewhere(self) -> int:
        return min(CONNECTIONS_SLOT.unpack_from(self.shared, other * CONNECTIONS_SLOT.size)[0] for other in self.others)

    def _do_read(self) -> None:
        """The socket has a connection waiting: take it, unless a process holding fewer should, for a while."""
        now = time.monotonic()
        if self.others and self.held > self._fewest_elsewhere():
            if self.held_since is None:
                self.held_since = now
            if now - self.held_since < HOLD_SECONDS:
                self.port.stopReading()
                reactor.callLater(RECHECK_SECONDS, self._resume)
                return
        self.held_since = None
        self.port.numberAccepts = 1  # one at a time, so that the count is published between two accepts
        self.accept()

    def _resume(self) -> None:
        if not self.port.connected or self.port.disconnecting:
            return
        poller = select.poll()
        poller.register(self.port.fileno(), select.POLLIN)
        if not poller.poll(0):
            self.held_since = None  # another process took the connection held back: the next one starts afresh
        self.port.startReading()


class BalancingServer(Server):
    """daphne's server, with the connection balance installed on its listening port when serve shares one."""

    def listen_success(self, port):
        super().listen_success(port)
        path = os.environ.get(CONNECTIONS_FILE_VARIABLE)
        if path and hasattr(port, "numberAccepts"):
            ConnectionBalance(port, path=Path(path), slot=int(os.environ[SLOT_VARIABLE])).install()


def main() -> None:
    CommandLineInterface.server_class = BalancingServer
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
