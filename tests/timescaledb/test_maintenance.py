"""Maintenance with TimescaleDB's scheduler in the picture: one owner per job, one lock taken first by all of them,
and nothing lost when jobs, writes and refreshes interleave.

PGlite serves one connection at a time and has no scheduler. So the scheduler is modelled: a thread runs our jobs
with `CALL run_job` from its own connections (as TimescaleDB's background workers run them) while other threads
write and refresh. The server takes connections in turns, so the three interleave job by job, in an order nobody
chose, but never inside one another: what that shows is that no interleaving loses a rollup. That a job and the
app's refresh never hold locks the other waits for is shown by the SQL each side takes (below) and, with two real
backends, by tests/storage/test_timescaledb_lock_order.py on PostgreSQL.
"""

from __future__ import annotations

import random
import re
import threading
from collections import defaultdict
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from apps.storage.backends import timescaledb_jobs
from apps.storage.backends.timescaledb import TABLES
from apps.storage.tiers import TIER_1D, TIER_1H, TIER_1M, TIERS_FINE_TO_COARSE, bucket_floor
from tests.storage.factories import points_store, series_create, source_create
from tests.timescaledb.helpers import expected_rollups, materialized_rows, rows, storage_reinstall, value

LOCK = timescaledb_jobs.MAINTENANCE_LOCK_SQL


def _statements(run) -> list[str]:
    sent: list[str] = []

    def capture(execute, statement, params, many, context):
        sent.append(statement if isinstance(statement, str) else statement.as_string(connection.connection))
        return execute(statement, params, many, context)

    with connection.execute_wrapper(capture):
        run()
    return sent


def test_the_apps_refresh_holds_the_maintenance_lock_around_every_call(tsdb):
    source = source_create(slug="plant")
    series_id = series_create(source=source, metric="power", meter="m1")
    points_store(series_id, [(timezone.now() - timedelta(hours=2), 1.0)])
    first = _statements(tsdb.rollup_refresh)  # registers the meter key: its label tiers' history, forced
    assert sum("force => true" in statement for statement in first) == 3
    sent = _statements(tsdb.rollup_refresh)
    calls = [index for index, statement in enumerate(sent) if statement.startswith("CALL refresh_continuous_aggregate")]
    assert len(calls) == 6  # three per-series tiers, three label tiers
    for statements in (first, sent):
        assert statements[0] == f"SELECT pg_advisory_lock({LOCK})"
        assert statements[-1] == f"SELECT pg_advisory_unlock({LOCK})"
        assert not any("pg_advisory" in statement for statement in statements[1:-1])
    # One batch per refresh: TimescaleDB 2.28's batched refresh left the last changed bucket stale (#10221).
    assert all("options => " in sent[index] for index in calls)


def test_retention_changes_jobs_before_it_takes_the_lock_and_deletes_after(tsdb):
    source_create(slug="short", raw_retention_days=3)  # deletes
    source_create(slug="archive", raw_retention_days=200)  # moves the raw retention job
    sent = _statements(tsdb.retention_apply)
    lock = sent.index(f"SELECT pg_advisory_xact_lock({LOCK})")
    assert any("alter_job" in statement for statement in sent[:lock])  # the jobs' new drop_after
    assert not any("_job(" in statement for statement in sent[lock:])  # a running job holds its catalog row
    assert any(statement.startswith("DELETE") for statement in sent[lock:])
    assert not any(statement.startswith("DELETE") for statement in sent[:lock])


@pytest.mark.parametrize("procedure", [timescaledb_jobs.RETENTION_JOB, timescaledb_jobs.COMPRESSION_JOB])
def test_every_job_takes_the_lock_before_each_transaction_does_anything(tsdb, procedure):
    body = value("SELECT prosrc FROM pg_proc WHERE proname = %s", [procedure])
    statements = [part.strip() for part in re.split(r";", body.split("BEGIN", 1)[1]) if part.strip()]
    lock = f"PERFORM pg_advisory_xact_lock({LOCK})"
    assert statements[0] == lock
    # Every transaction (the first, and each after a COMMIT) starts with the lock before it reads or changes data.
    for index, statement in enumerate(statements[:-1]):
        if statement == "COMMIT" and not statements[index + 1].startswith("END LOOP"):
            assert statements[index + 1].endswith(lock), statements[index + 1]
    assert any("drop_chunks" in statement or "compress_chunk" in statement for statement in statements)


