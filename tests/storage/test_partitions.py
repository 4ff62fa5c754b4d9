"""Daily partitions (plain PostgreSQL): created by the write that needs them, remembered only once committed,
forgotten when retention drops them in any process, and never a deadlock with the rollup refresh."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.storage.backends import backend_for
from apps.storage.backends.postgres import PostgresBackend
from tests.storage.factories import series_create, source_create
from tests.waiting import database_thread, lock_waiters, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _day_ago(days: int) -> datetime:
    """Noon, `days` days ago: a day whose partition the install did not create."""
    return (timezone.now() - timedelta(days=days)).replace(hour=12, minute=0, second=0, microsecond=0)


def _partition(moment: datetime) -> str:
    return f"points_p{moment.astimezone(UTC):%Y%m%d}"


def _partitions() -> set[str]:
    return set(backend_for().partitions_list())


def _count(series_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM points WHERE series_id = %s", [series_id])
        return cursor.fetchone()[0]


@pytest.fixture
def series_id(storage_committed_cleanup) -> int:
    return series_create(source=source_create(slug="parts"), metric="m", device="d1")


def test_a_rolled_back_write_does_not_leave_its_partition_remembered(series_id):
    """The partition went with the rollback; remembering it turned every later write into that day into a 500."""
    # A day no partition holds yet (committed tests elsewhere may have left partitions for recent days).
    existing = _partitions()
    moment = next(_day_ago(days) for days in range(20, 3000) if _partition(_day_ago(days)) not in existing)
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012 - the write, then the batch fails
        backend_for().points_write([(series_id, moment, 1.0)])
        raise RuntimeError("the rest of the batch failed")
    assert _partition(moment) not in _partitions()
    backend_for().points_write([(series_id, moment, 2.0)])
    assert _partition(moment) in _partitions()
    assert _count(series_id) == 1


def test_a_partition_dropped_by_retention_in_another_process_is_created_again(series_id):
    writer = backend_for()
    moment = _day_ago(20)
    writer.points_write([(series_id, moment, 1.0)])
    assert moment.date() in writer._known_partitions
    # Another process (its own backend object) applies retention: 20 days is past the 7 days of raw points.
    result = PostgresBackend().retention_apply()
    assert _partition(moment) in result.dropped_partitions
    writer.points_write([(series_id, moment, 2.0)])  # was 500: "no partition of relation points found for row"
    assert _count(series_id) == 1


def test_a_partition_dropped_behind_the_epochs_back_is_created_again(series_id):
    writer = backend_for()
    moment = _day_ago(21)
    writer.points_write([(series_id, moment, 1.0)])
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {_partition(moment)}")  # by hand: no retention run, no epoch bump
    writer.points_write([(series_id, moment, 2.0)])
    assert _count(series_id) == 1


def test_a_write_creating_a_partition_and_the_refresh_do_not_deadlock(series_id):
    """The refresh holds the watermark FOR UPDATE and then reads points; a write that creates a partition takes
    the watermark FOR SHARE before it. Creating the partition first (inside the write, under ACCESS EXCLUSIVE on
    points) then waiting for the watermark deadlocked with the refresh's read."""
    errors: list[BaseException] = []
    refresh_locked, refresh_done = threading.Event(), threading.Event()
    moment = _day_ago(22)

    def refresh_like() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT watermark FROM storage_rollup_watermark FOR UPDATE")
            refresh_locked.set()
            wait_for(lambda: lock_waiters() >= 1, timeout=10, what="the write waiting")
            cursor.execute("SELECT count(*) FROM points WHERE time >= now() - interval '30 days'")
        refresh_done.set()

    def write() -> None:
        refresh_locked.wait(10)
        with transaction.atomic():  # as a batch is written: its series, points and dead letters in one transaction
            backend_for().points_write([(series_id, moment, 1.0)])

    threads = [database_thread(refresh_like, errors), database_thread(write, errors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert refresh_done.is_set()
    assert _count(series_id) == 1


def test_an_open_write_that_created_a_partition_holds_the_refresh_and_retention_back(settings, series_id):
    """Both wait for the write's commit (not the other way round), and then both succeed."""
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    errors: list[BaseException] = []
    written, release = threading.Event(), threading.Event()
    moment = _day_ago(23)

    def write_held_open() -> None:
        with transaction.atomic():
            backend_for().points_write([(series_id, moment, 1.0)])
            written.set()
            release.wait(10)

    results: dict[str, object] = {}

    def refresh() -> None:
        written.wait(10)
        results["refresh"] = backend_for().rollup_refresh()

    def retention() -> None:
        written.wait(10)
        results["retention"] = PostgresBackend().retention_apply()

    threads = [database_thread(work, errors) for work in (write_held_open, refresh, retention)]
    for thread in threads:
        thread.start()
    assert written.wait(10)
    wait_for(lambda: lock_waiters() >= 2, timeout=10, what="the refresh and retention waiting for the write")
    release.set()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert set(results) == {"refresh", "retention"}


def _unsummarized_ranges(partition: str) -> int:
    """BRIN ranges on `time` of `partition` not summarized yet (brin_summarize_new_values summarizes and counts them:
    the second call of two in a row returns 0)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(brin_summarize_new_values(i.indexrelid)), 0) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam AND a.amname = 'brin' "
            "WHERE i.indrelid = %s::regclass",
            [partition],
        )
        return cursor.fetchone()[0]


def test_the_refresh_summarizes_the_brin_ranges_that_live_writes_filled(settings):
    """PostgreSQL's autosummarize only queues a request for autovacuum, and a full server-wide queue drops it: an
    unsummarized range matches every time condition, so the newest seconds read raw scanned the whole day. Each
    refresh run summarizes the ranges filled in the partitions it reads (today's here)."""
    from tests.storage.conftest import storage_tables_reset

    settings.STORAGE_ROLLUP_GRACE_SECONDS = 60
    now = timezone.now().replace(microsecond=0)
    start = max(now - timedelta(minutes=20), now.replace(hour=0, minute=0, second=0))
    storage_tables_reset(watermark=start - timedelta(minutes=1))
    source = source_create(slug="brin")
    ids = [series_create(source=source, metric="m", device=f"d{index}") for index in range(60)]
    seconds = int((now - start).total_seconds())
    # 60 series at 1 Hz for up to 20 minutes: about 72,000 rows, several 128-page ranges.
    backend_for().points_write(
        [(series_id, start + timedelta(seconds=second), 1.0) for second in range(seconds) for series_id in ids]
    )
    result = backend_for().rollup_refresh(now=now)
    assert result["brin_ranges_summarized"] >= 2
    assert _unsummarized_ranges(_partition(now)) == 0
    assert _unsummarized_ranges(_partition(start)) == 0


def _partition_locked(partition: str, locked: threading.Event, release: threading.Event) -> None:
    """Hold the lock VACUUM and BRIN summarization take on `partition` until `release`."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {partition} IN SHARE UPDATE EXCLUSIVE MODE")
        locked.set()
        release.wait(30)


def test_the_refresh_skips_brin_summarization_when_a_partition_lock_is_not_granted_within_a_second(caplog):
    """VACUUM holds the partition's lock (and summarizes too): the run does not wait more than a second for it and
    goes on to refresh."""
    now = timezone.now()
    locked, release, errors = threading.Event(), threading.Event(), []
    holder = database_thread(lambda: _partition_locked(_partition(now), locked, release), errors)
    holder.start()
    try:
        assert locked.wait(10)
        result = backend_for().rollup_refresh(now=now)
    finally:
        release.set()
        holder.join(30)
    assert not errors, errors
    assert result["brin_ranges_summarized"] == 0
    assert "BRIN summarization skipped this run" in caplog.text


def test_the_refresh_fails_on_any_other_database_error_during_brin_summarization():
    """Only a lock timeout is skipped: a statement cancelled (here by statement_timeout, shorter than the lock
    timeout) fails the run instead of being logged and swallowed."""
    from django.db import OperationalError

    now = timezone.now()
    locked, release, errors = threading.Event(), threading.Event(), []
    holder = database_thread(lambda: _partition_locked(_partition(now), locked, release), errors)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = '200ms'")
        with pytest.raises(OperationalError, match="statement timeout"):
            backend_for().rollup_refresh(now=now)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout TO DEFAULT")
        release.set()
        holder.join(30)
    assert not errors, errors
