"""The sources REST API: the create contract, permissions by organisation role, keys, schemas, pause."""

from __future__ import annotations

import pytest

from apps.sources.models import Source
from tests.conftest import api_client_for
from tests.factories import user_create
from tests.ingestion.factories import source_with_key

pytestmark = pytest.mark.django_db


def test_create_answers_201_with_the_source_and_its_first_write_key_once(editor):
    response = api_client_for(editor).post(
        "/api/v1/sources/",
        {"name": "Plant", "slug": "plant", "kind": "mqtt", "schema_mode": "infer",
         "config": {"topic": "test-org/plant/+/telemetry", "format": "json"}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["write_key"].startswith("swk_")
    assert (body["slug"], body["kind"], body["schema_mode"], body["schema_version"]) == ("plant", "mqtt", "infer", 1)
    assert body["config"] == {"topic": "test-org/plant/+/telemetry", "format": "json", "qos": 1}
    assert body["organization"] == "test-org"
    keys = api_client_for(editor).get("/api/v1/sources/plant/keys/").json()
    assert len(keys) == 1
    assert "write_key" not in keys[0]
    assert body["write_key"].startswith(keys[0]["key_prefix"])


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "X", "slug": "x", "kind": "ftp"}, "kind"),
        ({"name": "X", "slug": "x", "kind": "mqtt", "config": {}}, "config.topic"),
        ({"name": "X", "slug": "x", "kind": "mqtt", "config": {"topic": "a/b+/c"}}, "config.topic"),
        ({"name": "X", "slug": "x", "schema_mode": "strict", "schema": {"measures": {}}}, "definition.measures"),
        ({"name": "X", "slug": "x", "schema": {"measures": {"t": {"type": "float"}}}}, "definition.measures.t.type"),
        ({"name": "X", "slug": "bad slug!"}, "slug"),
    ],
)
def test_bad_create_requests_name_the_field(editor, payload, field):
    response = api_client_for(editor).post("/api/v1/sources/", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body.get("field") == field or field in body, body


def test_duplicate_slug_is_409(editor):
    source_with_key(slug="plant")
    response = api_client_for(editor).post("/api/v1/sources/", {"name": "P", "slug": "plant"}, format="json")
    assert response.status_code == 409
    assert response.json()["field"] == "slug"


def test_viewers_read_but_cannot_create_or_change(viewer):
    source_with_key(slug="plant")
    client = api_client_for(viewer)
    assert [s["slug"] for s in client.get("/api/v1/sources/").json()["results"]] == ["plant"]
    assert client.post("/api/v1/sources/", {"name": "P", "slug": "p2"}, format="json").status_code == 403
    assert client.post("/api/v1/sources/plant/pause").status_code == 403
    assert client.get("/api/v1/sources/plant/keys/").status_code == 403


def test_other_organisations_sources_are_invisible():
    source_with_key(slug="theirs", organization="other-org")
    outsider = user_create(username="olga", role="admin")
    client = api_client_for(outsider)
    assert client.get("/api/v1/sources/").json()["results"] == []
    assert client.get("/api/v1/sources/theirs/").status_code == 404
    assert client.get("/api/v1/sources/theirs/dead-letters/").status_code == 404


def test_pause_resume_and_edit(editor):
    source_with_key(slug="plant")
    client = api_client_for(editor)
    assert client.post("/api/v1/sources/plant/pause").json()["enabled"] is False
    assert client.post("/api/v1/sources/plant/resume").json()["enabled"] is True
    edited = client.patch("/api/v1/sources/plant/", {"name": "Plant 2", "raw_retention_days": 3}, format="json")
    assert edited.status_code == 200
    assert (edited.json()["name"], edited.json()["raw_retention_days"]) == ("Plant 2", 3)
    assert client.patch("/api/v1/sources/plant/", {"raw_retention_days": 0}, format="json").status_code == 400


def test_write_keys_create_and_revoke(editor):
    source_with_key(slug="plant")
    client = api_client_for(editor)
    created = client.post("/api/v1/sources/plant/keys/", {"name": "telegraf"}, format="json")
    assert created.status_code == 201
    key_id = created.json()["id"]
    revoked = client.post(f"/api/v1/sources/plant/keys/{key_id}/revoke")
    assert revoked.json()["status"] == "revoked"
    assert Source.objects.get(slug="plant").write_keys.filter(revoked_at__isnull=True).count() == 1


def test_schema_versions_compatible_breaking_and_explicit(editor):
    strict = {"measures": {"temperature": {"type": "number", "max": 100}}, "labels": ["device"]}
    source_with_key(slug="plant", schema_mode="strict", schema=strict)
    client = api_client_for(editor)
    widened = {"measures": {"temperature": {"type": "number", "max": 200}, "rpm": {"type": "number"}},
               "labels": ["device"]}  # fmt: skip
    response = client.post("/api/v1/sources/plant/schemas/", {"mode": "strict", "definition": widened}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["version"], response.json()["change"]) == (2, "compatible")
    narrowed = {"measures": {"temperature": {"type": "number", "max": 50}}, "labels": ["device"]}
    refused = client.post("/api/v1/sources/plant/schemas/", {"mode": "strict", "definition": narrowed}, format="json")
    assert refused.status_code == 409
    assert "measure 'temperature' lowers its maximum to 50" in refused.json()["reasons"]
    assert "measure 'rpm' is removed" in refused.json()["reasons"]
    forced = client.post(
        "/api/v1/sources/plant/schemas/", {"mode": "strict", "definition": narrowed, "breaking": True}, format="json"
    )
    assert (forced.status_code, forced.json()["change"], forced.json()["version"]) == (201, "breaking", 3)
    versions = [s["version"] for s in client.get("/api/v1/sources/plant/schemas/").json()]
    assert versions == [3, 2, 1]


def test_dead_letters_list_filter_replay_and_discard(editor, client, django_capture_on_commit_callbacks):
    strict = {"measures": {"t": {"type": "number", "max": 10}}}
    _, key = source_with_key(slug="plant", schema_mode="strict", schema=strict)
    records = [{"time": "2026-01-01T00:00:00Z", "t": 50}, {"time": "2026-01-01T00:00:01Z", "t": 60},
               {"time": "2026-01-01T00:00:02Z", "t": 1, "x": "y"}]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):  # the live figures count a batch once it commits
        client.post("/api/v1/sources/plant/ingest", records, content_type="application/json",
                    headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    api = api_client_for(editor)
    listed = api.get("/api/v1/sources/plant/dead-letters/").json()
    assert listed["count"] == 3
    assert {row["error_code"] for row in listed["results"]} == {"out_of_range", "unknown_field"}
    only_range = api.get("/api/v1/sources/plant/dead-letters/?code=out_of_range").json()
    assert only_range["count"] == 2
    stats = api.get("/api/v1/sources/plant/stats").json()
    assert stats["dead_letters_by_code"] == {"out_of_range": 2, "unknown_field": 1}
    assert stats["last_error_at"] is not None
    fixed = {"measures": {"t": {"type": "number", "max": 100}}}
    api.post("/api/v1/sources/plant/schemas/", {"mode": "strict", "definition": fixed}, format="json")
    replay = api.post("/api/v1/sources/plant/dead-letters/replay", {"all": True}, format="json").json()
    assert replay == {"replayed": 2, "still_failing": 1}
    remaining = api.get("/api/v1/sources/plant/dead-letters/").json()["results"]
    discard = api.post("/api/v1/sources/plant/dead-letters/discard", {"ids": [remaining[0]["id"]]}, format="json")
    assert discard.json() == {"discarded": 1}
    assert api.get("/api/v1/sources/plant/dead-letters/").json()["count"] == 0
    assert api.get("/api/v1/sources/plant/dead-letters/?status=replayed").json()["count"] == 2
    assert api.post("/api/v1/sources/plant/dead-letters/replay", {}, format="json").status_code == 400
