"""GET /healthz: 200 with PostgreSQL and Redis up, 503 when either is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from analytics_platform.health import WORKER_HEARTBEAT_KEY, redis_check
from analytics_platform.tasks import worker_heartbeat
from tests.conftest import REPO_ROOT, closed_port


@pytest.mark.django_db
def test_healthz_ok_with_services_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["database"]["latency_ms"] >= 0
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_healthz_503_when_redis_unreachable(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    settings.HEALTHCHECK_TIMEOUT_SECONDS = 0.5
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_healthz_503_when_database_unreachable():
    """Run the app in a separate process whose DATABASE_URL points at a closed port."""
    code = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client(HTTP_HOST='localhost').get('/healthz'); print(r.status_code); print(r.content.decode())"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "analytics_platform.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port()}/analytics",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    status_line, body_text = result.stdout.split("\n", 1)
    assert status_line == "503"
    body = json.loads(body_text)
    assert body["checks"]["database"]["ok"] is False
    assert "OperationalError" in body["checks"]["database"]["error"]
    assert body["checks"]["redis"]["ok"] is True


@pytest.mark.django_db
def test_worker_heartbeat_reported(client, settings):
    import redis

    connection = redis.Redis.from_url(settings.REDIS_URL)
    connection.delete(WORKER_HEARTBEAT_KEY)
    assert client.get("/healthz").json()["worker"]["last_heartbeat"] is None
    recorded = worker_heartbeat.delay().get()
    assert client.get("/healthz").json()["worker"]["last_heartbeat"] == recorded
    assert 0 < connection.ttl(WORKER_HEARTBEAT_KEY) <= 120


def test_redis_check_times_out_quickly(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    result = redis_check()
    assert result.ok is False
    assert result.latency_ms < 2000


@pytest.mark.django_db
def test_healthz_answers_probes_addressed_by_ip(client):
    """Probes address the container directly; health must not depend on ALLOWED_HOSTS."""
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/accounts/login/", HTTP_HOST="10.1.2.3:8000").status_code == 400
