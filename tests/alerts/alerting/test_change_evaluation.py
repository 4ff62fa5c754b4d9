"""Change-driven evaluation and crash safety, with commits: the real ingest API publishes what changed, the
evaluator (in a thread here, `manage.py alerts_evaluator` in production) evaluates the touched rule, the webhook
arrives within the second; a process killed mid-evaluation loses no state and sends no duplicate."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import Client

from apps.alerts.alerting.change_evaluator import ChangeEvaluator
from apps.alerts.alerting.rule_evaluation import PAUSE_BEFORE_COMMIT_ENV, alert_rule_evaluate
from apps.alerts.alerting.services import notifications_flush
from apps.alerts.models import AlertInstance, Notification, StateTransition
from tests.alerts.alerting.conftest import webhook_rule
from tests.conftest import REPO_ROOT, server_environment
from tests.ingestion.factories import source_with_key
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("storage_committed_cleanup")]


def _ingest(key: str, value: float, device: str = "press-7") -> None:
    record = {"time": datetime.now(UTC).isoformat(), "device": device, "temperature": value}
    response = Client().post(
        "/api/v1/sources/plant/ingest", json.dumps([record]), content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert response.status_code in (200, 202, 204), response.content


class _Running:
    def __init__(self) -> None:
        self.evaluator = ChangeEvaluator()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.evaluator.run()
        finally:
            connection.close()

    def __enter__(self) -> ChangeEvaluator:
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.evaluator.index.loaded_at == float("-inf") and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # subscribed (the index loads right after the subscription)
        return self.evaluator

    def __exit__(self, *exc) -> None:
        self.evaluator.stop.set()
        self.thread.join(timeout=5)


def test_a_breaching_point_is_detected_and_notified_within_the_second(user, receiver):
    _, key = source_with_key(slug="plant")
    _ingest(key, 50)  # the series exists before the rule
    rule = webhook_rule(owner=user, url=receiver.url)
    with _Running() as evaluator:
        _ingest(key, 60)  # in range: the index asks for no evaluation
        time.sleep(0.3)
        assert evaluator.evaluations == 0
        started = time.time()
        _ingest(key, 95)
        arrived = receiver.wait_for(1, timeout=5)
        assert arrived, "no webhook arrived"
        latency = arrived[0].at - started
        assert latency < 1.0, latency
        assert arrived[0].json()["status"] == "firing"
        _ingest(key, 50)
        assert [request.json()["status"] for request in receiver.wait_for(2, timeout=5)] == ["firing", "resolved"]
    assert AlertInstance.objects.get(rule=rule).state == "normal"
    assert evaluator.evaluations == 2


def _evaluate_in_a_process(rule_id: int, **environment: str) -> subprocess.Popen:
    code = (
        "import django; django.setup(); "
        "from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate; "
        f"alert_rule_evaluate(rule_id={rule_id})"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=server_environment(database_name=connection.settings_dict["NAME"], extra_environment=environment),
    )  # fmt: skip


def test_a_worker_killed_mid_evaluation_loses_no_state_and_sends_no_duplicate(user, receiver):
    _, key = source_with_key(slug="plant")
    rule = webhook_rule(owner=user, url=receiver.url)
    _ingest(key, 95)
    # First evaluation: everything written, held open before the commit, killed there with SIGKILL.
    process = _evaluate_in_a_process(rule.id, **{PAUSE_BEFORE_COMMIT_ENV: "60"})
    output = b""
    deadline = time.monotonic() + 30
    while b"pausing" not in output and time.monotonic() < deadline:
        output += process.stdout.readline()
    assert b"pausing" in output, output
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    # Nothing of the killed evaluation is left, and nothing was sent.
    assert not AlertInstance.objects.filter(rule=rule).exists()
    assert not Notification.objects.exists()
    assert receiver.requests == []

    # A fresh process evaluates from the committed state: one transition, one notification.
    process = _evaluate_in_a_process(rule.id)
    assert process.wait(timeout=60) == 0, process.stdout.read()
    for _ in range(3):  # and later evaluations (the schedule, the change evaluator) add nothing
        alert_rule_evaluate(rule_id=rule.id)
        notifications_flush()
    assert len(receiver.wait_for(1)) == 1
    time.sleep(0.2)
    assert len(receiver.requests) == 1
    assert list(StateTransition.objects.filter(rule=rule).values_list("to_state", flat=True)) == ["firing"]
    assert Notification.objects.get().state == "sent"


def test_a_worker_killed_while_delivering_leaves_the_row_for_the_flush_with_the_same_key(user, receiver):
    """The delivery is in flight (the receiver got it, the process dies before recording it): the flush sends the
    row again with the same idempotency key, which is how a receiver (the CMMS preset) tells it is the same."""
    _, key = source_with_key(slug="plant")
    rule = webhook_rule(owner=user, url=receiver.url)
    _ingest(key, 95)
    hold = threading.Event()
    original = receiver.server.RequestHandlerClass.do_POST

    def slow(handler) -> None:
        if len(receiver.requests) == 0:
            body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
            from tests.alerts.alerting.receivers import Received

            with receiver.lock:
                receiver.requests.append(Received(handler.path, dict(handler.headers), body, time.time()))
            hold.wait(30)  # never answers in time: the sender is killed meanwhile
            return
        original(handler)

    receiver.server.RequestHandlerClass.do_POST = slow
    process = _evaluate_in_a_process(rule.id)  # evaluates, commits, then delivers (eager task) and hangs
    assert receiver.wait_for(1, timeout=30)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    hold.set()
    notification = Notification.objects.get()
    assert notification.state == "pending"
    assert StateTransition.objects.filter(rule=rule).count() == 1  # the transition committed before delivery
    notifications_flush()
    notification.refresh_from_db()
    assert notification.state == "sent"
    keys = [request.headers["Idempotency-Key"] for request in receiver.wait_for(2)]
    assert keys == [notification.idempotency_key] * 2
