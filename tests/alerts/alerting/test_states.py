"""Alert states against the real PostgreSQL and a real HTTP receiver: fire once, resolve once, pending, keep
firing, hysteresis, no data, group-by, expressions, reductions, silences, group wait."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate
from apps.alerts.alerting.services import notifications_flush, silence_create, silence_expire
from apps.alerts.alerting.signing import signature_verify
from apps.alerts.models import AlertInstance, Notification, StateTransition
from tests.alerts.alerting.conftest import webhook_rule
from tests.factories import organization_get

pytestmark = pytest.mark.django_db


def _step(rule, factory, seconds: float) -> None:
    """Evaluate at `seconds` after the plant's start, then deliver what is due."""
    alert_rule_evaluate(rule_id=rule.id, now=factory.at(seconds))
    notifications_flush(now=factory.at(seconds) + timedelta(milliseconds=1))


def _statuses(receiver) -> list[str]:
    return [request.json()["status"] for request in receiver.requests]


def test_a_breach_fires_once_notifies_once_resolves_once_and_notifies_once(user, factory, receiver):
    rule = webhook_rule(owner=user, url=receiver.url, annotations={"summary": "{{ labels.device }} at {{ value }}"})
    factory.write(0, 50)
    _step(rule, factory, 1)
    factory.write(10, 95)
    _step(rule, factory, 11)
    _step(rule, factory, 12)  # still breaching: nothing new
    _step(rule, factory, 13)
    factory.write(20, 50)
    _step(rule, factory, 21)
    _step(rule, factory, 22)

    assert _statuses(receiver) == ["firing", "resolved"]
    firing = receiver.requests[0]
    body = firing.json()
    alert = body["alerts"][0]
    assert alert["labels"]["device"] == "press-7"
    assert alert["labels"]["alertname"] == "Hot press"
    assert alert["value"] == 95
    assert alert["annotations"]["summary"] == "press-7 at 95"
    assert receiver.requests[1].json()["alerts"][0]["value"] == 50
    # The signature verifies with the recipe in docs/alerting.md; a changed body does not.
    headers = firing.headers
    assert signature_verify(
        "s3cret", firing.body, timestamp=headers["X-Alert-Timestamp"], received=headers["X-Alert-Signature"]
    )
    assert not signature_verify(
        "s3cret", firing.body + b" ", timestamp=headers["X-Alert-Timestamp"], received=headers["X-Alert-Signature"]
    )
    assert headers["Idempotency-Key"] == body["idempotency_key"]
    history = list(StateTransition.objects.filter(rule=rule).order_by("at").values_list("from_state", "to_state"))
    assert history == [("normal", "firing"), ("firing", "normal")]
    assert StateTransition.objects.filter(rule=rule, to_state="firing").get().value == 95


def test_the_pending_period_holds(user, factory, receiver):
    rule = webhook_rule(owner=user, url=receiver.url, **{"for": "2m"})
    factory.write(0, 95)
    _step(rule, factory, 1)
    assert AlertInstance.objects.get(rule=rule).state == "pending"
    factory.write(60, 96)
    _step(rule, factory, 61)
    assert AlertInstance.objects.get(rule=rule).state == "pending"
    assert receiver.requests == []
    factory.write(121, 97)
    _step(rule, factory, 122)
    assert AlertInstance.objects.get(rule=rule).state == "firing"
    assert _statuses(receiver) == ["firing"]


def test_a_breach_shorter_than_the_pending_period_never_notifies(user, factory, receiver):
    rule = webhook_rule(owner=user, url=receiver.url, **{"for": "2m"})
    factory.write(0, 95)
    _step(rule, factory, 1)
    factory.write(30, 50)
    _step(rule, factory, 31)
    _step(rule, factory, 200)
    assert AlertInstance.objects.get(rule=rule).state == "normal"
    assert receiver.requests == []


