"""Faults during sustained ingest: PostgreSQL and Redis go down and come back while data streams in.

Each test runs the platform's own processes (`manage.py serve`, `manage.py run_connectors`, production settings)
against a private PostgreSQL or Redis (tests/peers.py) that it restarts or kills, and counts: every acknowledged
point is stored exactly once afterwards, every unacknowledged one is sent again by its sender (the HTTP client
here, the MQTT broker for the connector) until it is stored, no answer is a 5xx other than a 503 while the
dependency is down, and the processes recover on their own (the same processes before and after).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench.django_server import prod_environment
from tests.conftest import REPO_ROOT
from tests.peers import PrivatePostgres, PrivateRedis, free_port

pytestmark = pytest.mark.slow

DATABASE = "faults"
BATCHES = 240
BATCH_POINTS = 50
DEVICES = 20
START = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)


def _environment(postgres: PrivatePostgres, redis_url: str, **extra: str) -> dict[str, str]:
    environment = prod_environment(database=DATABASE, redis_db=0, **extra)
    environment["DATABASE_URL"] = postgres.url(DATABASE)
    environment["REDIS_URL"] = redis_url
    environment["REDIS_KEY_PREFIX"] = f"faults-{uuid.uuid4().hex[:8]}"
    environment["DATABASE_CONNECT_TIMEOUT"] = "2"
    return environment


def _manage(environment: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=environment,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _prepare(environment: dict[str, str], *sources: dict) -> dict[str, str]:
    """Migrate and create the sources (slug, kind, config, rate limit); their write keys by slug."""
    _manage(environment, "migrate", "--noinput")
    script = (
        "import json\n"
        "from apps.access.models import Organization\n"
        "from apps.sources.services import source_create\n"
        "o, _ = Organization.objects.get_or_create(slug='faults', defaults={'name': 'Faults'})\n"
        "keys = {}\n"
        f"for spec in json.loads({json.dumps(list(sources))!r}):\n"
        "    s, key = source_create(organization=o, name=spec['slug'], slug=spec['slug'], kind=spec['kind'],"
        " config=spec.get('config'), rate_limit_points_per_second=spec.get('rate_limit'))\n"
        "    keys[spec['slug']] = key\n"
        "print(json.dumps(keys))\n"
    )
    return json.loads(_manage(environment, "shell", "-c", script).strip().splitlines()[-1])


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        server.create_database(DATABASE)
        yield server
    finally:
        server.remove()


class Serve:
    """`manage.py serve` with two web processes on a free port."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.port = free_port()
        self.launcher = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--bind", "127.0.0.1", "--port", str(self.port), "--processes",
             "2"],
            cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while self.status("GET", "/ping")[0] != 204:
            assert self.launcher.poll() is None, "serve exited"
            assert time.monotonic() < deadline, "serve did not answer within 60 s"
            time.sleep(0.2)
        time.sleep(2)  # both children have adopted the socket

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.launcher.pid}/task/{self.launcher.pid}/children")
        return sorted(int(pid) for pid in path.read_text().split())

    def status(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        except OSError as error:
            return 0, str(error).encode(), {}

    def stop(self) -> None:
        self.launcher.terminate()
        self.launcher.wait(timeout=30)


def _records(batch: int) -> list[dict]:
    records = []
    for offset in range(BATCH_POINTS):
        number = batch * BATCH_POINTS + offset
        moment = START + timedelta(seconds=number // DEVICES)
        records.append({"time": moment.isoformat(), "device": f"d{number % DEVICES}", "v": number})
    return records


class Sender:
    """Sends every batch until it is acknowledged, as an agent with a retry loop does; records every answer."""

    def __init__(self, serve: Serve, key: str, slug: str) -> None:
        self.serve, self.key, self.slug = serve, key, slug
        self.acknowledged = 0
        self.statuses: dict[int, int] = {}
        self.bodies: list[bytes] = []
        self.failure: str | None = None

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        for batch in range(BATCHES):
            body = json.dumps(_records(batch)).encode()
            deadline = time.monotonic() + 90
            while True:
                status, answer, _ = self.serve.status("POST", f"/api/v1/sources/{self.slug}/ingest", body, headers)
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 200:
                    if json.loads(answer) != {"accepted": BATCH_POINTS, "rejected": 0, "points": BATCH_POINTS,
                                              "errors": []}:  # fmt: skip
                        self.failure = f"batch {batch}: {answer[:300]!r}"
                        return
                    break
                if status not in (0, 503) or time.monotonic() > deadline:
                    self.failure = f"batch {batch}: {status} {answer[:300]!r}"
                    self.bodies.append(answer)
                    return
                time.sleep(0.2)
            self.acknowledged += 1


def _stored(postgres: PrivatePostgres) -> tuple[int, int, int]:
    """(points, distinct (series, time), sum of values) in the private database."""
    row = postgres.query(DATABASE, "SELECT count(*), count(DISTINCT (series_id, time)), coalesce(sum(value), 0) "
                                   "FROM points")[0]  # fmt: skip
    return int(row[0]), int(row[1]), int(float(row[2]))


def _wait_until(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.2)


def test_postgresql_restarted_during_sustained_http_ingest(postgres):
    redis = PrivateRedis()
    redis.start()
    environment = _environment(postgres, redis.url())
    keys = _prepare(environment, {"slug": "plant", "kind": "http"})
    serve = Serve(environment)
    try:
        children = serve.children()
        sender = Sender(serve, keys["plant"], "plant")
        thread = threading.Thread(target=sender.run)
        thread.start()
        _wait_until(lambda: sender.acknowledged >= BATCHES // 3 or sender.failure, timeout=60, what="a third sent")
        postgres.restart(mode="immediate")  # as a crash: connections cut, no checkpoint
        _wait_until(lambda: sender.acknowledged >= 2 * BATCHES // 3 or sender.failure, timeout=120, what="two thirds")
        postgres.restart(mode="fast")
        thread.join(timeout=180)
        assert sender.failure is None, (sender.failure, sender.statuses)
        assert sender.acknowledged == BATCHES
        assert sender.statuses.get(503, 0) + sender.statuses.get(0, 0) > 0, "the restarts were not felt"
        assert set(sender.statuses) <= {200, 503, 0}, sender.statuses
        total = BATCHES * BATCH_POINTS
        assert _stored(postgres) == (total, total, total * (total - 1) // 2)
        assert serve.children() == children, "a web process was replaced instead of recovering"
        assert serve.status("GET", "/healthz")[0] == 200
    finally:
        serve.stop()
        redis.stop()


def test_postgresql_restarted_while_the_mqtt_connector_stores(postgres):
    redis = PrivateRedis()
    redis.start()
    topic = f"faults/{uuid.uuid4().hex[:10]}"  # under the organisation's prefix ("faults/")
    environment = _environment(postgres, redis.url(), MQTT_URL="mqtt://127.0.0.1:1883",
                               INGEST_CONNECTOR_FLUSH_SECONDS="0.2", INGEST_CONNECTOR_BATCH_SIZE="200")  # fmt: skip
    _prepare(environment, {"slug": "line", "kind": "mqtt", "config": {"topic": f"{topic}/#", "format": "json"}})
    connectors = subprocess.Popen([sys.executable, "manage.py", "run_connectors"], cwd=REPO_ROOT, env=environment,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    try:
        publisher.connect("127.0.0.1", 1883)
        publisher.loop_start()

        # The connector subscribes within the supervisor's first poll; what is published before it has a session
        # is not queued for it, so wait until a first message is stored.
        def published(batch: int) -> None:
            publisher.publish(f"{topic}/m", json.dumps(_records(batch)), qos=1).wait_for_publish(10)

        _wait_until(lambda: (published(0), _stored(postgres)[0] > 0)[1], timeout=60, what="the connector subscribed")
        for batch in range(1, BATCHES):
            published(batch)
            if batch == BATCHES // 3:
                postgres.restart(mode="immediate")
            elif batch == 2 * BATCHES // 3:
                postgres.restart(mode="fast")
            time.sleep(0.01)
        total = BATCHES * BATCH_POINTS
        # Batch 0 may have been published more than once while waiting; its points replace themselves.
        _wait_until(lambda: _stored(postgres)[0] >= total, timeout=180, what="every published point stored")
        assert _stored(postgres) == (total, total, total * (total - 1) // 2)
        assert postgres.query(DATABASE, "SELECT count(*) FROM ingestion_deadletter") == [["0"]]
        assert connectors.poll() is None, "the connector process exited instead of recovering"
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        connectors.terminate()
        connectors.wait(timeout=30)
        redis.stop()


def test_redis_down_gives_rate_limited_sources_a_503_and_the_rest_carry_on(postgres):
    redis = PrivateRedis()
    redis.start()
    environment = _environment(postgres, redis.url())
    keys = _prepare(
        environment, {"slug": "limited", "kind": "http", "rate_limit": 100_000}, {"slug": "free", "kind": "http"}
    )
    serve = Serve(environment)
    try:
        children = serve.children()

        def post(slug: str, batch: int) -> tuple:
            headers = {"Authorization": f"Bearer {keys[slug]}", "Content-Type": "application/json"}
            return serve.status("POST", f"/api/v1/sources/{slug}/ingest", json.dumps(_records(batch)).encode(), headers)

        assert post("limited", 0)[0] == 200
        assert post("free", 0)[0] == 200
        redis.stop()
        status, body, headers = post("limited", 1)
        assert status == 503, body
        assert json.loads(body)["error"] == "rate_limiter_unavailable"
        assert int(headers["Retry-After"]) > 0
        for batch in range(1, 6):  # no limit to count against: stored while Redis is down
            assert post("free", batch)[0] == 200
        assert serve.status("GET", "/healthz")[0] == 503
        redis.start()
        _wait_until(lambda: post("limited", 1)[0] == 200, timeout=30, what="the limited source writing again")
        assert serve.status("GET", "/healthz")[0] == 200
        assert _stored(postgres)[0] == (2 + 6) * BATCH_POINTS
        assert serve.children() == children
    finally:
        serve.stop()
        redis.stop()
