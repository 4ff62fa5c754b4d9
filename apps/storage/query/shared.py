"""Shared answers: identical queries under the same data scope are computed once while in flight, and served from a
short-lived cache of encoded answers that writes keep exact.

Twenty to forty people opening the same dashboard at shift change ask the same fifteen queries within a second or
two; computing each answer once and encoding it once is what lets one machine answer them all (bench/dashboards.py).

The key of an answer is everything it depends on:
- the spec, with its time range as the engine answers it: the bucket used, where reading starts and the number of
  buckets (aggregates start at a whole minute, see engine.aggregate_start, so `-1h` asked a second later is the
  same answer until a new minute starts); raw points keep their exact start and end;
- the data scope (row-level policies), so two principals share an answer only when they may read the same series;
- data generations: a counter per source and one for all sources, incremented after every commit that writes points
  (storage `points_write`, whatever the path: HTTP, MQTT, Kafka, uploads, replays, anomaly scores), and a global one
  incremented by retention, late-write refolds and source changes. A write is acknowledged only after its on-commit
  increment, so a query asked after a write's acknowledgement never matches an answer computed before it.

Generations are read before the request's `now` is fixed, and an answer computed up to `end` e1 is served to a
request whose end e2 >= e1 only when no point at or after e1 was stored before the generations were read: points
are stored at or before their commit (so before e1), except points dated in the future, whose latest time is kept
per source (`future`) and disables reuse until the window ends after it. So a shared answer equals the one the
request would compute; it is never stale.

Single flight: within a process, a request joins an identical computation in progress (a threading.Event); across
processes, the first takes a Redis lock (SET NX with a timeout) and the others wait for its answer in Redis,
computing it themselves if the holder fails or takes longer than the statement timeout. Redis being unreachable
costs sharing, never correctness: every request then computes its own answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings

from analytics_platform.redis_client import redis_client, redis_key
from apps.storage.policies import DataScope, data_scope_for
from apps.storage.query.engine import STATEMENT_TIMEOUT_MS, aggregate_start, query_bucket_seconds, query_execute
from apps.storage.query.generations import ALL, GLOBAL, future_key, generation_key
from apps.storage.query.spec import RAW, QuerySpec, query_spec_parse
from apps.storage.scope_events import SCOPE_GENERATION_KEY, scope_generation_as_read
from apps.storage.tiers import bucket_floor

logger = logging.getLogger(__name__)

# Waiting for another process's answer: how often to look, and for how long at most (then compute it here).
WAIT_POLL_SECONDS = 0.005
WAIT_LIMIT_SECONDS = STATEMENT_TIMEOUT_MS / 1000 + 1
# Answers larger than this are not cached (a 1,000-series raw export is computed per request).
MAX_CACHED_BYTES = 8 * 1024 * 1024


@dataclass
class SharingStats:
    """What this process did with answers (tests and the benchmark read it)."""

    computed: int = 0
    cache_hits: int = 0
    joined_in_process: int = 0
    joined_other_process: int = 0
    uncached: int = 0  # computed without sharing (Redis unreachable, answer too large, or sharing off)

    def reset(self) -> None:
        for item in dataclasses.fields(self):
            setattr(self, item.name, 0)

    def count(self, name: str) -> None:
        with _stats_lock:
            setattr(self, name, getattr(self, name) + 1)


_stats_lock = threading.Lock()


stats = SharingStats()


@dataclass
class _Flight:
    """An answer being computed in this process."""

    end: datetime  # of the leader's request: only requests ending no earlier join
    done: threading.Event = field(default_factory=threading.Event)
    answer: bytes | None = None
    answer_end: datetime | None = None  # the end the answer was computed to (a cached one may end earlier)
    error: BaseException | None = None


_flights: dict[str, _Flight] = {}
_flights_lock = threading.Lock()
# Source reference -> id, valid for one global generation (source changes increment it).
_source_ids: dict[str, tuple[bytes, int | None]] = {}


def query_answer_encoded(*, data: Any, principal: Any) -> bytes:
    """The JSON answer of POST /api/v1/query for `data` (the request body), shared when another request asks the
    same; raises QuerySpecError, DataAccessDenied and QueryTimeout as query_execute does."""
    source = query_spec_parse(data).source  # the spec again below, once generations are read
    if not settings.STORAGE_RESULT_CACHE_SECONDS:
        stats.count("uncached")
        return _encoded(query_execute(spec=query_spec_parse(data), principal=principal).as_dict())
    generations = _generations(source)
    # The scope generation came with the data generations (one round trip): the data scope is read under it.
    with scope_generation_as_read(None if generations is None else generations[2]):
        scope = data_scope_for(principal)
    spec = query_spec_parse(data, now=datetime.now(UTC))  # `now` after the generations: see the module doc
    if generations is None:
        stats.count("uncached")
        return _encoded(query_execute(spec=spec, scope=scope).as_dict())
    stamp, future, _ = generations
    if future is not None and future >= spec.end.timestamp():
        stats.count("uncached")  # a point dated after `end` may fall inside a later request's window
        return _encoded(query_execute(spec=spec, scope=scope).as_dict())
    key = _answer_key(spec, scope, stamp)
    return _shared(key, spec, scope)


def _shared(key: str, spec: QuerySpec, scope: DataScope) -> bytes:
    with _flights_lock:
        flight = _flights.get(key)
        mine = flight is None
        if flight is None:
            flight = _flights[key] = _Flight(end=spec.end)
    if not mine:
        # Joined only when the computation's window ends no later than ours (else it may hold points after our end).
        if flight.end <= spec.end and flight.done.wait(WAIT_LIMIT_SECONDS):
            if flight.error is not None:
                raise flight.error
            if flight.answer is not None:
                stats.count("joined_in_process")
                return _with_end(flight.answer, flight.answer_end, spec.end)
        answer, end = _answer(key, spec, scope)
        return _with_end(answer, end, spec.end)
    try:
        flight.answer, flight.answer_end = _answer(key, spec, scope)
        return _with_end(flight.answer, flight.answer_end, spec.end)
    except BaseException as error:
        flight.error = error
        raise
    finally:
        with _flights_lock:
            if _flights.get(key) is flight:
                del _flights[key]
        flight.done.set()


def _answer(key: str, spec: QuerySpec, scope: DataScope) -> tuple[bytes, datetime]:
    """(answer, the end it was computed to): from Redis, from another process's computation, or computed here."""
    client = redis_client()
    answer_key, lock_key = redis_key("query", "answer", key), redis_key("query", "computing", key)
    try:
        cached = _cached(client.get(answer_key), spec)
        if cached is not None:
            stats.count("cache_hits")
            return cached
        leader = bool(client.set(lock_key, b"1", nx=True, px=int(WAIT_LIMIT_SECONDS * 1000)))
    except Exception:
        logger.warning("storage: shared query answers unreachable; computing", exc_info=True)
        stats.count("uncached")
        return _encoded(query_execute(spec=spec, scope=scope).as_dict()), spec.end
    if not leader:
        cached = _wait_for_other_process(client, answer_key, lock_key, spec)
        if cached is not None:
            stats.count("joined_other_process")
            return cached
    try:
        stats.count("computed")
        answer = _encoded(query_execute(spec=spec, scope=scope).as_dict())
    except BaseException:
        if leader:
            _quietly(lambda: client.delete(lock_key))  # waiters compute it themselves
        raise
    if len(answer) <= MAX_CACHED_BYTES:
        # Stored with the end it was computed to: a request whose window ends earlier must not use it.
        stored = spec.end.isoformat().encode() + b"\n" + answer
        _quietly(lambda: client.set(answer_key, stored, px=settings.STORAGE_RESULT_CACHE_SECONDS * 1000))
    if leader:
        _quietly(lambda: client.delete(lock_key))  # after the answer is stored: waiters find one or the other
    return answer, spec.end


