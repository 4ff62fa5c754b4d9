"""Every API URL pattern, discovered from the URL conf (an endpoint added later is walked too), requested with every
method by members of another organisation in each role and by a viewer of the owning one: 404 or 403 (401, 405
where the endpoint takes other credentials or methods), never the owner's data, and nothing changed."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from apps.access.models import DataPolicy, Membership
from apps.access.services import api_token_create, team_create, team_member_add
from apps.access.sharing import object_share
from apps.alerts.models import AlertInstance, AnomalyDetection
from apps.dashboards.models import Dashboard
from apps.ingestion.models import DeadLetter
from apps.reporting.models import Report, ReportRun
from apps.sources.models import Source
from tests.conftest import api_client_for
from tests.dashboards.factories import dashboard_make
from tests.factories import organization_get, user_create
from tests.ingestion.factories import source_with_key
from tests.storage.factories import points_store, series_create

MARKERS = ("secret-plant", "secret-device", "secret-team", "Hidden board", "Hidden report", "test-org", "alice")
METHODS = ("get", "post", "put", "patch", "delete")
REFUSED = {403, 404}
# Endpoints that authenticate another way (write keys) or take other methods answer these too.
ALSO_ACCEPTABLE = {401, 405}


def api_routes() -> list[str]:
    def walk(patterns, prefix: str = ""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    return sorted({route for route in walk(get_resolver().url_patterns) if route.startswith("api/v1/")})


def _world() -> dict[str, str]:
    """The owning organisation's objects, by URL parameter name."""
    owner = user_create(username="alice", role="admin")
    user_create(username="vic", role="viewer")
    source, _ = source_with_key(slug="secret-plant")
    series_id = series_create(source=source, metric="temperature", device="secret-device")
    from datetime import UTC, datetime, timedelta

    points_store(series_id, [(datetime.now(UTC) - timedelta(minutes=1), 1.0)])
    team = team_create(organization=organization_get(), name="Secret team", slug="secret-team")
    team_member_add(team=team, username="alice")
    dashboard = dashboard_make(title="Hidden board")
    object_share(obj=dashboard, level="edit", username="vic")
    token, _ = api_token_create(user=owner, name="alice's notebook")
    detection = AnomalyDetection.objects.create(source=source, metric="temperature")
    owned = _owned_through_the_api(owner, dashboard)
    return {
        **owned,
        "organizations.slug": "test-org",
        "sources.slug": "secret-plant",
        "username": "alice",
        "team_slug": "secret-team",
        "organizations.policy_id": str(DataPolicy.objects.get(organization__slug="test-org").pk),
        "token_id": str(token.pk),
        "uid": dashboard.uid,
        "version": "1",
        "kind": "user",
        "name": "vic",
        "key_id": str(source.write_keys.first().pk),
        "upload_id": "1",
        "detection_id": str(detection.pk),
    }


def _owned_through_the_api(owner, dashboard) -> dict[str, str]:
    """Alerting, report, annotation and dead-letter objects of the owning organisation, made as its admin would."""
    client = api_client_for(owner)

    def created(path: str, body: dict) -> str:
        response = client.post(path, body, format="json")
        assert response.status_code == 201, (path, response.content)
        return str(response.json()["id"])

    webhook = {"url": "http://127.0.0.1:9/hook", "secret": "s3"}
    contact_point = created("/api/v1/contact-points/", {"name": "secret hook", "kind": "webhook", "config": webhook})
    rule = created(
        "/api/v1/alert-rules/",
        {"name": "Hot secret press", "condition": {"type": "threshold", "op": ">", "value": 90}, "for": "0s",
         "query": {"source": "secret-plant", "metric": "temperature", "aggregation": "last", "group_by": ["device"]},
         "contact_points": [int(contact_point)], "group_wait": "0s"},
    )  # fmt: skip
    silence = created(
        "/api/v1/silences/",
        {"matchers": [{"label": "device", "op": "=", "value": "secret-device"}], "ends_at": "2099-01-01T00:00:00Z"},
    )
    mute_timing = created("/api/v1/mute-timings/", {"name": "secret weekends", "intervals": [{"weekdays": ["sunday"]}]})
    notification_policy = created(
        "/api/v1/notification-policies/",
        {"matchers": [{"label": "device", "op": "=", "value": "secret-device"}], "contact_point": int(contact_point)},
    )
    instance = AlertInstance.objects.create(rule_id=int(rule), fingerprint="f" * 64, labels={"device": "secret-device"})
    report = created(
        "/api/v1/reports/",
        {"name": "Hidden report", "dashboard": dashboard.uid, "formats": ["csv"],
         "recipients": {"users": ["alice"], "emails": []}, "time_range": {"start": "-24h", "end": "now"},
         "schedule": {"cron": "0 7 * * 1", "timezone": "Europe/London"}},
    )  # fmt: skip
    annotation_body = {"time": "2026-05-01T08:00:00Z", "text": "secret-device swapped"}
    annotation = created(f"/api/v1/dashboards/{dashboard.uid}/annotations/", annotation_body)
    letter = DeadLetter.objects.create(
        source=Source.objects.get(slug="secret-plant"), transport="http", payload_format="json",
        raw='{"device": "secret-device"}', error_code="invalid_value", error_message="secret-device: bad",
    )  # fmt: skip
    return {
        "contact_point_id": contact_point,
        "rule_id": rule,
        "silence_id": silence,
        "timing_id": mute_timing,
        "notification-policies.policy_id": notification_policy,
        "instance_id": str(instance.pk),
        "report_id": report,
        "annotation_id": annotation,
        "letter_id": str(letter.pk),
    }


