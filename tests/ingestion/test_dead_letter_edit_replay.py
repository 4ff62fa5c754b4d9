"""Editing one dead letter and replaying it, through the REST API on real PostgreSQL: the record is stored, or
dead-lettered again with the reason it failed this time; never lost."""

from __future__ import annotations

import pytest

from apps.ingestion.models import DeadLetter, DeadLetterStatus, PayloadFormat, Transport
from apps.ingestion.parsers.json_records import json_records_parse
from apps.ingestion.services import batch_ingest
from tests.conftest import api_client_for
from tests.factories import user_create
from tests.ingestion.factories import source_with_key, stored_points

pytestmark = pytest.mark.django_db

STRICT = {"measures": {"t": {"type": "number", "max": 10}}, "labels": {"device": {}}}
BAD = b'[{"time": "2026-01-01T00:00:00Z", "device": "d1", "t": 50}]'


def _letter(source) -> DeadLetter:
    result = batch_ingest(
        source_id=source.id, parsed=json_records_parse(BAD), transport=Transport.HTTP, payload_format=PayloadFormat.JSON
    )
    assert result.rejected == 1
    return DeadLetter.objects.get(id=result.dead_letter_ids[0])


def _url(source, letter, suffix="/replay") -> str:
    return f"/api/v1/sources/{source.slug}/dead-letters/{letter.id}{suffix}"


def test_an_edited_record_is_stored_and_the_letter_marked_replayed(editor):
    source, _ = source_with_key(schema_mode="strict", schema=STRICT)
    letter = _letter(source)
    fixed = '{"time": "2026-01-01T00:00:00Z", "device": "d1", "t": 5}'
    response = api_client_for(editor).post(_url(source, letter), {"raw": fixed}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["raw"], body["replay_attempts"]) == ("replayed", fixed, 1)
    assert body["context"]["original_raw"] == letter.raw
    assert [(metric, labels, value) for metric, labels, _, value, _ in stored_points(source=source)] == [
        ("t", {"device": "d1"}, 5.0)
    ]


def test_a_record_still_wrong_stays_pending_with_its_new_reason_and_text(editor):
    source, _ = source_with_key(schema_mode="strict", schema=STRICT)
    letter = _letter(source)
    assert (letter.error_code, letter.error_field) == ("out_of_range", "t")
    still_bad = '{"time": "2026-01-01T00:00:00Z", "device": "d1", "t": "hot"}'
    response = api_client_for(editor).post(_url(source, letter), {"raw": still_bad}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["raw"], body["error_field"]) == ("pending", still_bad, "t")
    assert body["error_code"] != "out_of_range"
    assert body["error_message"]
    assert stored_points(source=source) == []
    # Not JSON at all: still kept, with the parser's reason.
    response = api_client_for(editor).post(_url(source, letter), {"raw": "{not json"}, format="json")
    assert response.json()["status"] == "pending"
    assert response.json()["raw"] == "{not json"
    assert response.json()["replay_attempts"] == 2
    assert DeadLetter.objects.filter(source=source, status=DeadLetterStatus.PENDING).count() == 1


def test_a_record_over_the_series_limit_is_kept_with_that_reason(editor):
    source, _ = source_with_key(schema_mode="strict", schema=STRICT, max_series=1)
    batch_ingest(
        source_id=source.id,
        parsed=json_records_parse(b'[{"time": "2026-01-01T00:00:00Z", "device": "d0", "t": 1}]'),
        transport=Transport.HTTP,
        payload_format=PayloadFormat.JSON,
    )
    letter = _letter(source)
    new_series = '{"time": "2026-01-01T00:00:00Z", "device": "d9", "t": 1}'
    body = api_client_for(editor).post(_url(source, letter), {"raw": new_series}, format="json").json()
    assert (body["status"], body["error_code"]) == ("pending", "series_limit")
    assert len(stored_points(source=source)) == 1


def test_replaying_without_an_edit_and_the_refusals(editor, viewer):
    source, _ = source_with_key(schema_mode="strict", schema=STRICT)
    letter = _letter(source)
    client = api_client_for(editor)
    assert client.post(_url(source, letter), {}, format="json").json()["status"] == "pending"
    empty = client.post(_url(source, letter), {"raw": "  "}, format="json")
    assert (empty.status_code, empty.json()["field"]) == (400, "raw")
    assert api_client_for(viewer).post(_url(source, letter), {}, format="json").status_code == 403
    assert api_client_for(viewer).get(_url(source, letter, "")).json()["id"] == letter.id
    missing = client.post(f"/api/v1/sources/{source.slug}/dead-letters/999999/replay", {}, format="json")
    assert missing.status_code == 404
    outsider = api_client_for(user_create(username="olga", organization="other-org", role="admin"))
    assert outsider.post(_url(source, letter), {}, format="json").status_code == 404
    assert outsider.get(_url(source, letter, "")).status_code == 404
    DeadLetter.objects.filter(id=letter.id).update(status=DeadLetterStatus.DISCARDED)
    done = client.post(_url(source, letter), {"raw": "{}"}, format="json")
    assert (done.status_code, done.json()["field"]) == (409, "status")
