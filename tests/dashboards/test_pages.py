"""The dashboard pages through the Django test client: sign-in, list, one dashboard, 404s and their assets."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders

from tests.dashboards.factories import dashboard_make

pytestmark = pytest.mark.django_db


def test_pages_require_sign_in(client):
    for url in ("/dashboards/", "/dashboards/abc123/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_list_page_for_an_editor_offers_new_and_import(client, editor):
    client.force_login(editor)
    response = client.get("/dashboards/?q=plant&tag=factory")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="new-dashboard"' in text
    assert 'id="import-file"' in text
    assert 'value="test-org"' in text  # the organisation a new dashboard goes to
    assert 'data-api="/api/v1/dashboards/"' in text
    assert 'value="plant"' in text
    assert 'value="factory"' in text
    assert "js/dashboards/list.js" in text
    assert "No dashboards yet." in text


def test_list_page_for_a_viewer_explains_who_may_create(client, viewer):
    client.force_login(viewer)
    text = client.get("/dashboards/").content.decode()
    assert 'id="new-dashboard"' not in text
    assert "Ask an organisation admin to make you an editor" in text


def test_search_terms_are_escaped(client, viewer):
    client.force_login(viewer)
    text = client.get("/dashboards/", {"q": '"><script>alert(1)</script>'}).content.decode()
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;" in text


def test_dashboard_page_loads_libraries_and_the_builder(client, editor):
    dashboard = dashboard_make(title="Plant <floor>")
    client.force_login(editor)
    response = client.get(f"/dashboards/{dashboard.uid}/")
    assert response.status_code == 200
    text = response.content.decode()
    assert f'data-uid="{dashboard.uid}"' in text
    assert 'data-can-edit="true"' in text
    assert "Plant &lt;floor&gt;" in text
    assert "Plant <floor>" not in text
    for asset in (
        "vendor/gridstack/gridstack-all.js",
        "vendor/gridstack/gridstack.min.css",
        "vendor/plotly/plotly.min.js",
        "js/dashboards/dashboard.js",
        "css/dashboards.css",
    ):
        assert f"/static/{asset}" in text
    # Every panel type can be dragged in from the palette.
    for panel_type in ("timeseries", "stat", "gauge", "bar", "pie", "table", "heatmap", "state_timeline", "text"):
        assert f'data-type="{panel_type}"' in text
    assert 'id="help-dialog"' in text
    assert 'id="time-picker"' in text
    assert 'id="panel-editor"' in text


def test_viewer_sees_the_dashboard_read_only(client, viewer):
    dashboard = dashboard_make()
    client.force_login(viewer)
    response = client.get(f"/dashboards/{dashboard.uid}/")
    assert response.status_code == 200
    assert 'data-can-edit="false"' in response.content.decode()


def test_unknown_or_foreign_dashboard_is_404(client, editor):
    client.force_login(editor)
    assert client.get("/dashboards/doesnotexist/").status_code == 404
    foreign = dashboard_make(organization="other-org")
    assert client.get(f"/dashboards/{foreign.uid}/").status_code == 404


@pytest.mark.parametrize(
    "asset",
    [
        "vendor/gridstack/gridstack-all.js",
        "vendor/gridstack/gridstack.min.css",
        "vendor/plotly/plotly.min.js",
        "js/dashboards/dashboard.js",
        "js/dashboards/list.js",
        "css/dashboards.css",
    ],
)
def test_static_assets_are_found(asset):
    # node_modules is installed by `npm ci` (make install); the settings serve it under vendor/.
    assert finders.find(asset), f"{asset} is not found by the static files finders"


def test_static_assets_are_served(client, editor):
    client.force_login(editor)
    response = client.get("/static/js/dashboards/dashboard.js")
    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]