def test_keep_firing_for_holds(user, factory, receiver):
    rule = webhook_rule(owner=user, url=receiver.url, keep_firing_for="1m")
    factory.write(0, 95)
    _step(rule, factory, 1)
    factory.write(10, 50)
    _step(rule, factory, 11)
    assert AlertInstance.objects.get(rule=rule).state == "recovering"
    _step(rule, factory, 40)
    assert AlertInstance.objects.get(rule=rule).state == "recovering"
    assert _statuses(receiver) == ["firing"]
    _step(rule, factory, 62)
    assert AlertInstance.objects.get(rule=rule).state == "normal"
    assert _statuses(receiver) == ["firing", "resolved"]


@pytest.mark.parametrize(("recovery", "expected"), [(None, 6), (85, 2)])
def test_hysteresis_stops_a_value_oscillating_around_the_threshold_from_flapping(
    user, factory, receiver, recovery, expected
):
    condition = {"type": "threshold", "op": ">", "value": 90}
    if recovery is not None:
        condition["recovery"] = recovery
    rule = webhook_rule(owner=user, url=receiver.url, condition=condition)
    for index, value in enumerate([91, 89, 91, 88, 92, 84]):
        factory.write(index * 10, value)
        _step(rule, factory, index * 10 + 1)
    assert len(receiver.requests) == expected
    assert _statuses(receiver)[-1] == "resolved"


def test_no_data_fires_and_clears(user, factory, receiver):
    rule = webhook_rule(owner=user, url=receiver.url, no_data_for="1m", window="1m")
    factory.write(0, 50)
    _step(rule, factory, 1)
    _step(rule, factory, 40)
    assert AlertInstance.objects.get(rule=rule).state == "normal"
    _step(rule, factory, 90)
    instance = AlertInstance.objects.get(rule=rule)
    assert instance.state == "nodata"
    assert _statuses(receiver) == ["firing"]
    assert receiver.requests[0].json()["alerts"][0]["state"] == "nodata"
    factory.write(100, 50)
    _step(rule, factory, 101)
    assert AlertInstance.objects.get(rule=rule).state == "normal"
    assert _statuses(receiver) == ["firing", "resolved"]


def test_a_rule_with_no_data_at_all_goes_to_no_data(user, factory, receiver):
    rule = webhook_rule(owner=user, url=receiver.url, no_data_for="30s", group_by=[])
    rule.created_at = factory.at(0)
    rule.save()
    _step(rule, factory, 40)
    instance = AlertInstance.objects.get(rule=rule)
    assert instance.state == "nodata", instance.error


def test_a_silence_suppresses_and_its_expiry_releases(user, factory, receiver):
    rule = webhook_rule(owner=user, url=receiver.url)
    silence = silence_create(
        organization=organization_get(), created_by=user,
        data={"matchers": [{"label": "device", "op": "=", "value": "press-7"}],
              "starts_at": factory.at(0).isoformat(), "ends_at": factory.at(60).isoformat()},
    )  # fmt: skip
    factory.write(0, 95, device="press-7")
    factory.write(0, 95, device="press-8")
    _step(rule, factory, 1)
    _step(rule, factory, 30)
    # press-8 is not silenced; press-7 is firing but nobody is told.
    assert [request.json()["alerts"][0]["labels"]["device"] for request in receiver.requests] == ["press-8"]
    assert AlertInstance.objects.get(rule=rule, labels={"device": "press-7"}).state == "firing"
    _step(rule, factory, 61)  # the silence has ended: the next evaluation tells what is still true
    assert [request.json()["alerts"][0]["labels"]["device"] for request in receiver.requests] == [
        "press-8", "press-7",
    ]  # fmt: skip
    silence_expire(silence=silence)


def test_one_instance_per_label_set(user, factory, receiver):
    rule = webhook_rule(owner=user, url=receiver.url)
    factory.write(0, 95, device="press-7")
    factory.write(0, 50, device="press-8")
    _step(rule, factory, 1)
    states = dict(AlertInstance.objects.filter(rule=rule).values_list("labels__device", "state"))
    assert states == {"press-7": "firing", "press-8": "normal"}


