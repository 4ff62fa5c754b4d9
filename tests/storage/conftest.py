"""Storage fixtures."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection


def storage_tables_reset(*, watermark=None) -> None:
    """Empty points and rollups (not Django models, so a transactional test's flush leaves them)."""
    cache.clear()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE points, points_1m, points_1h, points_1d, storage_rollup_dirty, points_1m_delta, "
            "points_1m_labels_delta, points_1h_labels_delta, points_1d_labels_delta"
        )
        # A provisional bound left past the new watermark would claim minutes that were never rolled up.
        cursor.execute("UPDATE storage_rollup_watermark SET provisional = NULL")
        if watermark is not None:
            cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s", [watermark])
        else:
            cursor.execute("UPDATE storage_rollup_watermark SET watermark = date_trunc('minute', now())")


@pytest.fixture
def storage_committed_cleanup(transactional_db):
    """For tests that commit: leave points, rollups and the watermark as a fresh install has them."""
    yield
    storage_tables_reset()
