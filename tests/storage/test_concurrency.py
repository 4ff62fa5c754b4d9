"""The watermark lock: a refresh waits for in-flight writes, so no committed point is missed by the rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.storage.backends import backend_for
from tests.storage.factories import series_create, source_create
from tests.storage.races import refresh_during_open_write

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_refresh_waits_for_an_open_write_and_includes_it(settings, storage_committed_cleanup):
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    with connection.cursor() as cursor:
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [T0])
    source = source_create(slug="race")
    series_id = series_create(source=source, metric="m", device="d1")
    refresh_during_open_write(
        lambda: backend_for().points_write([(series_id, T0 + timedelta(seconds=s), 1.0) for s in range(120)]),
        now=T0 + timedelta(minutes=5),
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(count) FROM points_1m WHERE series_id = %s", [series_id])
        assert cursor.fetchone()[0] == 120