# --- jobs, writes and refreshes interleaved ---------------------------------------------------------------------
class _Steps:
    """Threads that each run a list of steps, every step on a connection of its own (PGlite serves one at a time)."""

    def __init__(self) -> None:
        self.failures: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.order: list[str] = []  # which thread ran each step, in the order they ran

    def run(self, name: str, steps) -> None:
        def body() -> None:
            try:
                for step in steps:
                    try:
                        step()
                        self.order.append(name)
                    finally:
                        connections.close_all()  # let the other threads' connections have their turn
            except BaseException as error:
                self.failures.append(error)

        self.threads.append(threading.Thread(target=body, name=name))

    def start_and_join(self) -> None:
        connection.close()  # the test's own connection would hold the server's one session
        for thread in self.threads:
            thread.start()
        for thread in self.threads:
            thread.join(timeout=600)
        assert not any(thread.is_alive() for thread in self.threads), "a thread is stuck"
        if self.failures:
            raise self.failures[0]


@pytest.fixture
def aged_plant(tsdb, settings):
    """Two facilities of meters (9 days of points every 20 minutes, one point 120 days ago, materialized while an
    archive source kept 500 days) and a source keeping raw points 3 days and minute rollups 5 (points 30, 20 and 1
    days ago).

    The short source's old points lie before anything the test writes later: a refresh recomputes whole buckets
    from the data left, so a late point of another source in a bucket where the short source's finer data is gone
    would recompute its coarser rollup without it (a limitation of per-source retention on TimescaleDB, see
    docs/storage.md), and TimescaleDB may merge the invalidated ranges of a refresh into one.
    """
    settings.STORAGE_LABEL_ROLLUP_MAX_VALUES = 2  # facility and pipe have label tiers, meter (4 values) none
    archive = source_create(slug="archive", raw_retention_days=500, rollup_1m_retention_days=500)
    tsdb = storage_reinstall()  # installed with the archive's retention: the old point can be materialized
    plant = source_create(slug="plant")
    short = source_create(slug="short", raw_retention_days=3, rollup_1m_retention_days=5)
    labels = {}
    for number in range(4):
        series_id = series_create(source=plant, metric="power", meter=f"m{number}", facility=f"f{number % 2}")
        labels[series_id] = ("plant", "facility", f"f{number % 2}")
    short_id = series_create(source=short, metric="power", pipe="p1")
    labels[short_id] = ("short", "pipe", "p1")
    today = bucket_floor(timezone.now(), 86_400)
    truth: dict = {}

    def store(series_id, points):
        points_store(series_id, points)
        truth.update({(series_id, moment): point for moment, point in points})

    for series_id in labels:
        if series_id == short_id:
            store(series_id, [(today - timedelta(days=age, hours=-hour), float(age)) for age in (30, 20, 1) for hour in
                              range(3)])  # fmt: skip
            continue
        store(series_id, [(today - timedelta(days=120, minutes=-7), float(series_id))])
        start = today - timedelta(days=9)
        store(series_id, [(start + step * timedelta(minutes=20), float(step % 13 + series_id)) for step in
                          range(9 * 72) if start + step * timedelta(minutes=20) < timezone.now()])  # fmt: skip
    tsdb.rollup_refresh()
    archive.raw_retention_days = archive.rollup_1m_retention_days = None
    archive.save()
    return {"backend": tsdb, "truth": truth, "labels": labels, "short": short_id, "today": today}


