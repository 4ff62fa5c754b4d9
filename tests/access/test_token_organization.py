"""A token bound to one organisation reads under that organisation's policies only, even when its user belongs to
several (apps.access.selectors.request_principal)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.access.models import ApiToken, Membership
from apps.access.services import api_token_create
from tests.factories import organization_get, user_create
from tests.storage.factories import points_store, series_create, source_create


@pytest.mark.django_db
def test_a_token_of_one_organisation_reads_only_its_series(client):
    user = user_create(username="olive")
    Membership.objects.create(organization=organization_get(slug="acme"), user=user, role="viewer")
    for slug, organization in (("plant", "test-org"), ("acme-plant", "acme")):
        series_id = series_create(
            source=source_create(slug=slug, organization=organization), metric="temperature", device=slug
        )
        points_store(series_id, [(datetime.now(UTC) - timedelta(minutes=1), 1.0)])
    _, raw = api_token_create(user=user, name="acme only", organization=organization_get(slug="acme"))
    older, everywhere = api_token_create(user=user, name="all mine", organization=organization_get(slug="acme"))
    ApiToken.objects.filter(pk=older.pk).update(organization=None)  # a token from before tokens had organisations

    def devices(key: str) -> set[str]:
        answer = client.post("/api/v1/query", {"metric": "temperature", "aggregation": "raw", "start": "-1h"},
                             content_type="application/json", headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        assert answer.status_code == 200, answer.content
        return {item["labels"]["device"] for item in answer.json()["series"]}

    assert devices(raw) == {"acme-plant"}
    assert devices(everywhere) == {"plant", "acme-plant"}
