"""Alerting pages render for members, list only their organisations' objects, and 404 across tenants."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apps.alerts.alerting.services import contact_point_create, silence_create
from apps.alerts.models import AlertRule
from tests.alerts.alerting.conftest import webhook_rule
from tests.factories import organization_get, user_create

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_show_rules_states_instances_history_and_buttons(editor, factory, receiver):
    from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate

    rule = webhook_rule(owner=editor, url=receiver.url, annotations={"summary": "{{ labels.device }} hot"})
    factory.write(0, 95)
    alert_rule_evaluate(rule_id=rule.id, now=factory.at(1))
    matchers = [{"label": "device", "op": "=", "value": "x"}]
    silence_create(
        organization=organization_get(),
        created_by=editor,
        data={"matchers": matchers, "ends_at": "2099-01-01T00:00:00Z"},
    )
    client = _client(editor)
    listing = client.get("/alerts/").content.decode()
    assert "Hot press" in listing
    assert "firing 1" in listing
    # When it was last evaluated, as a time ago with the exact time on hover (it printed "Dec. 7, 2026, 4:35 p.m.").
    evaluated = AlertRule.objects.get(pk=rule.pk).last_evaluated_at
    assert f'<time datetime="{evaluated.isoformat(timespec="seconds")}' in listing
    assert re.search(r'title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">[^<]+ ago</time>', listing)
    detail = client.get(f"/alerts/rules/{rule.id}").content.decode()
    assert "press-7 hot" in detail
    for page in (detail, client.get("/alerts/instances/").content.decode()):  # how long an instance is in its state
        assert re.search(r'<td data-label="Since"><time datetime="[^"]+" title="[^"]+ UTC">[^<]+ ago</time>', page)
    assert 'data-acknowledge="' in detail
    assert 'normal</span> → <span class="badge state-firing">firing' in detail
    editor_page = client.get(f"/alerts/rules/{rule.id}/edit").content.decode()
    assert "backtest-run" in editor_page
    assert "Hot press" in editor_page
    assert 'data-send-test="' in client.get("/alerts/contact-points/").content.decode()
    assert 'data-expire="' in client.get("/alerts/silences/").content.decode()
    assert "press-7" in client.get("/alerts/instances/?state=firing").content.decode()
    assert client.get("/alerts/policies/").status_code == 200
    assert client.get("/alerts/rules/new").status_code == 200


def test_alert_values_are_shown_as_notifications_write_them_with_the_full_value_on_hover(editor, factory, receiver):
    """Six significant digits, as `{{ value }}` in a notification (it showed 95.123456789)."""
    import json

    from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate
    from apps.alerts.models import AlertInstance

    rule = webhook_rule(owner=editor, url=receiver.url)
    factory.write(0, 95.123456789)
    alert_rule_evaluate(rule_id=rule.id, now=factory.at(1))
    value = AlertInstance.objects.get(rule=rule).value
    assert value == pytest.approx(95.123456789)
    client = _client(editor)
    detail = client.get(f"/alerts/rules/{rule.id}").content.decode()
    for page in (detail, client.get("/alerts/instances/").content.decode()):
        assert f'<td data-label="Value"><span title="{value}">95.1235</span></td>' in page
    assert f'<span title="{value}">95.1235</span></td><td data-label="Reason">' in detail  # the history table
    history = json.loads(re.search(r'<script id="history-data" type="application/json">(.*?)</script>', detail)[1])
    assert [change["value_text"] for change in history] == ["95.1235"]


def test_pages_are_scoped_to_the_organisation(editor, receiver):
    rule = webhook_rule(owner=editor, url=receiver.url)
    contact_point_create(organization=organization_get(), created_by=editor, name="secret hook", kind="in_app",
                         config={})  # fmt: skip
    stranger = _client(user_create(username="mallory", organization="other-org", role="editor"))
    assert "Hot press" not in stranger.get("/alerts/").content.decode()
    assert stranger.get(f"/alerts/rules/{rule.id}").status_code == 404
    assert stranger.get(f"/alerts/rules/{rule.id}/edit").status_code == 404
    assert "secret hook" not in stranger.get("/alerts/contact-points/").content.decode()
    assert Client().get("/alerts/").status_code == 302  # sign in first


def test_alerts_and_a_rules_instances_come_a_page_at_a_time_most_urgent_first(editor, receiver):
    """A rule over 10,000 sensors has 10,000 instances: the Alerts page showed its first 500 with no word of the rest,
    and a rule's page listed every instance, in alphabetical order of state ("error" before "firing")."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.alerts.models import AlertInstance
    from apps.alerts.views import INSTANCES_PER_PAGE

    rule = webhook_rule(owner=editor, url=receiver.url)
    now = timezone.now()
    total = INSTANCES_PER_PAGE + 30
    states = {7: "firing", 120: "firing", 3: "error", 50: "pending"}
    AlertInstance.objects.bulk_create(
        AlertInstance(rule=rule, fingerprint=f"{index:04d}", labels={"device": f"d{index:04d}"},
                      state=states.get(index, "normal"), state_since=now - timedelta(minutes=index))
        for index in range(total)
    )  # fmt: skip
    client = _client(editor)

    def devices(page: str) -> list[str]:
        return re.findall(r"<code>device=(d\d{4})</code>", page)

    first = client.get("/alerts/instances/").content.decode()
    assert devices(first)[:4] == ["d0120", "d0007", "d0003", "d0050"]  # firing (longest first), error, pending
    assert len(devices(first)) == INSTANCES_PER_PAGE
    assert f"Page 1 of 2 ({total} in all)" in first
    assert 'href="?page=2" rel="next"' in first
    second = client.get("/alerts/instances/?page=2").content.decode()
    assert len(devices(second)) == 30
    assert not set(devices(first)) & set(devices(second))
    firing = client.get("/alerts/instances/?state=firing").content.decode()
    assert devices(firing) == ["d0120", "d0007"]
    assert "Page 1 of" not in firing  # one page: no page links

    detail = client.get(f"/alerts/rules/{rule.id}").content.decode()
    assert devices(detail)[:4] == ["d0120", "d0007", "d0003", "d0050"]
    assert len(devices(detail)) == INSTANCES_PER_PAGE
    # Followed from the Alerts page, the rule opens at the page that holds the instance, highlighted.
    last = AlertInstance.objects.get(rule=rule, fingerprint="0000")  # normal, the newest state: last in order
    followed = client.get(f"/alerts/rules/{rule.id}?instance={last.id}").content.decode()
    assert f'<tr id="instance-{last.id}" class="highlight">' in followed
    assert "Page 2 of 2" in followed
