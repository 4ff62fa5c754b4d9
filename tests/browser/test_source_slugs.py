"""A dashboard's bare source slug names its own organisation's source for a viewer who belongs to two organisations
that each have a source of that name (slugs are unique per organisation only): the page shows the dashboard's
organisation's data, drawn and live, rather than a 400 asking which source."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.access.models import Membership
from apps.dashboards.services import dashboard_create
from tests.browser.conftest import console_errors, http_ingest, sign_in, wait_for
from tests.conftest import daphne_start, daphne_stop
from tests.factories import organization_get, user_create
from tests.ingestion.factories import source_with_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SERVER_PORT = 8121  # this test's own port (the shared machine's range for it)


@pytest.fixture
def slug_server(transactional_db) -> Iterator[str]:
    process, address = daphne_start(
        database_name=connection.settings_dict["NAME"],
        extra_environment={"DJANGO_SETTINGS_MODULE": "analytics_platform.settings.test"},
        port=SERVER_PORT,
    )
    try:
        yield f"http://{address}"
    finally:
        daphne_stop(process)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_a_two_organisation_viewer_sees_the_dashboards_own_plant(slug_server, browser):
    carol = user_create(username="carol", role="editor")  # in test-org
    Membership.objects.create(organization=organization_get(slug="beta"), user=carol, role="editor")
    _, ours = source_with_key(slug="plant")
    _, theirs = source_with_key(slug="plant", organization="beta")
    moment = _iso(datetime.now(UTC) - timedelta(seconds=30))
    http_ingest(slug_server, "plant", ours, [{"time": moment, "device": "d1", "temperature": 11.0}])
    http_ingest(slug_server, "plant", theirs, [{"time": moment, "device": "d1", "temperature": 77.0}])
    panel = {
        "key": "temperature",
        "title": "Temperature",
        "type": "timeseries",
        "queries": [{"ref": "A", "axis": "left", "query": {"source": "plant", "metric": "temperature",
                                                            "aggregation": "raw"}}],
        "options": {"style": "lines"},
        "grid": {"x": 0, "y": 0, "w": 12, "h": 4},
    }  # fmt: skip
    document = {"title": "Beta plant", "time_range": {"start": "-10m", "end": "now"}, "refresh": "live",
                "panels": [panel]}  # fmt: skip
    dashboard = dashboard_create(organization=organization_get(slug="beta"), owner=None, document=document)
    driver = browser
    sign_in(driver, slug_server, "carol")
    driver.get(f"{slug_server}/dashboards/{dashboard.uid}/")
    read_values = (
        "const view = window.dashboardPage.state.panels.get('temperature');"
        "return view ? [...view.data.values()].flat().flatMap((s) => s.points.map((p) => p[1])) : [];"
    )
    wait_for(lambda: 77.0 in driver.execute_script(read_values), message="beta's point is shown")
    assert 11.0 not in driver.execute_script(read_values)
    wait_for(
        lambda: driver.execute_script("return document.getElementById('live-state').dataset.state === 'open';"),
        message="live connected",
    )
    http_ingest(slug_server, "plant", ours, [{"time": _iso(datetime.now(UTC)), "device": "d1", "temperature": 12.0}])
    http_ingest(slug_server, "plant", theirs, [{"time": _iso(datetime.now(UTC)), "device": "d1", "temperature": 78.0}])
    wait_for(lambda: 78.0 in driver.execute_script(read_values), timeout=5, message="beta's live point is shown")
    assert 12.0 not in driver.execute_script(read_values)
    assert not [message for message in console_errors(driver) if "400" in message], console_errors(driver)
