"""The Sources pages on real PostgreSQL and Redis: list with pagination and empty state, a form per kind with
errors on the field, edit, write keys shown once and revoked, dead letters read, corrected and replayed."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apps.ingestion.models import DeadLetter, DeadLetterStatus, PayloadFormat, Transport
from apps.ingestion.parsers.json_records import json_records_parse
from apps.ingestion.services import batch_ingest
from apps.sources.models import Source, SourceWriteKey
from apps.sources.services import write_key_authenticate, write_key_cache_clear
from tests.factories import user_create
from tests.ingestion.factories import source_with_key, stored_points

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_list_is_empty_then_paginated_and_scoped(editor):
    client = _client(editor)
    empty = client.get("/sources/")
    assert empty.status_code == 200
    assert "No sources yet." in empty.content.decode()
    for index in range(27):
        source_with_key(slug=f"s{index:02d}")
    source_with_key(slug="theirs", organization="other-org")
    first = client.get("/sources/").content.decode()
    assert "Page 1 of 2 (27 in all)" in first
    assert "theirs" not in first
    second = client.get("/sources/?page=2").content.decode()
    assert "s26" in second
    assert "s00" not in second
    assert "No source matches" in client.get("/sources/?q=nothing").content.decode()


@pytest.mark.parametrize(
    ("kind", "fields", "config"),
    [
        ("http", {"line_protocol_metric": "field"}, {}),
        ("mqtt", {"topic": "test-org/plant/+/telemetry", "format": "line", "qos": "0", "precision": "ms"},
         {"topic": "test-org/plant/+/telemetry", "format": "line", "qos": 0, "precision": "ms", "topic_label": False}),
        ("kafka", {"topics": "test-org.orders, test-org.invoices", "format": "json", "auto_offset_reset": "latest"},
         {"topics": ["test-org.orders", "test-org.invoices"], "format": "json", "auto_offset_reset": "latest",
          "topic_label": False}),
        ("file", {}, {}),
    ],
)  # fmt: skip
def test_an_editor_creates_a_source_of_each_kind_and_sees_its_key_once(editor, kind, fields, config):
    client = _client(editor)
    form = client.get(f"/sources/new/{kind}/")
    assert form.status_code == 200
    assert "<textarea" not in form.content.decode()  # fields, not a raw JSON box
    response = client.post(
        f"/sources/new/{kind}/", {"name": "Plant", "slug": "plant", "schema_mode": "infer", **fields}
    )
    assert response.status_code == 201, response.content.decode()[:2000]
    source = Source.objects.get(slug="plant")
    assert (source.kind, source.config) == (kind, config)
    secret = re.search(r'id="new-secret" readonly value="([^"]+)"', response.content.decode())[1]
    write_key_cache_clear()
    assert write_key_authenticate(raw_key=secret).source_id == source.id
    assert secret not in client.get("/sources/plant/").content.decode()  # shown once


def test_errors_are_shown_on_their_field(editor):
    client = _client(editor)
    source_with_key(slug="taken")
    response = client.post("/sources/new/mqtt/", {"name": "", "slug": "taken", "schema_mode": "infer",
                                                  "topic": "test-org/p/#/x", "format": "json", "qos": "1"})  # fmt: skip
    assert response.status_code == 400
    page = response.content.decode()
    assert re.search(r'data-field="name">.*?field-error', page, re.S)
    # The form is valid; the service refuses the topic and names it, so it shows on the topic field.
    response = client.post("/sources/new/mqtt/", {"name": "Plant", "slug": "fresh", "schema_mode": "infer",
                                                  "topic": "test-org/p/#/x", "format": "json", "qos": "1"})  # fmt: skip
    page = response.content.decode()
    assert response.status_code == 400
    assert re.search(r'data-field="topic">.*?class="error field-error"[^>]*>[^<]*not a valid MQTT topic', page, re.S)
    response = client.post("/sources/new/http/", {"name": "Plant", "slug": "taken", "schema_mode": "infer"})
    assert re.search(r'data-field="slug">.*?already exists', response.content.decode(), re.S)
    # Outside the organisation's topics on the shared broker: refused on the field, saying where to start.
    response = client.post("/sources/new/mqtt/", {"name": "Plant", "slug": "fresh", "schema_mode": "infer",
                                                  "topic": "other/+/x", "format": "json", "qos": "1"})  # fmt: skip
    assert re.search(
        r'data-field="topic">.*?field-error[^>]*>[^<]*outside this organisation', response.content.decode(), re.S
    )
    assert "&#x27;test-org/&#x27;" in response.content.decode() or "test-org/plant" in response.content.decode()
    assert not Source.objects.filter(slug="fresh").exists()


def test_an_editor_edits_a_source_and_a_viewer_may_not(editor, viewer):
    source, _ = source_with_key(slug="bus", kind="kafka", config={"topics": ["test-org.a"], "format": "json"})
    client = _client(editor)
    page = client.get("/sources/bus/edit/").content.decode()
    assert 'value="test-org.a"' in page
    fields = {
        "name": "Bus 2", "enabled": "", "topics": "test-org.a, test-org.b", "format": "line",
        "auto_offset_reset": "earliest",
    }  # fmt: skip
    response = client.post("/sources/bus/edit/", {**fields, "raw_retention_days": "3"})
    assert response.status_code == 302, response.content.decode()[:3000]
    source.refresh_from_db()
    assert (source.name, source.enabled, source.config["topics"], source.raw_retention_days) == (
        "Bus 2", False, ["test-org.a", "test-org.b"], 3
    )  # fmt: skip
    assert _client(viewer).get("/sources/bus/edit/").status_code == 403
    assert _client(viewer).get("/sources/bus/").status_code == 200
    outsider = user_create(username="olga", organization="other-org", role="admin")
    assert _client(outsider).get("/sources/bus/").status_code == 404


def test_write_keys_are_created_shown_once_and_revoked(editor, viewer):
    source, _ = source_with_key(slug="plant")
    client = _client(editor)
    response = client.post("/sources/plant/keys/", {"name": "telegraf"})
    secret = re.search(r'id="new-secret" readonly value="([^"]+)"', response.content.decode())[1]
    key = SourceWriteKey.objects.get(source=source, name="telegraf")
    assert secret.startswith(key.key_prefix)
    bad = client.post("/sources/plant/keys/", {"name": ""})
    assert bad.status_code == 400
    assert "field-error" in bad.content.decode()
    assert _client(viewer).post(f"/sources/plant/keys/{key.id}/revoke/").status_code == 403
    assert client.post(f"/sources/plant/keys/{key.id}/revoke/").status_code == 302
    key.refresh_from_db()
    assert key.status == "revoked"


def _refused(source, body: bytes) -> DeadLetter:
    parsed = json_records_parse(body)
    result = batch_ingest(
        source_id=source.id, parsed=parsed, transport=Transport.HTTP, payload_format=PayloadFormat.JSON
    )
    return DeadLetter.objects.get(id=result.dead_letter_ids[0])


def test_dead_letters_are_readable_and_a_corrected_record_is_stored(editor):
    source, _ = source_with_key(slug="plant", schema_mode="strict", schema={"measures": {"t": {"max": 10}}})
    letter = _refused(source, b'[{"time": "2026-01-01T00:00:00Z", "t": 50}]')
    client = _client(editor)
    page = client.get("/sources/plant/dead-letters/").content.decode()
    assert "out_of_range" in page
    assert letter.error_message.split(".")[0].replace("'", "&#x27;") in page
    assert "&quot;t&quot;: 50" in page  # the record, indented for editing
    response = client.post(
        f"/sources/plant/dead-letters/{letter.id}/replay/",
        {"raw": '{"time": "2026-01-01T00:00:00Z", "t": 5}', "next": "/sources/plant/dead-letters/"},
        follow=True,
    )
    assert f"Record {letter.id} stored." in response.content.decode()
    assert [value for *_, value, _ in stored_points(source=source)] == [5.0]
    letter.refresh_from_db()
    assert letter.status == DeadLetterStatus.REPLAYED
    assert "No pending dead letters" in client.get("/sources/plant/dead-letters/").content.decode()


def test_a_record_still_wrong_is_kept_with_the_reason_shown(editor):
    source, _ = source_with_key(slug="plant", schema_mode="strict", schema={"measures": {"t": {"max": 10}}})
    letter = _refused(source, b'[{"time": "2026-01-01T00:00:00Z", "t": 50}]')
    response = _client(editor).post(
        f"/sources/plant/dead-letters/{letter.id}/replay/", {"raw": '{"time": "2026-01-01T00:00:00Z", "t": 11}'},
        follow=True,
    )  # fmt: skip
    page = response.content.decode()
    assert f"Record {letter.id} is still refused (t)" in page
    assert "11" in page
    letter.refresh_from_db()
    assert (letter.status, letter.context["original_raw"]) == ("pending", '{"time": "2026-01-01T00:00:00Z", "t": 50}')


def test_dead_letters_paginate_filter_and_discard(editor, viewer):
    source, _ = source_with_key(slug="plant", schema_mode="strict", schema={"measures": {"t": {"max": 10}}})
    for index in range(23):
        _refused(source, f'[{{"time": "2026-01-01T00:00:{index:02d}Z", "t": 50}}]'.encode())
    client = _client(editor)
    page = client.get("/sources/plant/dead-letters/").content.decode()
    assert "Page 1 of 2 (23 in all)" in page
    assert page.count('class="card dead-letter"') == 20
    viewer_page = _client(viewer).get("/sources/plant/dead-letters/").content.decode()
    assert "replay-form" not in viewer_page
    assert "Replay all pending" not in viewer_page
    client.post("/sources/plant/dead-letters/discard/")
    assert not DeadLetter.objects.filter(status=DeadLetterStatus.PENDING).exists()
    assert client.post("/sources/plant/dead-letters/explode/").status_code == 404
