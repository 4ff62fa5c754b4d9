"""Shared fixtures: users, API clients, and a real daphne server for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from rest_framework.test import APIClient

from bench.ports import port_in
from tests.factories import user_create

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _storage_caches_cleared():
    """Tests roll back their data, so ids and partitions cached in the process must not leak between them."""
    from apps.access.scopes import data_scopes_forget
    from apps.access.token_cache import api_tokens_forget
    from apps.ingestion.services import ingest_targets_forget
    from apps.sources.services import write_key_cache_clear
    from apps.storage.backends import base as backends_base
    from apps.storage.query.engine import series_plans_clear
    from apps.storage.query.shared import shared_answers_forget
    from apps.storage.services import series_cache_clear

    series_cache_clear()
    series_plans_clear()
    data_scopes_forget()  # a test's policy changes roll back without the commit that bumps the scope generation
    shared_answers_forget()
    api_tokens_forget()  # likewise token changes (their bump comes with a commit)
    backends_base._backends.clear()
    ingest_targets_forget()
    write_key_cache_clear()
    # The query cache lives in the test Redis database; rolled-back data must not be served from it.
    from django.core.cache import cache

    cache.clear()
    yield
    series_cache_clear()
    backends_base._backends.clear()
    ingest_targets_forget()
    write_key_cache_clear()


@pytest.fixture
def user(db):
    return user_create(username="alice")


@pytest.fixture
def other_user(db):
    return user_create(username="bob")


@pytest.fixture
def editor(db):
    """An editor of the shared test organisation (manages its sources and dashboards)."""
    return user_create(username="erin", role="editor")


@pytest.fixture
def viewer(db):
    """A viewer of the shared test organisation (reads only)."""
    return user_create(username="vic", role="viewer")


def api_client_for(user) -> APIClient:
    """A DRF client authenticated as `user`."""
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def free_port() -> int:
    """A TCP port nothing listens on right now; within TEST_PORTS (e.g. `8141-8149`) when set, for machines where
    each user has a range of ports."""
    configured = os.environ.get("TEST_PORTS")
    if configured:
        low, _, high = configured.partition("-")
        return port_in(range(int(low), int(high or low) + 1))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port() -> int:
    """A port that refuses connections (bound then released)."""
    return free_port()


def server_environment(*, database_name: str, extra_environment: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a server process (daphne, manage.py serve) with test settings on `database_name`."""
    settings_dict = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "analytics_platform.settings.test",
        "DATABASE_URL": (
            f"postgres://{settings_dict['USER'] or 'postgres'}@{settings_dict['HOST'] or '127.0.0.1'}:"
            f"{settings_dict['PORT'] or 5432}/{database_name}"
        ),
        "PYTHONUNBUFFERED": "1",
        **(extra_environment or {}),
    }


def daphne_start(
    *, database_name: str, extra_environment: dict[str, str] | None = None, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """Start the real ASGI app under daphne against `database_name` (on `port` or a free one); process, host:port."""
    port = port or free_port()
    environment = server_environment(database_name=database_name, extra_environment=extra_environment)
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "analytics_platform.asgi:application"],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"daphne exited early:\n{output}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("daphne did not start listening within 30 s")
    return process, f"127.0.0.1:{port}"


def daphne_stop(process: subprocess.Popen) -> None:
    """Stop a daphne started by daphne_start (politely, then by force)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def daphne_server(transactional_db) -> Iterator[str]:
    """Run the real ASGI app under daphne against the test database; yields its host:port."""
    process, address = daphne_start(database_name=connection.settings_dict["NAME"])
    try:
        yield address
    finally:
        daphne_stop(process)
