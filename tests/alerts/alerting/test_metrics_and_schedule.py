"""/metrics shows alerting's figures; the scheduled tick evaluates due rules, a bounded number per run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from apps.alerts.alerting.scheduling import alert_rules_evaluate_due, rules_due
from apps.alerts.alerting.services import notifications_flush
from apps.alerts.models import AlertRule
from tests.alerts.alerting.conftest import webhook_rule
from tests.platform.test_metrics import _sample

pytestmark = pytest.mark.django_db


def test_metrics_show_evaluations_latency_instances_by_state_and_notifications(client, user, factory, receiver):
    text = client.get("/metrics").content.decode()
    evaluations = _sample(text, "analytics_alert_evaluations_total", trigger="schedule", outcome="ok") or 0
    sent = _sample(text, "analytics_alert_notifications_total", kind="webhook", outcome="sent") or 0
    rule = webhook_rule(owner=user, url=receiver.url, interval="1s")
    factory.write(0, 95, device="press-7")
    factory.write(0, 50, device="press-8")
    alert_rules_evaluate_due(now=factory.at(1))
    notifications_flush(now=factory.at(2))
    text = client.get("/metrics").content.decode()
    assert _sample(text, "analytics_alert_evaluations_total", trigger="schedule", outcome="ok") == evaluations + 1
    assert _sample(text, "analytics_alert_evaluation_duration_seconds_count", trigger="schedule") >= 1
    assert _sample(text, "analytics_alert_instances", state="firing") == 1
    assert _sample(text, "analytics_alert_instances", state="normal") == 1
    assert _sample(text, "analytics_alert_notifications_total", kind="webhook", outcome="sent") == sent + 1
    assert AlertRule.objects.get(pk=rule.pk).last_evaluated_at == factory.at(1)


@override_settings(ALERTS_MAX_RULES_PER_TICK=3)
def test_the_tick_takes_the_most_overdue_rules_first_and_at_most_its_bound(user, receiver):
    now = timezone.now()
    rules = [webhook_rule(owner=user, url=receiver.url, name=f"rule {index}", interval="1m") for index in range(5)]
    for index, rule in enumerate(rules):
        AlertRule.objects.filter(pk=rule.pk).update(last_evaluated_at=now - timedelta(minutes=index))
    # Rule 0 was evaluated just now and rule 1 a minute ago (due); 4 is the most overdue.
    assert rules_due(now=now, limit=10) == [rules[4].id, rules[3].id, rules[2].id, rules[1].id]
    assert alert_rules_evaluate_due(now=now)["evaluated"] == 3
    assert rules_due(now=timezone.now(), limit=10) == [rules[1].id]
