"""Source and dead-letter admin pages: live figures, key creation shown once, replay and discard actions."""

from __future__ import annotations

import json

import pytest

from apps.ingestion.models import DeadLetter
from tests.ingestion.factories import source_with_key

pytestmark = pytest.mark.django_db


def _ingest(client, key, records):
    return client.post("/api/v1/sources/plant/ingest", json.dumps(records), content_type="application/json",
                       headers={"Authorization": f"Bearer {key}"})  # fmt: skip


def test_source_pages_show_live_figures_and_errors_by_code(admin_client, client, django_capture_on_commit_callbacks):
    source, key = source_with_key(slug="plant", schema_mode="strict", schema={"measures": {"t": {"max": 5}}})
    with django_capture_on_commit_callbacks(execute=True):  # the live figures count a batch once it commits
        _ingest(client, key, [{"time": "2026-01-01T00:00:00Z", "t": 1}, {"time": "2026-01-01T00:00:00Z", "t": 9}])
    listing = admin_client.get("/admin/sources/source/")
    assert listing.status_code == 200
    assert b"never" not in listing.content  # last seen is known
    page = admin_client.get(f"/admin/sources/source/{source.pk}/change/")
    assert page.status_code == 200
    content = page.content.decode()
    assert "out_of_range</a>: 1" in content
    assert "1 series" in content
    assert "default" in content  # the write key inline


def test_create_write_key_action_shows_the_secret_once(admin_client):
    source, _ = source_with_key(slug="plant")
    response = admin_client.post(
        "/admin/sources/source/", {"action": "create_write_key", "_selected_action": [source.pk]}, follow=True
    )
    assert b"swk_" in response.content
    assert source.write_keys.count() == 2


def test_dead_letter_replay_and_discard_actions(admin_client, client):
    _, key = source_with_key(slug="plant", schema_mode="strict", schema={"measures": {"t": {"max": 5}}})
    _ingest(client, key, [{"time": "2026-01-01T00:00:00Z", "t": 9}, {"time": "2026-01-01T00:00:01Z", "t": 8}])
    first, second = DeadLetter.objects.order_by("record_index")
    _ingest(client, key, [{"time": "2026-01-01T00:00:00Z", "t": 9}])  # the first record again: one letter
    first.refresh_from_db()
    assert first.occurrences == 2
    page = admin_client.get("/admin/ingestion/deadletter/?status=pending")
    assert b"out_of_range" in page.content
    assert b"Occurrences" in page.content
    detail = admin_client.get(f"/admin/ingestion/deadletter/{first.pk}/change/").content.decode()
    assert "Last received at" in detail
    replay = admin_client.post(
        "/admin/ingestion/deadletter/", {"action": "replay", "_selected_action": [first.pk]}, follow=True
    )
    assert b"0 replayed and stored; 1 still refused" in replay.content
    admin_client.post("/admin/ingestion/deadletter/", {"action": "discard", "_selected_action": [second.pk]})
    second.refresh_from_db()
    assert second.status == "discarded"


def test_adding_a_source_in_the_admin_gives_it_a_schema_and_a_key(admin_client):
    from apps.sources.models import Source
    from tests.factories import organization_get

    organization = organization_get()
    response = admin_client.post(
        "/admin/sources/source/add/",
        {"name": "Line", "slug": "line", "organization": organization.pk, "kind": "http", "enabled": "on",
         "config": "{}", "schemas-TOTAL_FORMS": 0, "schemas-INITIAL_FORMS": 0, "write_keys-TOTAL_FORMS": 0,
         "write_keys-INITIAL_FORMS": 0},
        follow=True,
    )  # fmt: skip
    assert response.status_code == 200
    source = Source.objects.get(slug="line")
    assert source.schemas.get().version == 1
    assert b"swk_" in response.content