def _wait_for_other_process(client, answer_key: str, lock_key: str, spec: QuerySpec) -> tuple[bytes, datetime] | None:
    """The answer another process is computing, once stored; None if it gives up, fails or takes too long."""
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(WAIT_POLL_SECONDS)
        try:
            pipe = client.pipeline(transaction=False)
            pipe.get(answer_key)
            pipe.exists(lock_key)
            stored, computing = pipe.execute()
        except Exception:
            return None
        cached = _cached(stored, spec)
        if cached is not None or not computing:
            return cached
    return None


def _quietly(action) -> None:
    """Run a Redis write whose failure costs sharing only."""
    try:
        action()
    except Exception:
        logger.warning("storage: shared query answers: a Redis write failed", exc_info=True)


def _cached(stored: bytes | None, spec: QuerySpec) -> tuple[bytes, datetime] | None:
    if stored is None:
        return None
    end_text, _, answer = stored.partition(b"\n")
    end = datetime.fromisoformat(end_text.decode())
    return (answer, end) if end <= spec.end else None


def _generations(source: str | None) -> tuple[bytes, float | None, int] | None:
    """The generations an answer for `source` (None: all sources) depends on, as bytes for its key, the latest
    future point time of those sources, and the data scope generation (apps/storage/scope_events.py), all in one
    round trip; None when Redis is unreachable."""
    try:
        client = redis_client()
        known = _source_ids.get(source) if source is not None else (None, None)
        for _ in range(2):
            part = ALL if known is None or known[1] is None else known[1]
            keys = [generation_key(GLOBAL), generation_key(part), future_key(part), future_key(GLOBAL)]
            raw = client.mget([*keys, SCOPE_GENERATION_KEY])
            values = [value or b"-" for value in raw[:4]]
            if source is None or (known is not None and known[0] == values[0]):
                futures = [float(value) for value in values[2:] if value != b"-"]
                stamp = b"|".join([*values[:2], str(part).encode()])
                return stamp, max(futures, default=None), int(raw[4] or 0)
            known = (values[0], _source_id(source))
            _source_ids[source] = known
        return None
    except Exception:
        logger.warning("storage: shared query answers unreachable; computing", exc_info=True)
        return None


