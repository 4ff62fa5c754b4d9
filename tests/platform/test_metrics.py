"""GET /metrics: Prometheus text with request counts and latencies."""

from __future__ import annotations

import re

import pytest


def _sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.django_db
def test_requests_are_counted_and_timed(client):
    before = _sample(client.get("/metrics").content.decode(), "analytics_http_requests_total", view="healthz") or 0
    client.get("/healthz")
    client.get("/healthz")
    text = client.get("/metrics").content.decode()
    assert _sample(text, "analytics_http_requests_total", method="GET", view="healthz", status="200") == before + 2
    assert _sample(text, "analytics_http_request_duration_seconds_count", method="GET", view="healthz") >= 2
    assert "text/plain" in client.get("/metrics")["Content-Type"]


@pytest.mark.django_db
def test_unmatched_paths_share_one_label(client):
    # Letters, not digits: a number like "12345" can turn up in any sample's value (a timestamp, a sum).
    client.get("/no/such/page/qzxj-unmatched")
    text = client.get("/metrics").content.decode()
    assert _sample(text, "analytics_http_requests_total", view="unmatched", status="404") >= 1
    assert "qzxj" not in text


@pytest.mark.django_db
def test_metrics_token_required_when_configured(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert response.status_code == 200
    assert b"analytics_http_requests_total" in response.content


@pytest.mark.django_db
def test_query_figures_exported(client, user):
    from tests.storage.factories import series_create, source_create

    series_create(source=source_create(slug="s"), metric="m", device="d1")
    client.force_login(user)
    client.post("/api/v1/query", {"metric": "m"}, content_type="application/json")
    # Python's re takes a named group, PostgreSQL refuses it: the engine refuses the query naming the filter.
    refused = {"metric": "m", "filters": {"device": {"regex": "(?P<n>d1)"}}}
    assert client.post("/api/v1/query", refused, content_type="application/json").status_code == 400
    text = client.get("/metrics").content.decode()
    assert _sample(text, "analytics_query_duration_seconds_count", tier="raw") >= 1
    assert _sample(text, "analytics_query_refused_total", field="filters") >= 1


@pytest.mark.django_db
def test_metrics_closed_without_a_token_when_required(client, settings):
    settings.METRICS_REQUIRE_TOKEN = True  # production's default
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 401
    assert b"METRICS_TOKEN" in response.content
    assert b"analytics_http_requests_total" not in response.content


def test_production_requires_a_metrics_token_by_default():
    from tests.platform.test_settings import PROD_ENVIRONMENT, _run_with_prod_settings

    code = "import django; django.setup(); from django.conf import settings; print(settings.METRICS_REQUIRE_TOKEN)"
    result = _run_with_prod_settings(PROD_ENVIRONMENT, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
