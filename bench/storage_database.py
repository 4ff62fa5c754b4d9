"""What the storage benchmark does to and reads from the database, on either backend: the rollup refresh timed per
tier, VACUUM, sizes, server settings, and (TimescaleDB) the compression job."""

from __future__ import annotations

import statistics
import time
from datetime import datetime

from bench.django_server import postgres_backend_cpu_seconds


def backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


class Capture:
    """A Django execute wrapper that records each statement, its parameters and its duration."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, object, float]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.calls.append((sql, params, (time.perf_counter() - started) * 1000))


def sql_text(statement) -> str:
    from django.db import connection

    return statement if isinstance(statement, str) else statement.as_string(connection.connection)


def rollup_refresh_timed(end: datetime) -> tuple[dict, tuple | None]:
    """One rollup_refresh(now=end), timed per tier: plain PostgreSQL's tier builds (INSERT INTO points_1m ...) or
    TimescaleDB's CALL refresh_continuous_aggregate per aggregate. Returns the last 1-minute build (plain only; a
    CALL cannot be EXPLAINed) for EXPLAIN."""
    from django.db import connection

    from apps.storage.backends import backend_for

    capture = Capture()
    pid = backend_pid()
    cpu = postgres_backend_cpu_seconds(pid)
    started = time.perf_counter()
    with connection.execute_wrapper(capture):
        info = backend_for().rollup_refresh(now=end)
    seconds = time.perf_counter() - started
    by_tier: dict[str, list[float]] = {}
    last_1m = None
    for statement, params, ms in capture.calls:
        text = sql_text(statement)
        for table in ("points_1m", "points_1h", "points_1d"):
            if text.startswith(f'INSERT INTO "{table}"'):
                by_tier.setdefault(table, []).append(ms)
                if table == "points_1m":
                    last_1m = (statement, params)
        if text.startswith("CALL refresh_continuous_aggregate"):
            by_tier.setdefault(str(params[0]), []).append(ms)
    result = {
        "seconds": round(seconds, 2),
        "steps": info.get("steps"),
        "watermark": info.get("watermark"),
        "refresh": info,
        "postgres_backend_cpu_seconds": round(postgres_backend_cpu_seconds(pid) - cpu, 1),
        "statements_by_tier": {
            table: {
                "count": len(values),
                "total_seconds": round(sum(values) / 1000, 2),
                "median_ms": round(statistics.median(values), 1),
                "max_ms": round(max(values), 1),
            }
            for table, values in by_tier.items()
        },
    }
    return result, last_1m


def rollup_relations(cursor) -> list[str]:
    """Where the tiers' rows are stored: the tables (plain PostgreSQL) or the aggregates' materializations."""
    cursor.execute("SELECT to_regclass('timescaledb_information.continuous_aggregates') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return ["points_1m", "points_1h", "points_1d"]
    cursor.execute(
        "SELECT view_name, format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) "
        "FROM timescaledb_information.continuous_aggregates ORDER BY view_name"
    )
    return [relation for _, relation in cursor.fetchall()]


def maintenance() -> dict:
    from django.db import connection

    timings = {}
    with connection.cursor() as cursor:
        for table in ("points", *rollup_relations(cursor), "storage_series"):
            started = time.perf_counter()
            cursor.execute(f"VACUUM (ANALYZE) {table}")
            timings[table] = round(time.perf_counter() - started, 2)
    return {
        "vacuum_analyze_seconds": timings,
        "note": "VACUUM (ANALYZE) after the load, as autovacuum would do: fresh planner statistics and visibility "
        "maps for the queries below.",
    }


def sizes_timescaledb(cursor) -> dict:
    """Sizes on TimescaleDB: the hypertable (chunks, compressed or not) and each aggregate's materialization."""
    started = time.perf_counter()
    cursor.execute("SELECT count(*) FROM points")
    points = cursor.fetchone()[0]
    count_seconds = time.perf_counter() - started
    cursor.execute("SELECT table_bytes, index_bytes, toast_bytes, total_bytes FROM hypertable_detailed_size('points')")
    heap, indexes, toast, total = cursor.fetchone()
    cursor.execute(
        "SELECT count(*), count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'points'"
    )
    chunks, compressed = cursor.fetchone()
    rollups = {}
    cursor.execute(
        "SELECT view_name, format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) "
        "FROM timescaledb_information.continuous_aggregates ORDER BY view_name"
    )
    for view, relation in cursor.fetchall():
        cursor.execute(f"SELECT count(*), hypertable_size('{relation}') FROM {relation}")  # noqa: S608 (catalog)
        rows, size = cursor.fetchone()
        rollups[view] = {"rows": rows, "total_bytes": size}
    sizes = {
        "points_total_bytes": total, "points_heap_bytes": heap, "points_index_bytes": indexes,
        "points_toast_bytes": toast, "bytes_per_point": round(total / max(points, 1), 1), "chunks": chunks,
        "compressed_chunks": compressed, "rollups": rollups,
    }  # fmt: skip
    return {"points_counted": points, "count_star_seconds": round(count_seconds, 2), "sizes": sizes}


