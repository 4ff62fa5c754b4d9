"""Nothing acknowledged is lost: the writer is killed between its COPY and its commit, then the batch is resent."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest
from django.db import connection

from apps.ingestion.models import DeadLetter
from tests.conftest import daphne_start, daphne_stop
from tests.ingestion.factories import source_with_key, stored_points

pytestmark = pytest.mark.usefixtures("storage_committed_cleanup")


def _post(address: str, key: str, records: list[dict]) -> tuple[int | None, dict | str]:
    request = urllib.request.Request(
        f"http://{address}/api/v1/sources/plant/ingest",
        data=json.dumps(records).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        return None, repr(error)


def _batch(start: int, count: int, *, bad: bool = False) -> list[dict]:
    records = [{"time": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z", "device": "d1", "t": float(i)}
               for i in range(start, start + count)]  # fmt: skip
    if bad:
        records.append({"time": "not a time", "device": "d1", "t": 0.0})
    return records


def _lock_waiters(database: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' AND query ILIKE %s",
            [database, "%ingestion_deadletter%"],
        )
        return cursor.fetchone()[0]


def test_killing_the_writer_between_copy_and_commit_loses_nothing_acknowledged():
    source, key = source_with_key(slug="plant")
    database = connection.settings_dict["NAME"]
    process, address = daphne_start(database_name=database)
    try:
        status, body = _post(address, key, _batch(0, 100))
        assert status == 200, body  # acknowledged: must survive everything below

        # Hold the dead-letter table so the next batch stops after its COPY into points, before its commit.
        blocker = psycopg.connect(host="127.0.0.1", user="postgres", dbname=database, autocommit=False)
        blocker.execute("LOCK TABLE ingestion_deadletter IN ACCESS EXCLUSIVE MODE")
        outcome: dict = {}
        sender = threading.Thread(target=lambda: outcome.update(result=_post(address, key, _batch(100, 50, bad=True))))
        sender.start()
        deadline = time.monotonic() + 20
        while _lock_waiters(database) == 0:
            assert time.monotonic() < deadline, "the writer never reached the dead-letter insert"
            time.sleep(0.05)
        with connection.cursor() as cursor:  # the COPY has happened: the writer holds a lock on points
            cursor.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE a.datname = %s AND a.wait_event_type = 'Lock' AND l.granted "
                "AND l.relation::regclass::text LIKE 'points%%'",
                [database],
            )
            assert cursor.fetchone()[0] >= 1
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        blocker.rollback()
        blocker.close()
        sender.join(timeout=30)
        status, _ = outcome["result"]
        assert status is None  # the sender never got an acknowledgement for the killed batch
    finally:
        daphne_stop(process)

    # PostgreSQL rolled the killed transaction back once its connection died.
    deadline = time.monotonic() + 10
    while True:
        values = [value for *_, value, _ in stored_points(source=source)]
        if values == [float(i) for i in range(100)] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert values == [float(i) for i in range(100)]
    assert not DeadLetter.objects.filter(source=source).exists()

    # The sender retries after the crash: stored once, and a second retry does not double count.
    process, address = daphne_start(database_name=database)
    try:
        for _ in range(2):
            status, body = _post(address, key, _batch(100, 50, bad=True))
            assert status == 200, body
            assert (body["accepted"], body["rejected"]) == (50, 1)
    finally:
        daphne_stop(process)
    assert [value for *_, value, _ in stored_points(source=source)] == [float(i) for i in range(150)]
    # Both deliveries were told about the refusal; the store keeps the refused record once and counts the resend.
    letter = DeadLetter.objects.get(source=source)
    assert (letter.error_code, letter.record_index, letter.occurrences) == ("invalid_time", 50, 2)
