"""The demo's alerting: an in-app contact point, a rule on the factory's temperatures that fires now and then, and a
weekend mute timing, so `make demo` shows alerts, their history and the alert pages with something in them.

Idempotent by name: an object the organisation already has (a person may have changed it) is left as it is.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from apps.access.models import Organization
from apps.alerts.alerting.services import alert_rule_create, contact_point_create, mute_timing_create
from apps.alerts.models import AlertRule, ContactPoint, ContactPointKind, MuteTiming
from apps.dashboards.demo import HOT_MACHINE_CELSIUS

DEMO_CONTACT_POINT = "Control room (in-app)"
DEMO_RULE = "Hot machine"
DEMO_MUTE_TIMING = "Weekends"


def demo_alerting_create(*, organization: Organization, owner: AbstractBaseUser) -> list[str]:
    """Create what is missing of the demo's alerting; returns the names created."""
    created = []
    contact_point = ContactPoint.objects.filter(organization=organization, name=DEMO_CONTACT_POINT).first()
    if contact_point is None:
        contact_point = contact_point_create(
            organization=organization, created_by=owner, name=DEMO_CONTACT_POINT, kind=ContactPointKind.IN_APP,
            config={},
        )  # fmt: skip
        created.append(DEMO_CONTACT_POINT)
    if not AlertRule.objects.filter(organization=organization, name=DEMO_RULE).exists():
        # Above the temperature panels' orange threshold (HOT_MACHINE_CELSIUS) for two minutes.
        hot = HOT_MACHINE_CELSIUS
        alert_rule_create(organization=organization, owner=owner, data={
            "name": DEMO_RULE, "severity": "warning",
            "query": {"source": "demo-factory", "metric": "temperature", "aggregation": "max", "group_by": ["device"]},
            "window": "5m", "interval": "1m", "for": "2m", "keep_firing_for": "2m",
            "condition": {"type": "threshold", "op": ">", "value": hot, "recovery": hot - 1},
            "annotations": {"summary": "{{ labels.device }} at {{ value | round(1) }} °C",
                            "description": f"Above {hot} °C for two minutes; it clears below {hot - 1} °C."},
            "contact_points": [contact_point.id], "group_wait": "0s",
        })  # fmt: skip
        created.append(DEMO_RULE)
    if not MuteTiming.objects.filter(organization=organization, name=DEMO_MUTE_TIMING).exists():
        mute_timing_create(organization=organization, data={
            "name": DEMO_MUTE_TIMING, "intervals": [{"weekdays": ["saturday", "sunday"], "timezone": "UTC"}],
        })  # fmt: skip
        created.append(DEMO_MUTE_TIMING)
    return created