def test_an_expression_across_queries(user, factory, receiver):
    rule = webhook_rule(
        owner=user, url=receiver.url, query=None,
        queries=[{"ref": "A", "query": {"source": "plant", "metric": "good"}},
                 {"ref": "B", "query": {"source": "plant", "metric": "total"}}],
        expression="A / B * 100", group_by=["device"], condition={"type": "below", "value": 80},
    )  # fmt: skip
    factory.write(0, 70, metric="good")
    factory.write(0, 100, metric="total")
    _step(rule, factory, 1)
    instance = AlertInstance.objects.get(rule=rule)
    assert instance.values == {"A": 70, "B": 100}
    assert instance.value == pytest.approx(70.0)
    assert instance.state == "firing"


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [("mean", 20.0), ("max", 30.0), ("min", 10.0), ("sum", 60.0), ("count", 3.0), ("rate", 0.5), ("p95", 29.0)],
)
def test_reductions_over_the_window(user, factory, receiver, reduction, expected):
    rule = webhook_rule(owner=user, url=receiver.url, reduction=reduction, window="5m")
    for seconds, value in ((0, 10), (20, 20), (40, 30)):
        factory.write(seconds, value)
    _step(rule, factory, 41)
    assert AlertInstance.objects.get(rule=rule).value == pytest.approx(expected)


def test_a_firing_that_resolves_within_the_group_wait_still_notifies_both(user, factory, receiver):
    rule = webhook_rule(owner=user, url=receiver.url, group_wait="30s")
    factory.write(0, 95)
    alert_rule_evaluate(rule_id=rule.id, now=factory.at(1))
    factory.write(5, 50)
    alert_rule_evaluate(rule_id=rule.id, now=factory.at(6))
    notifications_flush(now=factory.at(10))
    assert receiver.requests == []  # still inside the group wait
    notifications_flush(now=factory.at(40))
    assert _statuses(receiver) == ["firing", "resolved"]
    assert Notification.objects.filter(state="sent").count() == 2


def test_a_query_the_owner_may_not_run_puts_instances_in_error(user, factory, receiver):
    rule = webhook_rule(owner=user, url=receiver.url)
    factory.write(0, 95)
    _step(rule, factory, 1)
    user.is_active = False
    user.save()
    _step(rule, factory, 2)
    instance = AlertInstance.objects.get(rule=rule)
    assert instance.state == "error"
    assert "owner" in instance.error
    assert StateTransition.objects.filter(rule=rule, to_state="error").exists()


def test_the_anomaly_condition_fires_on_the_existing_detectors_scores(user, factory, receiver):
    import numpy as np

    from apps.alerts.scoring import anomaly_cache_clear, anomaly_scores_update
    from apps.alerts.services import anomaly_detection_create
    from tests.storage.factories import points_store, series_create

    anomaly_cache_clear()
    rng = np.random.default_rng(3)
    values = 40 + 5 * np.sin(np.arange(600) / 30) + rng.normal(0, 0.5, 600)
    values[590:] += 60  # the jump: the last ten points
    series_id = series_create(source=factory.source, metric="temperature", device="press-7")
    points_store(series_id, [(factory.at(index), float(value)) for index, value in enumerate(values)])
    anomaly_detection_create(source=factory.source, metric="temperature", detector="ensemble", sensitivity=0.5)
    anomaly_scores_update()
    rule = webhook_rule(owner=user, url=receiver.url, condition={"type": "anomaly", "points": 1}, window="5m")

    # Evaluations read up to 5 s past `now` (device clocks running fast), so these see up to 579 and 590.
    _step(rule, factory, 575)  # before the jump: normal scores
    assert AlertInstance.objects.get(rule=rule).state == "normal"
    _step(rule, factory, 585.5)  # the jump's first point
    instance = AlertInstance.objects.get(rule=rule)
    assert instance.state == "firing", (instance.value, instance.error, rule.condition)
    assert _statuses(receiver) == ["firing"]
    anomaly_cache_clear()


