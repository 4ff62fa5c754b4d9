"""The connector supervisor starts, stops, replaces and restarts connectors as the providers say."""

from __future__ import annotations

import threading
import time

from worker.connectors import ConnectorSpec, ConnectorSupervisor


class RecordingConnector:
    """Runs until stopped, recording its lifecycle; can be told to crash."""

    def __init__(self, name: str, events: list[str], crash: bool = False) -> None:
        self.name, self.events, self.crash = name, events, crash

    def run(self, *, stop: threading.Event) -> None:
        self.events.append(f"start:{self.name}")
        if self.crash:
            raise RuntimeError("broker went away")
        stop.wait()
        self.events.append(f"stop:{self.name}")


def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_follows_provider_changes_without_restart():
    events: list[str] = []
    desired: dict[str, str] = {"mqtt:plant": "v1"}

    def provider():
        return [
            ConnectorSpec(key, fingerprint, lambda key=key, fp=fingerprint: RecordingConnector(f"{key}@{fp}", events))
            for key, fingerprint in desired.items()
        ]

    supervisor = ConnectorSupervisor(providers=[provider], poll_seconds=0.01)
    supervisor.reconcile()
    _wait_for(lambda: "start:mqtt:plant@v1" in events)

    desired["kafka:orders"] = "v1"
    supervisor.reconcile()
    _wait_for(lambda: "start:kafka:orders@v1" in events)

    desired["mqtt:plant"] = "v2"  # configuration changed: replace
    supervisor.reconcile()
    _wait_for(lambda: "start:mqtt:plant@v2" in events)
    assert events.index("stop:mqtt:plant@v1") < events.index("start:mqtt:plant@v2")

    del desired["kafka:orders"]  # source removed or paused
    supervisor.reconcile()
    assert "stop:kafka:orders@v1" in events
    assert set(supervisor.running) == {"mqtt:plant"}
    supervisor.stop_all()
    assert "stop:mqtt:plant@v2" in events
    assert supervisor.running == {}


def test_crashed_connector_restarts_after_backoff():
    events: list[str] = []
    now = [100.0]
    attempts = {"count": 0}

    def build():
        attempts["count"] += 1
        return RecordingConnector(f"try{attempts['count']}", events, crash=attempts["count"] < 3)

    supervisor = ConnectorSupervisor(
        providers=[lambda: [ConnectorSpec("mqtt:x", "v1", build)]], clock=lambda: now[0], max_backoff_seconds=60
    )
    supervisor.reconcile()
    _wait_for(lambda: not supervisor.running["mqtt:x"].thread.is_alive())
    entry = supervisor.running["mqtt:x"]
    assert entry.failures == 1
    assert entry.last_error == "RuntimeError: broker went away"
    supervisor.reconcile()  # still within backoff: no restart yet
    assert attempts["count"] == 1
    now[0] = entry.next_start_at
    supervisor.reconcile()
    _wait_for(lambda: attempts["count"] == 2 and not supervisor.running["mqtt:x"].thread.is_alive())
    assert supervisor.running["mqtt:x"].failures == 2
    # The backoff grows with each failure.
    assert supervisor.running["mqtt:x"].next_start_at - now[0] > entry.next_start_at - 100.0
    now[0] = supervisor.running["mqtt:x"].next_start_at
    supervisor.reconcile()
    _wait_for(lambda: "start:try3" in events)
    assert supervisor.running["mqtt:x"].thread.is_alive()
    supervisor.stop_all()


def test_a_connector_that_ran_for_a_while_starts_its_backoff_afresh():
    now = [100.0]

    class RanThenCrashed:
        def run(self, *, stop):
            now[0] += 3600  # an hour of good work
            raise RuntimeError("broker went away")

    supervisor = ConnectorSupervisor(
        providers=[lambda: [ConnectorSpec("kafka:x", "v1", RanThenCrashed)]],
        clock=lambda: now[0],
        max_backoff_seconds=60,
    )
    supervisor._start(ConnectorSpec("kafka:x", "v1", RanThenCrashed), failures=7)
    _wait_for(lambda: not supervisor.running["kafka:x"].thread.is_alive())
    entry = supervisor.running["kafka:x"]
    assert entry.failures == 1
    assert 0.75 <= entry.next_start_at - now[0] <= 1.0  # the first step, not the 60 s cap


def test_failing_provider_keeps_running_connectors():
    events: list[str] = []
    broken = {"now": False}

    def provider():
        if broken["now"]:
            raise ConnectionError("database unavailable")
        return [ConnectorSpec("mqtt:a", "v1", lambda: RecordingConnector("a", events))]

    supervisor = ConnectorSupervisor(providers=[provider])
    supervisor.reconcile()
    _wait_for(lambda: "start:a" in events)
    broken["now"] = True
    supervisor.reconcile()
    assert "stop:a" not in events
    assert supervisor.running["mqtt:a"].thread.is_alive()
    supervisor.stop_all()


def test_serve_stops_everything_on_signal():
    events: list[str] = []
    stop = threading.Event()
    supervisor = ConnectorSupervisor(
        providers=[lambda: [ConnectorSpec("a", "1", lambda: RecordingConnector("a", events))]], poll_seconds=0.01
    )
    thread = threading.Thread(target=supervisor.serve, kwargs={"stop": stop})
    thread.start()
    _wait_for(lambda: "start:a" in events)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert "stop:a" in events
