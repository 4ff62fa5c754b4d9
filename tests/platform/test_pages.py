"""Sign-in, home page, admin and the API docs."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_home_requires_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_sign_in_then_home_lists_services(client, user):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content
    response = client.post("/accounts/login/", {"username": "alice", "password": "correct horse battery staple"})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    text = home.content.decode()
    assert "PostgreSQL up" in text
    assert "Redis up" in text
    assert "no API tokens yet" in text
    assert "No sources yet" in text


@pytest.mark.django_db
def test_home_lists_sources_and_series(client, user):
    from tests.storage.factories import series_create, source_create

    source = source_create(slug="plant-sensors", name="Plant sensors")
    series_create(source=source, metric="temperature", device="d1")
    series_create(source=source, metric="vibration", device="d1")
    client.force_login(user)
    text = client.get("/").content.decode()
    assert "Plant sensors" in text
    assert "2 series across 2 metrics" in text


@pytest.mark.django_db
def test_home_shows_when_the_worker_last_reported_as_a_readable_time(client, user, settings):
    import redis

    from analytics_platform.health import WORKER_HEARTBEAT_KEY

    connection = redis.Redis.from_url(settings.REDIS_URL)
    connection.set(WORKER_HEARTBEAT_KEY, "2026-12-06T11:33:36.657428+00:00", ex=60)
    client.force_login(user)
    try:
        text = client.get("/").content.decode()
    finally:
        connection.delete(WORKER_HEARTBEAT_KEY)
    assert "Background worker last seen 2026-12-06 11:33:36 UTC" in text


@pytest.mark.django_db
def test_wrong_password_shows_error(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


@pytest.mark.django_db
def test_admin_is_branded(admin_client):
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    assert b"Analytics Platform administration" in response.content
    assert b"css/admin.css" in response.content


@pytest.mark.django_db
def test_openapi_schema_and_docs(client, user):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/tokens/" in document["paths"]
    assert "/api/v1/me" in document["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    # Swagger UI is served from the installed sidecar package, not a CDN.
    assert b"drf_spectacular_sidecar/swagger-ui-dist" in docs.content
    assert b"cdn" not in docs.content.lower()


@pytest.mark.django_db
def test_source_admin_shows_retention_defaults_and_overrides(admin_client):
    response = admin_client.get("/admin/sources/source/add/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "postgres backend): raw points 7 days, 1-minute rollups 90 days" in text
    assert 'name="raw_retention_days"' in text


def test_every_page_names_its_icon_so_browsers_do_not_ask_for_favicon_ico(client):
    """Without a <link rel="icon">, every visit fetched /favicon.ico and got the HTML 404 page (11 kB)."""
    import re

    from django.contrib.staticfiles import finders

    text = client.get("/accounts/login/").content.decode()
    link = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)">', text)
    assert link, text[:500]
    assert link.group(1).endswith("img/favicon.svg")
    icon = finders.find("img/favicon.svg")
    assert icon
    with open(icon) as handle:
        assert handle.read().startswith("<svg")


@pytest.mark.django_db
def test_a_missing_page_is_a_404_page_with_the_sites_links_and_icon(client, settings):
    """Pages that do not exist (or that the user may not see: the same answer) were Django's bare "Not Found",
    without the site's navigation and icon (so browsers asked for /favicon.ico there too)."""
    from tests.factories import user_create

    settings.DEBUG = False
    anonymous = client.get("/dashboards/no-such-dashboard/")
    assert anonymous.status_code in (302, 404)  # pages for signed-in users send strangers to sign in first
    client.force_login(user_create(username="vera", role="viewer"))
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    text = response.content.decode()
    assert "<h1>Page not found</h1>" in text
    assert "<code>/no/such/page/</code>" in text
    assert 'href="/dashboards/"' in text
    assert '<link rel="icon" type="image/svg+xml"' in text
    client.logout()
    text = client.get("/no/such/page/").content.decode()
    assert 'href="/accounts/login/?next=/no/such/page/"' in text
    api = client.get("/api/v1/no-such-endpoint")
    assert api.status_code == 404
    assert api.json()["code"] == "not_found"