def test_instances_history_acknowledge_and_assign_through_the_api(user, editor, viewer, factory, receiver):
    from tests.conftest import api_client_for

    rule = webhook_rule(owner=editor, url=receiver.url)
    factory.write(0, 95)
    _step(rule, factory, 1)
    instance = AlertInstance.objects.get(rule=rule)
    client = api_client_for(viewer)
    listed = client.get(f"/api/v1/alerts/?rule={rule.id}&state=firing").json()["results"]
    assert [(item["id"], item["labels"], item["value"]) for item in listed] == [
        (instance.id, {"device": "press-7"}, 95)
    ]
    history = client.get(f"/api/v1/alert-history/?rule={rule.id}").json()["results"]
    assert [(item["from_state"], item["to_state"], item["value"]) for item in history] == [("normal", "firing", 95)]
    acknowledged = client.post(f"/api/v1/alerts/{instance.id}/acknowledge").json()
    assert acknowledged["acknowledged_by"] == "vic"
    assert (
        client.post(f"/api/v1/alerts/{instance.id}/assign", {"assignee": editor.id}, format="json").status_code == 403
    )
    editing = api_client_for(editor)
    assert (
        editing.post(f"/api/v1/alerts/{instance.id}/assign", {"assignee": editor.id}, format="json").json()["assignee"]
        == "erin"
    )
    outsider = user.__class__.objects.create_user(username="zed")
    refused = editing.post(f"/api/v1/alerts/{instance.id}/assign", {"assignee": outsider.id}, format="json")
    assert (refused.status_code, refused.json()["field"]) == (400, "assignee")
    notifications = client.get("/api/v1/alert-notifications/").json()["results"]
    assert notifications[0]["delivery_attempts"][0]["ok"] is True
    factory.write(10, 50)
    _step(rule, factory, 11)
    assert AlertInstance.objects.get(pk=instance.pk).acknowledged_at is None  # the next episode starts unacknowledged


def test_an_evaluation_without_a_change_costs_a_fixed_number_of_statements(
    user, factory, receiver, django_assert_max_num_queries
):
    rule = webhook_rule(owner=user, url=receiver.url)
    for device in range(20):
        factory.write(0, 50, device=f"press-{device}")
    _step(rule, factory, 1)
    # Lock, rule, instances, the owner's data scope (2), the engine (settings, series plan and watermarks (3), the
    # aggregate), instances' update, rule's timestamp, and savepoints: the same for 20 instances as for one.
    with django_assert_max_num_queries(17):
        alert_rule_evaluate(rule_id=rule.id, now=factory.at(2))


def test_state_changes_become_annotations_on_the_rules_dashboard(editor, factory, receiver):
    from apps.dashboards.models import Annotation
    from apps.dashboards.services import dashboard_create

    panel = {"key": "temps", "title": "Temperatures", "type": "timeseries", "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
             "queries": [{"ref": "A", "query": {"source": "plant", "metric": "temperature"}}]}  # fmt: skip
    dashboard = dashboard_create(
        organization=organization_get(), owner=editor, document={"title": "Presses", "panels": [panel]}
    )
    rule = webhook_rule(
        owner=editor, url=receiver.url, annotations={"dashboard_uid": dashboard.uid, "panel_key": "temps"}
    )
    factory.write(0, 95)
    _step(rule, factory, 1)
    factory.write(10, 50)
    _step(rule, factory, 11)
    annotations = list(Annotation.objects.filter(dashboard=dashboard).order_by("time"))
    assert [(a.kind, a.panel_key, a.tags, a.source_ref) for a in annotations] == [
        ("alert", "temps", ["alert", "firing"], f"alert-rule:{rule.id}"),
        ("alert", "temps", ["alert", "normal"], f"alert-rule:{rule.id}"),
    ]
    assert annotations[0].text == "Hot press: normal → firing at 95 (device=press-7)"
    assert annotations[0].time == factory.at(1)