def _fill(route: str, values: dict[str, str]) -> str:
    section = route.split("/")[2]

    def value(match: re.Match) -> str:
        name = match.group(1)
        key = f"{section}.{name}" if f"{section}.{name}" in values else name
        assert key in values, f"tests/access/test_idor.py: give a value for <{name}> in {route}"
        return values[key]

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", value, route)


def _state() -> tuple:
    source = Source.objects.get(slug="secret-plant")
    dashboard = Dashboard.objects.get(title="Hidden board")
    return (
        source.enabled,
        source.name,
        source.write_keys.filter(revoked_at__isnull=True).count(),
        dashboard.version,
        DataPolicy.objects.filter(organization__slug="test-org").count(),
        Membership.objects.filter(organization__slug="test-org").count(),
        organization_get().teams.get().group.user_set.count(),
        AnomalyDetection.objects.count(),
        list(Report.objects.values_list("name", "cron", "enabled")),
        ReportRun.objects.count(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
def test_another_organisations_members_get_404_or_403_and_never_data(role):
    values = _world()
    before = _state()
    intruder = api_client_for(user_create(username=f"mallory-{role}", organization="rival-org", role=role))
    source_with_key(slug="rival-plant", organization="rival-org")
    routes = api_routes()
    assert "api/v1/organizations/<slug:slug>/policies/<int:policy_id>/" in routes
    for route in routes:
        has_parameters = "<" in route
        path = _fill(route, values)
        for method in METHODS:
            body = {"metric": "temperature", "source": "secret-plant", "organization": "test-org", "level": "edit",
                    "username": f"mallory-{role}", "role": "admin", "user": f"mallory-{role}", "name": "x"}  # fmt: skip
            response = getattr(intruder, method)(path, body, format="json")
            text = response.content.decode(errors="replace")
            sent = path + repr(body)  # an error may echo what the client sent: that is not the owner's data
            leaked = [marker for marker in MARKERS if marker in text and marker not in sent]
            assert not leaked, (method, path, text[:300])
            if has_parameters:
                assert response.status_code in REFUSED | ALSO_ACCEPTABLE, (method, path, response.status_code, text)
            else:
                assert response.status_code != 500, (method, path, text)
    assert _state() == before


@pytest.mark.django_db
def test_a_viewer_cannot_change_anything():
    values = _world()
    before = _state()
    viewer = api_client_for(Membership.objects.get(user__username="vic").user)
    for route in api_routes():
        if "<" not in route or route.startswith(("api/v1/tokens/",)):
            continue
        path = _fill(route, values)
        for method in ("post", "put", "patch", "delete"):
            if "/dashboards/<slug:uid>/" in route and "shares" not in route:
                continue  # shared with vic to edit: allowed (tests/access/test_sharing.py)
            if route.endswith("/acknowledge") and method == "post":
                continue  # any member may acknowledge an alert (a viewer on call): tests/alerts/alerting/test_api.py
            response = getattr(viewer, method)(path, {"role": "admin", "name": "x", "level": "edit"}, format="json")
            assert response.status_code in REFUSED | ALSO_ACCEPTABLE, (method, path, response.status_code)
    assert _state() == before
