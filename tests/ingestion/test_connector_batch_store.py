"""BatchStore, the part both connectors share, against the real PostgreSQL and Redis without a broker: which
failures are retried and which isolate a poison message, and what is acknowledged when."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import psycopg
import pytest
import redis
from django.db import DataError, IntegrityError, InterfaceError, OperationalError

from analytics_platform.redis_client import redis_client
from apps.ingestion import stats
from apps.ingestion.connectors import BatchStore, ParsedMessage, message_parse
from apps.ingestion.connectors.batch_store import backoff_seconds, dependency_down, unstorable_reason
from apps.ingestion.models import DeadLetter
from tests.conftest import free_port
from tests.ingestion.factories import source_with_key, stored_points
from tests.waiting import wait_for


@pytest.mark.parametrize(
    ("error", "down"),
    [
        (OperationalError("server closed the connection unexpectedly"), True),
        (InterfaceError("connection already closed"), True),
        (psycopg.OperationalError("connection refused"), True),
        (redis.exceptions.ConnectionError("Connection refused"), True),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (DataError("invalid input syntax for type json"), False),
        (IntegrityError("duplicate key"), False),
        (OverflowError("int too large to convert to float"), False),
        (KeyError("a bug"), False),
    ],
)
def test_only_an_unreachable_dependency_is_retried_whole(error, down):
    assert dependency_down(error) is down


def test_a_wrapped_dependency_failure_is_still_one():
    error = RuntimeError("while storing")
    error.__cause__ = psycopg.OperationalError("connection refused")
    assert dependency_down(error)


def test_backoff_grows_exponentially_up_to_a_cap_with_jitter():
    assert 0.25 <= backoff_seconds(1) <= 0.5
    assert 2.0 <= backoff_seconds(4) <= 4.0
    assert all(15.0 <= backoff_seconds(attempt) <= 30.0 for attempt in (7, 20, 1000))


def test_the_reason_shown_is_the_class_and_a_short_first_line():
    error = DataError('invalid input syntax for type json\nDETAIL:  ...\nCONTEXT:  COPY points, line 1: "\ud800"')
    assert unstorable_reason(error) == "DataError: invalid input syntax for type json"
    assert unstorable_reason(ValueError("x" * 500)).endswith("…")
    assert len(unstorable_reason(ValueError("x" * 500))) == 200
    assert unstorable_reason(ValueError("bad \ud800 label")) == "ValueError: bad \\ud800 label"


def _message(payload: str | bytes, handle: int) -> ParsedMessage:
    body = payload.encode() if isinstance(payload, str) else payload
    return message_parse(
        payload=body, topic="plant/1", payload_format="json", precision="ns", topic_label=False, handle=handle
    )


def _good(second: int) -> str:
    return json.dumps({"time": f"2026-01-01T00:00:{second:02d}Z", "device": "d1", "temperature": second})


def test_poison_messages_are_dead_lettered_whole_and_everything_is_acknowledged_once_in_order(
    db, database_refuses_poison
):
    """A message the database refuses is dead-lettered whole as unstorable; odd values are refused per record."""
    source, _ = source_with_key(slug="poisoned", kind="mqtt", config={"topic": "test-org/plant/+"})
    poison = '{"time": "2026-01-01T00:00:02Z", "device": "poison", "temperature": 2}'
    surrogate = '{"time": "2026-01-01T00:00:04Z", "device": "\\ud800", "temperature": 2}'
    huge = '{"time": "2026-01-01T00:00:05Z", "device": "d1", "temperature": ' + "9" * 400 + "}"
    payloads = [_good(0), _good(1), poison, _good(3), "{not json", huge, _good(6), surrogate, _good(7)]
    messages = [_message(payload, handle) for handle, payload in enumerate(payloads)]
    acknowledged: list[int] = []
    store = BatchStore(source_id=source.id, transport="mqtt", payload_format="json", connector_key="mqtt:poisoned")
    store.store(messages, stop=threading.Event(), acknowledge=lambda done: acknowledged.extend(m.handle for m in done))
    assert acknowledged == list(range(9))  # each message once, in arrival order
    assert [value for *_, value, _ in stored_points(source=source)] == [0.0, 1.0, 3.0, 6.0, 7.0]
    letters = {letter.raw: letter for letter in DeadLetter.objects.filter(source=source)}
    assert set(letters) == {poison, surrogate, huge, "{not json"}
    assert letters[poison].error_code == "unstorable"
    assert letters[poison].error_message.startswith("The message could not be stored (DataError: ")
    assert (letters[surrogate].error_code, letters[huge].error_code) == ("invalid_text", "invalid_number")
    assert all(letter.occurrences == 1 for letter in letters.values())  # bisection never counts a letter twice
    assert store.unstorable == 1


def test_a_message_whose_first_line_is_an_array_keeps_its_good_lines(db):
    """Issue 14's counterexample: several NDJSON messages, one holding a 400-digit integer, and one whose first line
    is an array. That message was read as one JSON document and refused whole, so its good record (d1, 0.0) was
    neither stored nor dead-lettered on its own. Now each line is accounted for."""
    source, _ = source_with_key(slug="array-first", kind="mqtt", config={"topic": "test-org/plant/+"})
    huge = '{"time": "2026-01-01T00:00:03Z", "device": "d3", "v": ' + "9" * 400 + "}"
    payloads = [
        _good(0) + "\n",
        '[2]\n{"time": "2026-01-01T00:00:01Z", "device": "d1", "v": 0.0}\n',
        huge + "\n" + _good(4) + "\n",
    ]
    messages = [_message(payload, handle) for handle, payload in enumerate(payloads)]
    acknowledged: list[int] = []
    store = BatchStore(source_id=source.id, transport="mqtt", payload_format="json", connector_key="mqtt:array")
    store.store(messages, stop=threading.Event(), acknowledge=lambda done: acknowledged.extend(m.handle for m in done))
    assert acknowledged == [0, 1, 2]
    stored = sorted((moment.second, metric, labels["device"], value) for metric, labels, moment, value, _ in
                    stored_points(source=source))  # fmt: skip
    assert stored == [(0, "temperature", "d1", 0.0), (1, "v", "d1", 0.0), (4, "temperature", "d1", 4.0)]
    letters = DeadLetter.objects.filter(source=source).values_list("record_index", "error_code", "raw")
    assert sorted(letters) == [(0, "invalid_number", huge), (0, "not_an_object", "[2]")]


def test_a_batch_larger_than_a_window_is_split_even_inside_one_message(db, monkeypatch):
    """One message of 12 records at 5 points per window: stored in record-pieces, acknowledged once at its end."""
    monkeypatch.setattr(stats, "WINDOW_SECONDS", 1)
    source, _ = source_with_key(
        slug="limited", kind="mqtt", config={"topic": "test-org/plant/+"}, rate_limit_points_per_second=5
    )
    big = json.dumps([json.loads(_good(second)) for second in range(12)])
    messages = [_message(big, 1), _message(_good(30), 2)]
    acknowledged: list[tuple[int, int]] = []
    store = BatchStore(source_id=source.id, transport="mqtt", payload_format="json", connector_key="mqtt:limited")
    store.store(
        messages,
        stop=threading.Event(),
        acknowledge=lambda done: acknowledged.append((len(stored_points(source=source)), *[m.handle for m in done])),
    )
    assert [handle for _, *handles in acknowledged for handle in handles] == [1, 2]
    assert acknowledged[0][0] == 12  # the big message is acknowledged only once all its records are stored
    assert len(stored_points(source=source)) == 13
    assert store.splits >= 2


def test_one_record_over_a_whole_window_waits_for_its_points_and_is_stored(db, monkeypatch):
    """12 points in one record at 5 points per 1-second window: it cannot be split, so it waits 3 windows."""
    monkeypatch.setattr(stats, "WINDOW_SECONDS", 1)
    source, _ = source_with_key(
        slug="wide", kind="mqtt", config={"topic": "test-org/plant/+"}, rate_limit_points_per_second=5
    )
    wide = json.dumps({"time": "2026-01-01T00:00:00Z", **{f"field{i}": i for i in range(12)}})
    acknowledged: list[int] = []
    store = BatchStore(source_id=source.id, transport="mqtt", payload_format="json", connector_key="mqtt:wide")
    started = time.monotonic()
    store.store(
        [_message(wide, 1)],
        stop=threading.Event(),
        acknowledge=lambda done: acknowledged.extend(m.handle for m in done),
    )
    assert time.monotonic() - started >= 3
    assert acknowledged == [1]
    assert len(stored_points(source=source)) == 12


def test_an_http_sender_is_told_to_split_a_batch_that_can_never_fit_a_window(db, client):
    source, key = source_with_key(rate_limit_points_per_second=1)  # 10 points per 10-second window
    records = [{"time": f"2026-01-01T00:00:{i:02d}Z", "t": i} for i in range(11)]
    response = client.post(
        "/api/v1/sources/plant/ingest",
        json.dumps(records),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 413  # not 429: retrying it whole would never succeed
    assert "Retry-After" not in response
    assert "at most 10 points" in response.content.decode()
    assert stored_points(source=source) == []


def test_while_redis_is_down_the_batch_waits_and_is_stored_once_it_is_back(storage_committed_cleanup, settings):
    """Redis (the rate limiter) on a port where nothing listens yet; a private redis-server is started there."""
    source, _ = source_with_key(
        slug="redisless", kind="mqtt", config={"topic": "test-org/plant/+"}, rate_limit_points_per_second=100
    )
    port = free_port()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    redis_client.cache_clear()
    store = BatchStore(source_id=source.id, transport="mqtt", payload_format="json", connector_key="mqtt:redisless")
    acknowledged: list[int] = []
    failures: list[BaseException] = []

    def work() -> None:
        try:
            store.store(
                [_message(_good(0), 1)], stop=threading.Event(), acknowledge=lambda done: acknowledged.append(1)
            )
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=work)
    server = None
    try:
        thread.start()
        wait_for(lambda: store.retries >= 2, timeout=10, what="two retries while Redis is down")
        assert acknowledged == []
        server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                                  stdout=subprocess.DEVNULL)  # fmt: skip
        thread.join(15)
        assert not thread.is_alive()
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        redis_client.cache_clear()
    assert not failures, failures
    assert acknowledged == [1]
    assert len(stored_points(source=source)) == 1
    assert not DeadLetter.objects.filter(source=source).exists()
