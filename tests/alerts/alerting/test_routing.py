"""Notification policies route by labels through a tree; mute timings hold back; repeat intervals re-notify."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate
from apps.alerts.alerting.services import (
    alert_instance_acknowledge,
    alert_rule_update,
    contact_point_create,
    mute_timing_create,
    notification_policy_create,
    notifications_flush,
)
from apps.alerts.models import AlertInstance
from tests.alerts.alerting.conftest import webhook_rule
from tests.alerts.alerting.receivers import Receiver, receiver_start, receiver_stop
from tests.factories import organization_get

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_receiver():
    started = receiver_start(Receiver())
    yield started
    receiver_stop(started)


def _hook(user, name: str, url: str):
    return contact_point_create(
        organization=organization_get(), created_by=user, name=name, kind="webhook", config={"url": url}
    )


def _step(rule, factory, seconds: float) -> None:
    alert_rule_evaluate(rule_id=rule.id, now=factory.at(seconds))
    notifications_flush(now=factory.at(seconds) + timedelta(milliseconds=1))


def test_policies_route_by_labels_deepest_match_first(user, factory, receiver, second_receiver):
    general = _hook(user, "general", receiver.url)
    presses = _hook(user, "presses", second_receiver.url)
    root = notification_policy_create(
        organization=organization_get(),
        data={"matchers": [], "contact_point": general.id, "group_by": ["device"], "group_wait": "0s"},
    )
    notification_policy_create(
        organization=organization_get(),
        data={"parent": root.id, "matchers": [{"label": "device", "op": "=~", "value": "press-.*"}],
              "contact_point": presses.id, "group_by": ["device"], "group_wait": "0s"},
    )  # fmt: skip
    rule = webhook_rule(owner=user, url=receiver.url)
    alert_rule_update(rule=rule, data={"contact_points": []})  # routed by the policies
    factory.write(0, 95, device="press-7")
    factory.write(0, 95, device="oven-1")
    _step(rule, factory, 1)
    assert [request.json()["alerts"][0]["labels"]["device"] for request in second_receiver.requests] == ["press-7"]
    assert [request.json()["alerts"][0]["labels"]["device"] for request in receiver.requests] == ["oven-1"]


def test_a_mute_timing_holds_notifications_back_until_its_window_ends(user, factory, receiver):
    hook = _hook(user, "general", receiver.url)
    start = factory.at(0)
    window = {"weekdays": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
              "times": [{"start": f"{start:%H:%M}", "end": f"{start + timedelta(minutes=2):%H:%M}"}]}  # fmt: skip
    if start.hour == 23 and start.minute >= 57:
        pytest.skip("the window would cross midnight")
    timing = mute_timing_create(organization=organization_get(), data={"name": "changeover", "intervals": [window]})
    notification_policy_create(
        organization=organization_get(),
        data={"matchers": [], "contact_point": hook.id, "group_wait": "0s", "mute_timings": [timing.id]},
    )
    rule = webhook_rule(owner=user, url=receiver.url)
    alert_rule_update(rule=rule, data={"contact_points": []})
    factory.write(0, 95)
    _step(rule, factory, 1)
    assert receiver.requests == []
    assert AlertInstance.objects.get(rule=rule).state == "firing"
    _step(rule, factory, 200)  # past the window
    assert [request.json()["status"] for request in receiver.requests] == ["firing"]


def test_repeat_interval_renotifies_unless_acknowledged(user, factory, receiver):
    rule = webhook_rule(owner=user, url=receiver.url, repeat_interval="1m", window="1h")
    factory.write(0, 95)
    _step(rule, factory, 1)
    _step(rule, factory, 30)
    _step(rule, factory, 62)
    assert [request.json()["status"] for request in receiver.requests] == ["firing", "firing"]
    alert_instance_acknowledge(instance=AlertInstance.objects.get(rule=rule), user=user)
    _step(rule, factory, 130)
    assert len(receiver.requests) == 2
