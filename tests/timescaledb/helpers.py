"""Helpers for the TimescaleDB tests: fresh storage, SQL readers, rollups computed in Python."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime

from django.db import connection
from psycopg import sql

from apps.storage.backends import backend_for
from apps.storage.backends.timescaledb import TimescaleBackend
from apps.storage.tiers import Tier, bucket_floor


def storage_reinstall() -> TimescaleBackend:
    """Drop points and the rollup tiers (their jobs go with them) and install them again.

    Unlike TRUNCATE, this also resets the continuous aggregates' watermarks and invalidation logs,
    so every test sees the real-time aggregation of a new installation.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP MATERIALIZED VIEW IF EXISTS points_1d_labels, points_1h_labels, points_1m_labels, "
            "points_1d, points_1h, points_1m CASCADE"
        )
        cursor.execute("DROP TABLE IF EXISTS points CASCADE")
        cursor.execute("DROP TABLE IF EXISTS storage_series_labels, storage_label_rollup")
        # Our jobs (their procedures are replaced by install); TimescaleDB's own go with their tables.
        cursor.execute(
            "SELECT delete_job(job_id) FROM timescaledb_information.jobs "
            "WHERE proc_name IN ('storage_job_retention', 'storage_job_compression')"
        )
        cursor.execute("DELETE FROM storage_meta WHERE key LIKE 'timescaledb.%'")  # the backend's notes
    backend = backend_for()
    assert isinstance(backend, TimescaleBackend), backend
    backend.install()
    return backend


def rows(query: str, parameters=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, parameters or [])
        return cursor.fetchall()


def value(query: str, parameters=None):
    (row,) = rows(query, parameters)
    return row[0]


Rollup = tuple[int, float, float, float, float, datetime]  # count, sum, min, max, last, last_time


def expected_rollups(points: dict[tuple[int, datetime], float], tier: Tier) -> dict[tuple[int, datetime], Rollup]:
    """{(series_id, bucket): rollup row} computed in Python from raw points."""
    cells: dict[tuple[int, datetime], list[tuple[datetime, float]]] = defaultdict(list)
    for (series_id, moment), point in points.items():
        cells[(series_id, bucket_floor(moment, tier.seconds))].append((moment, point))
    result = {}
    for key, items in cells.items():
        values = [point for _, point in items]
        last_time, last = max(items)
        result[key] = (len(values), math.fsum(values), min(values), max(values), last, last_time)
    return result


def rollup_rows(tier: Tier) -> dict[tuple[int, datetime], Rollup]:
    """What a tier's continuous aggregate answers (materialized rows and real-time aggregation)."""
    return _rollups(sql.Identifier(tier.table))


def materialized_rows(tier: Tier) -> dict[tuple[int, datetime], Rollup]:
    """Only the rows a refresh has materialized (the aggregate's materialization hypertable)."""
    schema, table = rows(
        "SELECT materialization_hypertable_schema, materialization_hypertable_name "
        "FROM timescaledb_information.continuous_aggregates WHERE view_name = %s",
        [tier.table],
    )[0]
    return _rollups(sql.Identifier(schema, table))


def _rollups(relation: sql.Composable) -> dict[tuple[int, datetime], Rollup]:
    query = sql.SQL("SELECT series_id, bucket, count, sum, min, max, last, last_time FROM {}").format(relation)
    with connection.cursor() as cursor:
        cursor.execute(query)
        return {(series_id, bucket): tuple(rest) for series_id, bucket, *rest in cursor.fetchall()}
