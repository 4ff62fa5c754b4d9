"""The connector supervisor: runs one thread per desired connector and follows changes without a restart.

Connector providers (e.g. MQTT and Kafka sources, added with ingestion) register a callable that
returns the connectors that should be running now. The supervisor polls the providers, starts what is
new, stops what was removed or changed, and restarts what crashed, with exponential backoff (capped, with jitter,
and started afresh after a connector ran for longer than the cap).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)


class Connector(Protocol):
    """Something that pulls data until told to stop."""

    def run(self, *, stop: threading.Event) -> None:
        """Work until `stop` is set; return to finish, raise to be restarted."""


@dataclass(frozen=True)
class ConnectorSpec:
    """What should run: a stable key, a fingerprint of its configuration, and how to build it."""

    key: str
    fingerprint: str
    build: Callable[[], Connector]


ConnectorProvider = Callable[[], Iterable[ConnectorSpec]]
_providers: list[ConnectorProvider] = []


def connector_provider_register(provider: ConnectorProvider) -> ConnectorProvider:
    """Register a provider of desired connectors (usable as a decorator)."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def connector_providers() -> list[ConnectorProvider]:
    """The registered providers."""
    return list(_providers)


@dataclass
class _Running:
    spec: ConnectorSpec
    stop: threading.Event
    thread: threading.Thread
    failures: int = 0
    next_start_at: float = 0.0
    last_error: str | None = None


@dataclass
class ConnectorSupervisor:
    """Keeps the running connectors equal to what the providers ask for."""

    providers: list[ConnectorProvider] = field(default_factory=connector_providers)
    poll_seconds: float = 5.0
    max_backoff_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    running: dict[str, _Running] = field(default_factory=dict)

    def desired(self) -> dict[str, ConnectorSpec]:
        """Collect specs from every provider; a failing provider keeps its connectors as they are."""
        specs: dict[str, ConnectorSpec] = {}
        for provider in self.providers:
            try:
                for spec in provider():
                    specs[spec.key] = spec
            except Exception:
                logger.exception("connector provider %r failed; keeping its connectors as they are", provider)
                specs.update({key: item.spec for key, item in self.running.items()})
        return specs

    def reconcile(self) -> None:
        """Start new, stop removed or changed, restart crashed connectors (with backoff)."""
        desired = self.desired()
        for key in list(self.running):
            current = self.running[key]
            if key not in desired or desired[key].fingerprint != current.spec.fingerprint:
                self._stop(key)
        now = self.clock()
        for key, spec in desired.items():
            current = self.running.get(key)
            if current is None:
                self._start(spec, failures=0)
            elif not current.thread.is_alive() and now >= current.next_start_at:
                logger.warning("connector %s stopped (%s); restarting", key, current.last_error or "returned")
                self._start(spec, failures=current.failures)

    def _start(self, spec: ConnectorSpec, *, failures: int) -> None:
        stop = threading.Event()
        entry = _Running(spec=spec, stop=stop, thread=threading.Thread(), failures=failures)

        def target() -> None:
            started = self.clock()
            try:
                spec.build().run(stop=stop)
                entry.last_error = None
            except Exception as error:
                if self.clock() - started >= self.max_backoff_seconds:
                    entry.failures = 0  # it ran well for a while: a new failure is a first failure again
                entry.failures += 1
                entry.last_error = f"{type(error).__name__}: {error}"
                # Jitter keeps connectors that failed together (a broker restart) from all coming back at once.
                step = min(self.max_backoff_seconds, 2 ** min(entry.failures, 10) * 0.5)
                backoff = step * random.uniform(0.75, 1.0)  # noqa: S311 (jitter, not a secret)
                entry.next_start_at = self.clock() + backoff
                logger.exception("connector %s failed; retrying in %.1f s", spec.key, backoff)

        entry.thread = threading.Thread(target=target, name=f"connector:{spec.key}", daemon=True)
        self.running[spec.key] = entry
        entry.thread.start()
        logger.info("connector %s started", spec.key)

    def _stop(self, key: str, *, timeout: float = 10.0) -> None:
        entry = self.running.pop(key)
        entry.stop.set()
        entry.thread.join(timeout)
        if entry.thread.is_alive():
            logger.error("connector %s did not stop within %.0f s", key, timeout)
        else:
            logger.info("connector %s stopped", key)

    def stop_all(self) -> None:
        """Stop every connector."""
        for key in list(self.running):
            self._stop(key)

    def serve(self, *, stop: threading.Event) -> None:
        """Reconcile every poll interval until `stop` is set, then stop all connectors."""
        logger.info("connector supervisor started with %d provider(s)", len(self.providers))
        try:
            while not stop.is_set():
                self.reconcile()
                stop.wait(self.poll_seconds)
        finally:
            self.stop_all()
            logger.info("connector supervisor stopped")
