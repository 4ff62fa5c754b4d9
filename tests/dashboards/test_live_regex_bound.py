"""A live subscription's label regex runs under the engine's statement timeout (it ran unbounded before)."""

from __future__ import annotations

import concurrent.futures

import pytest
from django.db import connection

from apps.dashboards import live
from apps.storage.policies import data_scope_for
from apps.storage.query import engine
from apps.storage.query.engine import QueryTimeout
from tests.factories import user_create
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (fixture)
from tests.storage.factories import series_create, source_create

# PostgreSQL needs seconds for this back-referencing pattern against a 200-character label (minutes for longer).
SLOW_PATTERN = r"(.*)(.*)(.*)(.*)(.*)\1\2\3\4\5b"


def _cancel_stray_regex_queries() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND datname = current_database() AND state = 'active' AND query LIKE %s",
            ['%"storage_series"%~%'],
        )


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_a_live_regex_filter_is_cut_off_by_the_statement_timeout(monkeypatch):
    monkeypatch.setattr(engine, "STATEMENT_TIMEOUT_MS", 300)
    user = user_create(username="rita")
    source = source_create(slug="plant")
    for number in range(3):
        series_create(source=source, metric="temperature", device="ab" * 100, n=str(number))
    body = {"source": "plant", "metric": "temperature", "filters": {"device": {"regex": SLOW_PATTERN}}}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        scope = data_scope_for(user)
        future = executor.submit(live._with_connection, live._series_for, {"body": body, "scope": scope})
        try:
            with pytest.raises(QueryTimeout, match="simpler regular expression"):
                future.result(timeout=20)
        finally:
            _cancel_stray_regex_queries()
