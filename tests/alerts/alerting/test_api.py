"""The alerting API: the issue's minimal contract, organisation scoping (404 across tenants), editors write,
viewers read, errors that name the field, and the OpenAPI schema."""

from __future__ import annotations

import pytest

from apps.alerts.models import AlertRule, ContactPoint
from tests.alerts.alerting.conftest import webhook_rule
from tests.conftest import api_client_for
from tests.factories import user_create
from tests.storage.factories import source_create

pytestmark = pytest.mark.django_db

WEBHOOK = {"name": "ops hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:18601/hook", "secret": "s3"}}


def _rule_body(contact_point_id: int) -> dict:
    return {
        "name": "Hot press",
        "query": {"source": "plant", "metric": "temperature", "aggregation": "last", "group_by": ["device"]},
        "condition": {"type": "threshold", "op": ">", "value": 90},
        "for": "0s",
        "contact_points": [contact_point_id],
        "group_wait": "0s",
    }


def test_the_minimal_contract_creates_a_contact_point_and_a_rule(editor):
    source_create(slug="plant")
    client = api_client_for(editor)
    response = client.post("/api/v1/contact-points/", WEBHOOK, format="json")
    assert response.status_code == 201, response.content
    contact_point_id = response.json()["id"]
    assert "secret" not in response.json()["config"]
    assert response.json()["has_secret"] is True

    response = client.post("/api/v1/alert-rules/", _rule_body(contact_point_id), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["group_by"] == ["device"]
    assert body["reduction"] == "last"
    assert body["queries"] == [{"ref": "A", "query": {"source": "plant", "metric": "temperature"}}]
    assert (body["for"], body["group_wait"], body["contact_points"]) == ("0s", "0s", [contact_point_id])
    rule = AlertRule.objects.get(pk=body["id"])
    assert rule.owner == editor
    assert rule.organization.slug == "test-org"


def test_viewers_read_but_do_not_write(editor, viewer):
    contact_point_id = api_client_for(editor).post("/api/v1/contact-points/", WEBHOOK, format="json").json()["id"]
    client = api_client_for(viewer)
    assert client.get("/api/v1/contact-points/").json()["results"][0]["id"] == contact_point_id
    assert client.post("/api/v1/contact-points/", {**WEBHOOK, "name": "x"}, format="json").status_code == 403
    assert client.patch(f"/api/v1/contact-points/{contact_point_id}/", {"name": "y"}, format="json").status_code == 403
    assert client.delete(f"/api/v1/contact-points/{contact_point_id}/").status_code == 403


def test_another_organisation_sees_nothing_and_gets_404(editor):
    source_create(slug="plant")
    client = api_client_for(editor)
    contact_point_id = client.post("/api/v1/contact-points/", WEBHOOK, format="json").json()["id"]
    rule_id = client.post("/api/v1/alert-rules/", _rule_body(contact_point_id), format="json").json()["id"]
    stranger = api_client_for(user_create(username="mallory", organization="other-org", role="editor"))

    assert stranger.get("/api/v1/contact-points/").json()["results"] == []
    assert stranger.get("/api/v1/alert-rules/").json()["results"] == []
    assert stranger.get(f"/api/v1/alert-rules/{rule_id}/").status_code == 404
    assert stranger.delete(f"/api/v1/contact-points/{contact_point_id}/").status_code == 404
    # Naming someone else's contact point in one's own rule: 400 on the field.
    response = stranger.post("/api/v1/alert-rules/", _rule_body(contact_point_id), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "contact_points"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"condition": {"type": "threshold", "op": "=>", "value": 90}}, "condition.op"),
        ({"condition": {"type": "threshold", "op": ">", "value": 90, "recovery": 95}}, "condition.recovery"),
        ({"for": "soon"}, "for"),
        ({"query": {"metric": ""}}, "query.metric"),
        ({"reduction": "median"}, "reduction"),
        ({"queries": [{"ref": "A", "query": {"metric": "a"}}, {"ref": "B", "query": {"metric": "b"}}],
          "expression": "A.__class__"}, "expression"),
        ({"queries": [{"ref": "A", "query": {"metric": "a"}}, {"ref": "B", "query": {"metric": "b"}}],
          "expression": "__import__('os')"}, "expression"),
        ({"annotations": {"summary": "{{ value | shell }}"}}, "annotations.summary"),
        ({"severity": "apocalyptic"}, "severity"),
    ],
)  # fmt: skip
def test_a_bad_rule_is_refused_naming_the_field(editor, change, field):
    body = {**_rule_body(0), "contact_points": [], **change}
    if "queries" in change:
        body.pop("query")
    response = api_client_for(editor).post("/api/v1/alert-rules/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_contact_point_config_is_checked(editor):
    client = api_client_for(editor)
    bad_url = {**WEBHOOK, "config": {"url": "ftp://example.com/x"}}
    assert client.post("/api/v1/contact-points/", bad_url, format="json").json()["field"] == "config.url"
    credentials = {**WEBHOOK, "config": {"url": "https://user:pw@example.com/x"}}
    assert client.post("/api/v1/contact-points/", credentials, format="json").json()["field"] == "config.url"
    email = {"name": "mail", "kind": "email", "config": {"addresses": ["not-an-address"]}}
    assert client.post("/api/v1/contact-points/", email, format="json").json()["field"] == "config.addresses[0]"
    client.post("/api/v1/contact-points/", WEBHOOK, format="json")
    assert client.post("/api/v1/contact-points/", WEBHOOK, format="json").status_code == 409
    assert ContactPoint.objects.count() == 1


def test_silences_policies_and_mute_timings(editor, viewer):
    client = api_client_for(editor)
    contact_point_id = client.post("/api/v1/contact-points/", WEBHOOK, format="json").json()["id"]
    silence = client.post(
        "/api/v1/silences/",
        {"matchers": [{"label": "device", "op": "=", "value": "press-7"}], "ends_at": "2099-01-01T00:00:00Z"},
        format="json",
    )
    assert silence.status_code == 201
    assert silence.json()["active"] is True
    bad = client.post("/api/v1/silences/", {"matchers": [], "ends_at": "2099-01-01T00:00:00Z"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["field"] == "matchers"
    timing = client.post(
        "/api/v1/mute-timings/",
        {"name": "weekends", "intervals": [{"weekdays": ["saturday", "sunday"], "timezone": "Europe/Berlin"}]},
        format="json",
    )
    assert timing.status_code == 201, timing.content
    root = client.post(
        "/api/v1/notification-policies/",
        {"matchers": [{"label": "severity", "op": "=~", "value": "critical|warning"}],
         "contact_point": contact_point_id, "group_by": ["device"], "group_wait": "30s",
         "mute_timings": [timing.json()["id"]]},
        format="json",
    )  # fmt: skip
    assert root.status_code == 201, root.content
    assert (root.json()["group_wait"], root.json()["mute_timings"]) == ("30s", [timing.json()["id"]])
    bad_regex = client.post(
        "/api/v1/notification-policies/", {"matchers": [{"label": "a", "op": "=~", "value": "("}]}, format="json"
    )
    assert bad_regex.json()["field"] == "matchers[0].value"
    expired = api_client_for(editor).delete(f"/api/v1/silences/{silence.json()['id']}/")
    assert expired.json()["active"] is False
    assert api_client_for(viewer).get("/api/v1/notification-policies/").json()["results"][0]["id"] == root.json()["id"]


def test_a_mute_timing_is_changed_and_deleted_once_no_policy_uses_it(editor, viewer):
    """Mute timings could only be created: now read, changed (name, intervals; only what is sent) and deleted, which
    is refused (409, naming the policies) while a policy mutes by it; viewers and other organisations may not."""
    from apps.audit.models import AuditEvent

    client = api_client_for(editor)
    weekends = {"name": "weekends", "intervals": [{"weekdays": ["saturday", "sunday"], "timezone": "Europe/Berlin"}]}
    timing_id = client.post("/api/v1/mute-timings/", weekends, format="json").json()["id"]
    night = [{"weekdays": ["monday", "friday"], "times": [{"start": "22:00", "end": "24:00"}], "timezone": "UTC"}]
    changed = client.patch(f"/api/v1/mute-timings/{timing_id}/", {"intervals": night}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["name"], changed.json()["intervals"]) == ("weekends", night)
    assert client.get(f"/api/v1/mute-timings/{timing_id}/").json()["intervals"] == night
    bad = client.patch(f"/api/v1/mute-timings/{timing_id}/",
                       {"intervals": [{"times": [{"start": "23:00", "end": "22:00"}]}]}, format="json")  # fmt: skip
    assert (bad.status_code, bad.json()["field"]) == (400, "intervals[0].times[0].end")
    client.post("/api/v1/mute-timings/", {"name": "nights", "intervals": night}, format="json")
    taken = client.patch(f"/api/v1/mute-timings/{timing_id}/", {"name": "nights"}, format="json")
    assert (taken.status_code, taken.json()["field"]) == (409, "name")
    assert (
        api_client_for(viewer).patch(f"/api/v1/mute-timings/{timing_id}/", {"name": "x"}, format="json").status_code
        == 403
    )
    stranger = api_client_for(user_create(username="mallory", organization="other-org", role="editor"))
    assert stranger.get(f"/api/v1/mute-timings/{timing_id}/").status_code == 404
    assert stranger.delete(f"/api/v1/mute-timings/{timing_id}/").status_code == 404

    policy = client.post(
        "/api/v1/notification-policies/", {"name": "presses", "mute_timings": [timing_id]}, format="json"
    )
    assert policy.status_code == 201, policy.content
    refused = client.delete(f"/api/v1/mute-timings/{timing_id}/")
    assert (refused.status_code, refused.json()["field"]) == (409, "id")
    assert "presses" in refused.json()["detail"]
    client.patch(f"/api/v1/notification-policies/{policy.json()['id']}/", {"mute_timings": []}, format="json")
    assert client.delete(f"/api/v1/mute-timings/{timing_id}/").status_code == 204
    assert client.get(f"/api/v1/mute-timings/{timing_id}/").status_code == 404
    actions = list(AuditEvent.objects.filter(action__startswith="mute_timing.").values_list("action", flat=True))
    assert actions.count("mute_timing.changed") == 1
    assert "mute_timing.deleted" in actions


def test_the_openapi_schema_lists_the_alerting_endpoints(editor):
    schema = api_client_for(editor).get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/v1/alert-rules/", "/api/v1/alerts/", "/api/v1/silences/", "/api/v1/contact-points/",
                 "/api/v1/notification-policies/", "/api/v1/alerts/{instance_id}/acknowledge",
                 "/api/v1/alert-history/", "/api/v1/mute-timings/{timing_id}/"):  # fmt: skip
        assert path in paths, path


def test_changes_go_to_the_audit_log_without_secrets(editor):
    from apps.audit.models import AuditEvent

    source_create(slug="plant")
    client = api_client_for(editor)
    contact_point_id = client.post("/api/v1/contact-points/", WEBHOOK, format="json").json()["id"]
    rule_id = client.post("/api/v1/alert-rules/", _rule_body(contact_point_id), format="json").json()["id"]
    client.patch(f"/api/v1/alert-rules/{rule_id}/", {"for": "1m"}, format="json")
    client.delete(f"/api/v1/alert-rules/{rule_id}/")
    events = list(AuditEvent.objects.order_by("id").values_list("action", "details"))
    actions = [action for action, _ in events]
    assert actions[-4:] == ["contact_point.created", "alert_rule.created", "alert_rule.changed", "alert_rule.deleted"]
    assert "s3" not in str(events)


def test_instances_filter_on_several_states_and_refuse_an_unknown_one(editor, factory, receiver):
    from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate

    rule = webhook_rule(owner=editor, url=receiver.url)
    factory.write(0, 95, device="press-7")
    factory.write(0, 50, device="press-8")
    alert_rule_evaluate(rule_id=rule.id, now=factory.at(1))
    client = api_client_for(editor)

    def states(query: str) -> list[str]:
        return sorted(item["state"] for item in client.get(f"/api/v1/alerts/?{query}").json()["results"])

    assert states("state=firing") == ["firing"]
    assert states("state=firing,normal") == ["firing", "normal"]
    refused = client.get("/api/v1/alerts/?state=firing,burning")
    assert refused.status_code == 400
    assert refused.json()["field"] == "state"


def test_instances_come_most_urgent_first_so_a_page_holds_the_firing_ones(editor, receiver):
    """Instances were listed by rule and fingerprint: with more of them than the alert list panel's `limit`, the
    firing ones could be left off its page behind normal ones (the panel sorted only what it got), and the Alerts
    page showed normal ones first. Now firing, no data, error, pending, recovering, normal; then the oldest state."""
    from datetime import timedelta

    from django.test import Client
    from django.utils import timezone

    from apps.alerts.models import AlertInstance

    rule = webhook_rule(owner=editor, url=receiver.url)
    now = timezone.now()
    states = ["normal", "normal", "pending", "normal", "firing", "recovering", "nodata", "firing", "error"]
    for index, state in enumerate(states):
        AlertInstance.objects.create(rule=rule, fingerprint=f"{index:064d}", labels={"device": f"d{index}"},
                                     state=state, state_since=now - timedelta(minutes=index))  # fmt: skip
    page = api_client_for(editor).get("/api/v1/alerts/?limit=3").json()["results"]
    assert [(item["state"], item["labels"]["device"]) for item in page] == [("firing", "d7"), ("firing", "d4"),
                                                                             ("nodata", "d6")]  # fmt: skip
    every = api_client_for(editor).get("/api/v1/alerts/?limit=100").json()["results"]
    assert [item["state"] for item in every] == ["firing", "firing", "nodata", "error", "pending", "recovering",
                                                 "normal", "normal", "normal"]  # fmt: skip
    browser = Client()
    browser.force_login(editor)
    html = browser.get("/alerts/instances/").content.decode()
    assert html.index("device=d7") < html.index("device=d4") < html.index("device=d6") < html.index("device=d0")
