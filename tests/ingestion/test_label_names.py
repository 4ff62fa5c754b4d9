"""Label names are bounded at ingest, alike on every path: a longer name refuses its record (label_too_long)."""

from __future__ import annotations

import json

import pytest

from apps.ingestion.models import DeadLetter
from apps.ingestion.validation import MAX_LABEL_NAME_LENGTH
from apps.storage.models import Series
from tests.ingestion.factories import source_with_key

pytestmark = pytest.mark.django_db

T0 = 1767225600  # 2026-01-01T00:00:00Z
LONGEST = "k" * MAX_LABEL_NAME_LENGTH
TOO_LONG = "k" * (MAX_LABEL_NAME_LENGTH + 1)


def _json(client, key, body, content_type="application/json"):
    return client.post(
        "/api/v1/sources/plant/ingest", data=body, content_type=content_type, headers={"Authorization": f"Bearer {key}"}
    )


def _line_protocol(client, key, body):
    return client.post(
        "/api/v2/write?bucket=plant&precision=s", data=body, content_type="text/plain",
        headers={"Authorization": f"Token {key}"},
    )  # fmt: skip


def _refusals(response) -> list[tuple[str, str]]:
    return [(error["code"], error["field"]) for error in response.json()["errors"]]


@pytest.mark.parametrize("records", [1, 100])  # the record path, and a batch big enough for the columnar path
def test_json_records_with_a_label_name_over_the_limit_are_refused(client, records):
    _, key = source_with_key(slug="plant")
    body = [{"time": T0 + index, TOO_LONG: "x", "v": 1.0} for index in range(records)]
    response = _json(client, key, json.dumps(body))
    assert response.status_code == 422, response.content
    assert set(_refusals(response)) == {("label_too_long", "k" * 40 + "...")}
    assert DeadLetter.objects.filter(error_code="label_too_long").count() == records
    assert not Series.objects.exists()


def test_a_label_name_at_the_limit_is_stored(client):
    _, key = source_with_key(slug="plant")
    response = _json(client, key, json.dumps([{"time": T0, LONGEST: "x", "v": 1.0}]))
    assert response.status_code == 200, response.content
    assert Series.objects.get().labels == {LONGEST: "x"}


def test_a_100000_character_label_name_is_refused_without_echoing_it(client):
    _, key = source_with_key(slug="plant")
    response = _json(client, key, json.dumps({"time": T0, "k" * 100_000: "x", "v": 1.0}))
    assert response.status_code == 422
    assert len(response.content) < 2_000
    letter = DeadLetter.objects.get()
    assert (letter.error_code, letter.error_field) == ("label_too_long", "k" * 40 + "...")
    assert "100000 characters" in letter.error_message


def test_ndjson_agrees(client):
    _, key = source_with_key(slug="plant")
    body = "\n".join(json.dumps({"time": T0, name: "x", "v": 1.0}) for name in (TOO_LONG, "device"))
    response = _json(client, key, body, content_type="application/x-ndjson")
    assert response.status_code == 200
    assert _refusals(response) == [("label_too_long", "k" * 40 + "...")]
    assert list(Series.objects.values_list("labels", flat=True)) == [{"device": "x"}]


@pytest.mark.parametrize("lines", [1, 100])  # the line-by-line path, and a body big enough for the columnar path
def test_line_protocol_tags_over_the_limit_are_refused(client, lines):
    _, key = source_with_key(slug="plant")
    body = "\n".join(f"m,{TOO_LONG}=x v=1 {T0 + index}" for index in range(lines))
    response = _line_protocol(client, key, body)
    assert response.status_code == 400
    assert "names hold at most 100" in response.json()["message"]
    assert DeadLetter.objects.filter(error_code="label_too_long").count() == lines
    assert _line_protocol(client, key, f"m,{LONGEST}=x v=1 {T0}").status_code == 204


def test_a_schema_cannot_declare_a_label_name_over_the_limit(editor):
    from tests.conftest import api_client_for

    source_with_key(slug="plant")
    response = api_client_for(editor).post(
        "/api/v1/sources/plant/schemas/", {"mode": "strict", "definition": {"labels": [TOO_LONG], "measures": {}}}
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == f"definition.labels.{TOO_LONG}"