def _source_id(reference: str) -> int | None:
    """The one source a reference can name, else None (the generation of all sources then keys the answer): a slug
    used by several organisations keys on all of them, so no tenant's writes can leave another's answer stale."""
    from apps.sources.models import Source
    from apps.sources.references import source_reference_q

    ids = list(Source.objects.filter(source_reference_q(reference)).values_list("id", flat=True)[:2])
    return ids[0] if len(ids) == 1 else None


def _answer_key(spec: QuerySpec, scope: DataScope, generations: bytes) -> str:
    """What the answer depends on (see the module doc), hashed."""
    if spec.aggregation == RAW:
        window: tuple = ("raw", spec.start.isoformat(), spec.end.isoformat())
    else:
        bucket = query_bucket_seconds(spec)
        start = aggregate_start(spec.start, bucket)
        first = bucket_floor(spec.start, bucket)
        count = -(-int((spec.end - first).total_seconds() * 1_000_000) // (bucket * 1_000_000))
        window = (bucket, start.isoformat(), count)
    described = (
        spec.metric, spec.source, spec.aggregation, spec.filters, spec.bucket_seconds, spec.group_by, spec.limit,
        spec.fill, spec.max_points, spec.exact_bucket, spec.reduce, window, _scope_key(scope),
    )  # fmt: skip
    digest = hashlib.sha256(repr(described).encode())
    digest.update(b"|" + generations)
    return digest.hexdigest()


def _scope_key(value: Any) -> Any:
    """A data scope as a canonical, comparable value (whatever fields the scope grows)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            tuple((f.name, _scope_key(getattr(value, f.name))) for f in dataclasses.fields(value)),
        )
    if isinstance(value, Mapping):
        return tuple(sorted((repr(key), _scope_key(item)) for key, item in value.items()))
    if isinstance(value, set | frozenset):
        return tuple(sorted(map(repr, value)))
    if isinstance(value, list | tuple):
        return tuple(_scope_key(item) for item in value)
    return repr(value)


def _encoded(answer: dict) -> bytes:
    return orjson.dumps(answer)


def _with_end(answer: bytes, computed_end: datetime, end: datetime) -> bytes:
    """The answer with its `end` field set to the request's (the only field that differs)."""
    if computed_end == end:
        return answer
    old, new = _end_field(computed_end), _end_field(end)
    return answer.replace(old, new, 1)


def _end_field(end: datetime) -> bytes:
    return b'"end":"' + end.astimezone(UTC).isoformat().replace("+00:00", "Z").encode() + b'"'


def shared_answers_forget() -> None:
    """Forget this process's source ids and statistics (tests: their data is rolled back)."""
    _source_ids.clear()
    stats.reset()