@pytest.mark.slow
def test_jobs_writes_and_refreshes_interleaved_lose_no_rollup(aged_plant):
    """The modelled scheduler runs every job (retention of each table, compression) again and again while a writer
    sends live points, late points (into compressed chunks too) and redeliveries, and the app refreshes and applies
    retention: every step succeeds, and afterwards every tier holds exactly what its retention keeps."""
    backend, truth, labels = aged_plant["backend"], aged_plant["truth"], aged_plant["labels"]
    today, short_id = aged_plant["today"], aged_plant["short"]
    plant_ids = [series_id for series_id in labels if series_id != aged_plant["short"]]
    job_ids = list(backend.jobs_ids().values())
    assert len(job_ids) == len(TABLES) + 1
    rng = random.Random(16)
    written: dict = {}

    def write(round_number: int) -> None:
        now = timezone.now()
        batch = {}
        for series_id in plant_ids:
            batch[(series_id, now - timedelta(seconds=30 + round_number))] = float(round_number)  # live
            late = today - timedelta(days=rng.choice([2, 3]), minutes=rng.randrange(600), seconds=round_number)
            batch[(series_id, late)] = float(series_id * 100 + round_number)  # late, in materialized buckets
        # Into a chunk the compression job compresses, and a redelivery with a new value (the upsert path).
        old = today - timedelta(days=9) + timedelta(minutes=20 * rng.randrange(36))
        batch[(plant_ids[0], old)] = 1000.0 + round_number
        for (series_id, moment), point in batch.items():
            points_store(series_id, [(moment, point)])
        written.update(batch)

    rounds = 6
    steps = _Steps()
    steps.run("writer", [lambda number=number: write(number) for number in range(rounds)])
    app_steps = []
    for number in range(rounds):
        app_steps.append(backend.rollup_refresh)
        if number % 2:
            app_steps.append(backend.retention_apply)
    steps.run("app", app_steps)
    scheduler_steps = []
    for _ in range(2):
        for job_id in rng.sample(job_ids, len(job_ids)):
            scheduler_steps.append(lambda job_id=job_id: rows_call("CALL run_job(%s)", [job_id]))
    steps.run("scheduler", scheduler_steps)
    steps.start_and_join()
    truth.update(written)
    switches = sum(first != second for first, second in zip(steps.order, steps.order[1:], strict=False))
    assert switches >= 10, steps.order  # they did interleave

    backend.retention_apply()
    backend.rollup_refresh()
    now = timezone.now()
    kept = {
        TIER_1M: lambda series_id, bucket: bucket >= now - timedelta(days=5 if series_id == short_id else 90),
        TIER_1H: lambda series_id, bucket: True,
        TIER_1D: lambda series_id, bucket: True,
    }
    for tier in TIERS_FINE_TO_COARSE:
        complete = bucket_floor(now, tier.seconds)
        expected = {key: row for key, row in expected_rollups(truth, tier).items()
                    if key[1] < complete and kept[tier](*key)}  # fmt: skip
        got = {key: row for key, row in materialized_rows(tier).items() if key[1] < complete}
        assert got.keys() == expected.keys(), (tier, sorted(set(got) ^ set(expected))[:5])
        for key, row in expected.items():
            assert (got[key][0], *got[key][2:]) == (row[0], *row[2:]), (tier, key, got[key], row)
            assert got[key][1] == pytest.approx(row[1], rel=1e-12), (tier, key)
        # The label tiers hold the per-series rows summed per label value.
        by_label: dict = defaultdict(lambda: [0, 0.0])
        for (series_id, bucket), row in got.items():
            source, key, label_value = labels[series_id]
            by_label[(source, key, label_value, bucket)][0] += row[0]
            by_label[(source, key, label_value, bucket)][1] += row[1]
        label_rows = rows(
            f"SELECT src.slug, l.label_key, l.label_value, l.bucket, l.count, l.sum FROM {tier.labels_table} l "  # noqa: S608
            "JOIN sources_source src ON src.id = l.source_id WHERE l.bucket < %s",
            [complete],
        )
        assert {(slug, key, label_value, bucket): [count, pytest.approx(total, rel=1e-12)]
                for slug, key, label_value, bucket, count, total in label_rows} == dict(by_label), tier  # fmt: skip
    # Raw points went by the jobs and the deletes: the 120-day-old chunk, and the short source's old points.
    assert value("SELECT count(*) FROM points WHERE time < %s", [today - timedelta(days=100)]) == 0
    assert value("SELECT count(*) FROM points WHERE series_id = %s", [aged_plant["short"]]) == 3


def rows_call(statement: str, parameters: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, parameters)