def sizes_and_counts() -> dict:
    from django.db import connection

    from apps.storage.backends import backend_for

    sizes: dict = {"points_partitions": []}
    with connection.cursor() as cursor:
        if backend_for().name == "timescaledb":
            return sizes_timescaledb(cursor)
        cursor.execute(
            "SELECT c.relname, pg_relation_size(c.oid), pg_indexes_size(c.oid), pg_total_relation_size(c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'points'::regclass "
            "ORDER BY c.relname"
        )
        for name, heap, indexes, total in cursor.fetchall():
            if total > 16_384:
                sizes["points_partitions"].append({"name": name, "heap": heap, "indexes": indexes, "total": total})
        started = time.perf_counter()
        cursor.execute("SELECT count(*) FROM points")
        points = cursor.fetchone()[0]
        count_seconds = time.perf_counter() - started
        sizes["points_total_bytes"] = sum(item["total"] for item in sizes["points_partitions"])
        sizes["points_heap_bytes"] = sum(item["heap"] for item in sizes["points_partitions"])
        sizes["points_index_bytes"] = sum(item["indexes"] for item in sizes["points_partitions"])
        sizes["bytes_per_point"] = round(sizes["points_total_bytes"] / max(points, 1), 1)
        rollups = {}
        for table in ("points_1m", "points_1h", "points_1d"):
            cursor.execute(f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}")  # noqa: S608
            rows, total = cursor.fetchone()
            rollups[table] = {"rows": rows, "total_bytes": total}
        sizes["rollups"] = rollups
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid), pg_relation_size(indexrelid) "
            "FROM pg_index WHERE indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'points'::regclass) "
            "ORDER BY 1"
        )
        sizes["points_partition_indexes"] = [
            {"name": name, "definition": definition, "bytes": size} for name, definition, size in cursor.fetchall()
        ]
    return {"points_counted": points, "count_star_seconds": round(count_seconds, 2), "sizes": sizes}


def postgres_settings() -> dict:
    from django.db import connection

    names = (
        "shared_buffers", "work_mem", "effective_cache_size", "max_wal_size", "synchronous_commit",
        "max_parallel_workers_per_gather", "jit", "random_page_cost",
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        settings = {"server_version": cursor.fetchone()[0]}
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        row = cursor.fetchone()
        settings["timescaledb_version"] = row[0] if row else None
        for name in names:
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
    return settings


def compression_timescaledb(backend) -> dict:
    """Run the compression job (TimescaleDB) over the chunks older than STORAGE_COMPRESS_AFTER_DAYS, which the
    backfill filled, and report what the compressed chunks take per point."""
    from django.conf import settings
    from django.db import connection

    started = time.perf_counter()
    backend.compression_job_run()
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(before_compression_total_bytes), 0), "
            "coalesce(sum(after_compression_total_bytes), 0) FROM chunk_compression_stats('points') "
            "WHERE compression_status = 'Compressed'"
        )
        chunks, before, after = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM points WHERE time < now() - make_interval(days => %s)",
            [settings.STORAGE_COMPRESS_AFTER_DAYS],
        )
        points = cursor.fetchone()[0]
    return {
        "seconds": round(seconds, 1),
        "compressed_chunks": chunks,
        "points_in_compressed_chunks": points,
        "bytes_before": int(before),
        "bytes_after": int(after),
        "bytes_per_point_compressed": round(float(after) / points, 2) if points else None,
        "note": "the compression job over the backfill's older chunks, after the backfill phase",
    }
