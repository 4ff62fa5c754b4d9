"""A rule's source slug names its own organisation's source (slugs are unique per organisation only): its owner may
belong to another organisation with a source of the same name, whose data the rule must never read."""

from __future__ import annotations

import pytest

from apps.access.models import Membership
from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate
from apps.alerts.alerting.rule_index import RuleIndex
from apps.alerts.models import AlertInstance
from tests.alerts.alerting.conftest import Plant, webhook_rule
from tests.factories import organization_get
from tests.storage.factories import source_create

pytestmark = pytest.mark.django_db


def test_a_rule_reads_its_organisations_source_when_its_owner_sees_the_slug_in_two(user, factory, receiver):
    Membership.objects.create(organization=organization_get(slug="beta"), user=user, role="editor")
    beta = Plant(source_create(slug="plant", organization="beta"))
    beta.start = factory.start
    factory.write(0, 50, device="ours")
    beta.write(0, 99, device="theirs")  # would breach, but it is another organisation's plant
    rule = webhook_rule(owner=user, url=receiver.url)
    summary = alert_rule_evaluate(rule_id=rule.id, now=factory.at(1))
    assert summary.error == ""
    instances = AlertInstance.objects.filter(rule=rule)
    assert [instance.labels["device"] for instance in instances] == ["ours"]
    assert [instance.state for instance in instances] == ["normal"]
    index = RuleIndex()
    index.load()
    assert index.by_metric[(factory.source.id, "temperature")] == [rule.id]
    assert (beta.source.id, "temperature") not in index.by_metric
