"""The JSON/NDJSON ingest endpoint against real PostgreSQL and Redis: what is sent is what is stored."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest
from django.test import override_settings

from apps.ingestion import views
from apps.ingestion.models import DeadLetter
from apps.sources.services import schema_version_create, source_set_enabled, write_key_cache_clear, write_key_revoke
from tests.ingestion.factories import source_with_key, stored_points

pytestmark = pytest.mark.django_db
T0 = "2026-01-01T00:00:00Z"
STRICT_SCHEMA = {
    "time": {"field": "time", "format": "iso8601"},
    "measures": {"temperature": {"type": "number", "min": -50, "max": 150, "required": True}},
    "labels": {"device": {"required": True}, "facility": {}},
    "unknown_fields": "reject",
}


def _post(client, slug, body, *, key, content_type="application/json", **headers):
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    return client.post(
        f"/api/v1/sources/{slug}/ingest",
        data=body,
        content_type=content_type,
        headers={"Authorization": f"Bearer {key}", **headers},
    )


def test_infer_mode_stores_one_point_per_number_with_strings_as_labels(client):
    source, key = source_with_key()
    record = {"time": T0, "device": "d1", "facility": "f1", "temperature": 21.5, "vibration": 0.3}
    response = _post(client, "plant", [record], key=key)
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 1, "rejected": 0, "points": 2, "errors": []}
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    labels = {"device": "d1", "facility": "f1"}
    assert stored_points(source=source) == [
        ("temperature", labels, moment, 21.5, 1),
        ("vibration", labels, moment, 0.3, 1),
    ]


def test_epoch_times_in_every_unit_and_timestamp_field(client):
    source, key = source_with_key()
    seconds = 1767225600  # 2026-01-01T00:00:00Z
    records = [
        {"timestamp": seconds, "device": "s", "v": 1},
        {"time": seconds * 1000 + 1, "device": "ms", "v": 2},
        {"time": seconds * 1_000_000 + 2, "device": "us", "v": 3},
        {"time": seconds * 1_000_000_000 + 3000, "device": "ns", "v": 4},
    ]
    assert _post(client, "plant", records, key=key).json()["accepted"] == 4
    times = {labels["device"]: moment for _, labels, moment, _, _ in stored_points(source=source)}
    base = datetime(2026, 1, 1, tzinfo=UTC)
    assert times["s"] == base
    assert (times["ms"] - base).total_seconds() == pytest.approx(0.001)
    assert (times["us"] - base).total_seconds() == pytest.approx(0.000002)
    assert (times["ns"] - base).total_seconds() == pytest.approx(0.000003)


def test_ndjson_with_gzip(client):
    source, key = source_with_key()
    lines = "\n".join(json.dumps({"time": f"2026-01-01T00:00:0{i}Z", "device": "d1", "t": i}) for i in range(5))
    response = _post(
        client, "plant", gzip.compress(lines.encode()), key=key, content_type="application/x-ndjson",
        **{"Content-Encoding": "gzip"},
    )  # fmt: skip
    assert response.status_code == 200, response.content
    assert [value for *_, value, _ in stored_points(source=source)] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_resending_a_batch_replaces_instead_of_double_counting(client):
    source, key = source_with_key()
    batch = [{"time": T0, "device": "d1", "t": 1.0}, {"time": "2026-01-01T00:00:01Z", "device": "d1", "t": 2.0}]
    assert _post(client, "plant", batch, key=key).status_code == 200
    batch[1]["t"] = 5.0
    assert _post(client, "plant", batch, key=key).status_code == 200
    assert [value for *_, value, _ in stored_points(source=source)] == [1.0, 5.0]


def test_bad_records_go_to_dead_letters_with_reason_and_good_ones_are_stored(client):
    source, key = source_with_key(schema_mode="strict", schema=STRICT_SCHEMA)
    batch = [
        {"time": T0, "device": "d1", "temperature": 20},
        {"time": T0, "device": "d2", "temperature": 400},
        {"time": T0, "temperature": 20},
        {"time": "yesterday", "device": "d3", "temperature": 20},
        {"time": T0, "device": "d4", "temperature": 20, "colour": "red"},
    ]
    response = _post(client, "plant", batch, key=key)
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"], body["points"]) == (1, 4, 1)
    assert [(e["index"], e["code"], e["field"]) for e in body["errors"]] == [
        (1, "out_of_range", "temperature"),
        (2, "missing_field", "device"),
        (3, "invalid_time", "time"),
        (4, "unknown_field", "colour"),
    ]
    letters = list(DeadLetter.objects.filter(source=source).order_by("record_index"))
    assert [(letter.record_index, letter.error_code, letter.schema_version) for letter in letters] == [
        (1, "out_of_range", 1), (2, "missing_field", 1), (3, "invalid_time", 1), (4, "unknown_field", 1),
    ]  # fmt: skip
    assert json.loads(letters[0].raw) == batch[1]
    assert "outside the allowed range" in letters[0].error_message
    assert [labels["device"] for _, labels, *_ in stored_points(source=source)] == ["d1"]


def test_a_json_body_of_lines_whose_first_is_an_array_is_read_as_ndjson(client):
    """Sent as application/json, lines whose first is an array were refused whole with 400 (issue 14)."""
    source, key = source_with_key()
    body = '[1]\n{"time": "2026-01-01T00:00:00Z", "device": "d1", "v": 0.0}\n'
    response = _post(client, "plant", body, key=key)
    assert response.status_code == 200, response.content
    assert (response.json()["accepted"], response.json()["rejected"]) == (1, 1)
    assert response.json()["errors"][0]["code"] == "not_an_object"
    assert stored_points(source=source) == [("v", {"device": "d1"}, datetime(2026, 1, 1, tzinfo=UTC), 0.0, 1)]
    assert list(DeadLetter.objects.filter(source=source).values_list("record_index", "raw")) == [(0, "[1]")]


def test_all_records_refused_answers_422(client):
    _, key = source_with_key(schema_mode="strict", schema=STRICT_SCHEMA)
    response = _post(client, "plant", [{"time": T0, "device": "d1", "temperature": 999}], key=key)
    assert response.status_code == 422
    assert response.json()["rejected"] == 1


def test_unparseable_body_is_400_and_kept_whole(client):
    source, key = source_with_key()
    response = _post(client, "plant", '[{"time": "2026-01-01T00:00:00Z", "t": 1', key=key)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    letter = DeadLetter.objects.get(source=source)
    assert letter.raw == '[{"time": "2026-01-01T00:00:00Z", "t": 1'
    assert letter.context == {"whole_payload": True}


def test_replay_after_a_compatible_schema_fix_stores_the_record(client, user):
    source, key = source_with_key(schema_mode="strict", schema=STRICT_SCHEMA)
    _post(client, "plant", [{"time": T0, "device": "d1", "temperature": 400}], key=key)
    assert stored_points(source=source) == []
    widened = json.loads(json.dumps(STRICT_SCHEMA))
    widened["measures"]["temperature"]["max"] = 500
    schema_v2 = schema_version_create(source=source, mode="strict", definition=widened)
    assert schema_v2.change == "compatible"
    from apps.ingestion.services import dead_letters_replay, ingest_targets_forget

    ingest_targets_forget(source_id=source.pk)
    outcome = dead_letters_replay(source=source)
    assert (outcome.replayed, outcome.still_failing) == (1, 0)
    assert stored_points(source=source) == [
        ("temperature", {"device": "d1"}, datetime(2026, 1, 1, tzinfo=UTC), 400.0, 2)
    ]
    assert DeadLetter.objects.get(source=source).status == "replayed"


def test_authentication_and_source_checks(client):
    source, key = source_with_key()
    _other, other_key = source_with_key(slug="other")
    record = [{"time": T0, "t": 1}]
    assert _post(client, "plant", record, key="").status_code == 401
    assert _post(client, "plant", record, key="swk_not-a-key").status_code == 401
    refused = _post(client, "plant", record, key=other_key)
    assert refused.status_code == 403
    assert "another source" in refused.json()["detail"]
    key_object = source.write_keys.get()
    write_key_revoke(key=key_object)
    write_key_cache_clear()
    assert _post(client, "plant", record, key=key).status_code == 401
    assert stored_points(source=source) == []


def test_paused_source_refuses_with_409_and_stores_nothing(client):
    source, key = source_with_key()
    source_set_enabled(source=source, enabled=False)
    from apps.ingestion.services import ingest_targets_forget

    ingest_targets_forget()
    response = _post(client, "plant", [{"time": T0, "t": 1}], key=key)
    assert response.status_code == 409
    assert "paused" in response.json()["detail"]
    assert stored_points(source=source) == []
    assert not DeadLetter.objects.exists()


@override_settings(INGEST_MAX_BODY_BYTES=2048)
def test_body_limits_answer_413_including_gzip_bombs(client):
    _, key = source_with_key()
    big = json.dumps([{"time": T0, "device": "x" * 100, "t": i} for i in range(40)])
    assert _post(client, "plant", big, key=key).status_code == 413
    bomb = gzip.compress(b" " * 100_000)
    response = _post(client, "plant", bomb, key=key, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompressed" in response.json()["detail"]


def test_rate_limited_source_answers_429_with_retry_after(client):
    source, key = source_with_key(rate_limit_points_per_second=1)  # 10 points per 10-second window
    records = [{"time": f"2026-01-01T00:00:0{i}Z", "t": i} for i in range(6)]
    assert _post(client, "plant", records, key=key).status_code == 200
    response = _post(client, "plant", records, key=key)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 10
    assert len(stored_points(source=source)) == 6


def test_in_flight_bound_answers_429(client):
    source, key = source_with_key()
    taken = 0
    while views._in_flight.acquire(blocking=False):
        taken += 1
    try:
        response = _post(client, "plant", [{"time": T0, "t": 1}], key=key)
    finally:
        for _ in range(taken):
            views._in_flight.release()
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert stored_points(source=source) == []


def test_series_limit_refuses_records_that_would_create_more_series(client):
    source, key = source_with_key(max_series=2)
    batch = [{"time": T0, "device": f"d{i}", "t": 1} for i in range(3)]
    body = _post(client, "plant", batch, key=key).json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["errors"][0]["code"] == "series_limit"
    assert DeadLetter.objects.get(source=source).error_code == "series_limit"


def test_a_resent_batch_keeps_each_refused_record_once_and_still_reports_it(client, editor):
    """An HTTP retry of a batch: the sender hears about every refusal again, the store keeps one letter each."""
    from tests.conftest import api_client_for

    source, key = source_with_key(schema_mode="strict", schema=STRICT_SCHEMA)
    batch = [
        {"time": T0, "device": "d1", "temperature": 20},
        {"time": T0, "device": "d2", "temperature": 400},
        {"time": T0, "temperature": 20},
    ]
    answers = [_post(client, "plant", batch, key=key).json() for _ in range(3)]
    for answer in answers:
        assert (answer["accepted"], answer["rejected"]) == (1, 2)
        assert [(error["index"], error["code"]) for error in answer["errors"]] == [(1, "out_of_range"),
                                                                                   (2, "missing_field")]  # fmt: skip
    letters = list(DeadLetter.objects.filter(source=source).order_by("record_index"))
    assert [(letter.record_index, letter.error_code, letter.occurrences) for letter in letters] == [
        (1, "out_of_range", 3),
        (2, "missing_field", 3),
    ]
    assert all(letter.last_received_at > letter.received_at for letter in letters)
    api = api_client_for(editor)
    assert api.get("/api/v1/sources/plant/stats").json()["dead_letters_by_code"] == {
        "out_of_range": 1,
        "missing_field": 1,
    }
    listed = api.get("/api/v1/sources/plant/dead-letters/").json()
    assert listed["count"] == 2
    assert {row["occurrences"] for row in listed["results"]} == {3}
    assert all(row["last_received_at"] for row in listed["results"])


def test_the_same_bad_line_at_another_position_or_after_discard_is_a_new_letter(client, editor):
    from tests.conftest import api_client_for

    source, key = source_with_key(schema_mode="strict", schema=STRICT_SCHEMA)
    bad = {"time": T0, "device": "d2", "temperature": 400}
    assert _post(client, "plant", [bad, bad], key=key).json()["rejected"] == 2
    assert DeadLetter.objects.filter(source=source, status="pending").count() == 2  # two records, not a resend
    response = api_client_for(editor).post("/api/v1/sources/plant/dead-letters/discard", {"all": True}, format="json")
    assert response.json() == {"discarded": 2}
    _post(client, "plant", [bad, bad], key=key)  # after the discard, a new arrival is a new letter
    assert DeadLetter.objects.filter(source=source, status="pending").count() == 2
    assert DeadLetter.objects.filter(source=source, status="discarded").count() == 2
    assert set(DeadLetter.objects.filter(source=source).values_list("occurrences", flat=True)) == {1}


def test_a_resent_unparseable_body_is_kept_once(client):
    source, key = source_with_key()
    for _ in range(2):
        assert _post(client, "plant", '[{"time": "2026-01-01T00:00:00Z", "t": 1', key=key).status_code == 400
    letter = DeadLetter.objects.get(source=source)
    assert (letter.record_index, letter.error_code, letter.occurrences) == (-1, "invalid_json", 2)
