"""Fixtures for the TimescaleDB backend tests, which run on TimescaleDB-on-PGlite (see __main__.py).

The database is used as it is (pytest-django's "Using an existing, external database"): migrated once,
no test database is created. Tests use `transactional_db`, since TimescaleDB refuses CALL
refresh_continuous_aggregate / run_job inside a transaction block, and start from fresh storage (see
`storage_reinstall`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from apps.access.models import Membership
from apps.storage.backends.timescaledb import TimescaleBackend
from tests.factories import organization_get
from tests.timescaledb import SESSION_FLAG
from tests.timescaledb.helpers import storage_reinstall

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Outside the PGlite session (e.g. a bare `pytest`), skip these tests rather than flush a real database."""
    if os.environ.get(SESSION_FLAG):
        return
    skip = pytest.mark.skip(reason="TimescaleDB tests run on PGlite: `.venv/bin/python -m tests.timescaledb`")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    """Migrate the launcher's throwaway PGlite database in place (this installs the TimescaleDB backend)."""
    if not os.environ.get(SESSION_FLAG):
        pytest.fail("tests/timescaledb needs the PGlite server: run `.venv/bin/python -m tests.timescaledb`")
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            # PGlite sends DEBUG and LOG notices to clients; its one backend keeps this across connections.
            cursor.execute("SET client_min_messages = warning")
        call_command("migrate", interactive=False, verbosity=0)


@pytest.fixture
def tsdb(transactional_db) -> TimescaleBackend:
    """The TimescaleDB backend on empty storage."""
    return storage_reinstall()


@pytest.fixture
def principal(transactional_db):
    user, _ = get_user_model().objects.get_or_create(username="timescale-reader")
    # A member of the organisation that owns the test sources, so the data scope lets it read them.
    Membership.objects.get_or_create(organization=organization_get(), user=user)
    return user
