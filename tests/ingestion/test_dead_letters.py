"""Dead letters are idempotent: a redelivered refused record is kept once while pending, even under concurrency."""

from __future__ import annotations

import threading

import pytest
from django.db import transaction

from apps.ingestion.models import DeadLetter, PayloadFormat, Transport
from apps.ingestion.parsers.json_records import json_records_parse
from apps.ingestion.records import PayloadError
from apps.ingestion.services import (
    batch_ingest,
    dead_letter_key,
    dead_letters_discard,
    dead_letters_replay,
    ingest_targets_forget,
    payload_dead_letter,
)
from apps.sources.services import schema_version_create
from tests.ingestion.factories import source_with_key, stored_points
from tests.waiting import database_thread, lock_waiters, wait_for

STRICT = {"measures": {"t": {"type": "number", "max": 10}}}
BAD = b'[{"time": "2026-01-01T00:00:00Z", "t": 50}]'


def _ingest(source_id: int, body: bytes = BAD, *, transport: str = Transport.HTTP, context: dict | None = None):
    return batch_ingest(
        source_id=source_id,
        parsed=json_records_parse(body),
        transport=transport,
        payload_format=PayloadFormat.JSON,
        context=context,
    )


@pytest.mark.django_db
def test_redelivery_bumps_the_pending_letter_and_keeps_the_first_arrival():
    source, _ = source_with_key(schema_mode="strict", schema=STRICT)
    first = _ingest(source.id)
    second = _ingest(source.id)
    assert (first.rejected, second.rejected) == (1, 1)  # the sender is told both times
    assert first.dead_letter_ids == second.dead_letter_ids
    letter = DeadLetter.objects.get(source=source)
    assert letter.occurrences == 2
    assert letter.received_at < letter.last_received_at  # replay stamps timeless records with the first arrival
    assert letter.dedup_key == dead_letter_key(
        transport=Transport.HTTP, payload_format=PayloadFormat.JSON, context={}, record_index=0,
        error_code="out_of_range", raw=letter.raw,
    )  # fmt: skip


@pytest.mark.django_db
def test_what_identifies_a_letter():
    """Transport, precision and error code tell letters apart; context that describes the delivery does not."""
    source, _ = source_with_key(schema_mode="strict", schema=STRICT)
    _ingest(source.id, context={"topic": "a", "connector": "mqtt:plant"})
    _ingest(source.id, context={"topics": ["a", "b"], "connector": "mqtt:plant"})  # batched differently
    _ingest(source.id, transport=Transport.MQTT)
    _ingest(source.id, body=b'[{"time": "2026-01-01T00:00:00Z", "t": "x"}]')  # another record
    assert sorted(DeadLetter.objects.values_list("transport", "occurrences", "error_code")) == [
        ("http", 1, "wrong_type"),
        ("http", 2, "out_of_range"),
        ("mqtt", 1, "out_of_range"),
    ]
    assert dead_letter_key(
        transport="influx_v2", payload_format="line", context={"precision": "s"}, record_index=0,
        error_code="invalid_time", raw="cpu v=1 1",
    ) != dead_letter_key(
        transport="influx_v2", payload_format="line", context={"precision": "ms"}, record_index=0,
        error_code="invalid_time", raw="cpu v=1 1",
    )  # fmt: skip


@pytest.mark.django_db
def test_identical_records_in_one_batch_from_two_messages_are_one_letter():
    """Two deliveries of one message in the same connector batch (records of both have index 0)."""
    source, _ = source_with_key(schema_mode="strict", schema=STRICT)
    parsed = json_records_parse(BAD)
    again = json_records_parse(BAD)
    parsed.records.extend(again.records)
    result = batch_ingest(source_id=source.id, parsed=parsed, transport=Transport.MQTT, payload_format="json")
    assert result.rejected == 2
    assert DeadLetter.objects.get(source=source).occurrences == 2


@pytest.mark.django_db
def test_replayed_or_discarded_letters_are_not_reopened_and_a_failed_replay_keeps_merging():
    source, _ = source_with_key(schema_mode="strict", schema=STRICT)
    _ingest(source.id)
    assert dead_letters_replay(source=source).still_failing == 1
    _ingest(source.id)  # still pending after the failed replay: the same letter
    assert list(DeadLetter.objects.values_list("occurrences", "replay_attempts")) == [(2, 1)]
    dead_letters_discard(source=source)
    _ingest(source.id)
    assert sorted(DeadLetter.objects.values_list("status", "occurrences")) == [("discarded", 2), ("pending", 1)]
    schema_version_create(source=source, mode="strict", definition={"measures": {"t": {"type": "number"}}})
    ingest_targets_forget(source_id=source.id)
    assert dead_letters_replay(source=source).replayed == 1
    schema_version_create(source=source, mode="strict", definition=STRICT, breaking=True)
    ingest_targets_forget(source_id=source.id)
    _ingest(source.id)  # refused again after the replay: a new letter, the replayed one is history
    assert sorted(DeadLetter.objects.values_list("status", "occurrences")) == [
        ("discarded", 2),
        ("pending", 1),
        ("replayed", 1),
    ]
    assert len(stored_points(source=source)) == 1


@pytest.mark.django_db
def test_a_whole_payload_refused_twice_is_one_letter():
    source, _ = source_with_key()
    error = PayloadError("invalid_json", "not JSON")
    ids = {
        payload_dead_letter(source_id=source.id, error=error, raw="{nope", transport="mqtt", payload_format="json",
                            context={"topic": "plant/d1"})
        for _ in range(2)
    }  # fmt: skip
    assert len(ids) == 1
    assert DeadLetter.objects.get(source=source).occurrences == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_cannot_race_into_two_letters(storage_committed_cleanup):
    """The first writer holds its transaction open; the second must wait on the unique index, then merge."""
    source, _ = source_with_key(schema_mode="strict", schema=STRICT)
    first_stored = threading.Event()
    release_first = threading.Event()
    failures: list[BaseException] = []

    def first() -> None:
        with transaction.atomic():
            _ingest(source.id)
            first_stored.set()
            release_first.wait(20)

    def second() -> None:
        first_stored.wait(20)
        _ingest(source.id)

    threads = [database_thread(first, failures), database_thread(second, failures)]
    for thread in threads:
        thread.start()
    try:
        assert first_stored.wait(20)

        wait_for(lambda: lock_waiters() > 0, timeout=10.0, what="the second writer to wait for the first one's letter")
    finally:
        release_first.set()
        for thread in threads:
            thread.join(30)
    assert not failures, failures
    letter = DeadLetter.objects.get(source=source)
    assert letter.occurrences == 2
