"""Fixtures for alerting tests: a source with series, a webhook receiver, rules built through the service."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.alerting.services import alert_rule_create, contact_point_create
from apps.alerts.models import AlertRule
from tests.alerts.alerting.receivers import Receiver, receiver_start, receiver_stop
from tests.factories import organization_get
from tests.storage.factories import points_store, series_create, source_create


@pytest.fixture(autouse=True)
def _query_cache_off(settings):
    """These tests write points into the past and evaluate at simulated times inside a transaction that never
    commits, so the query cache's generation (bumped after a late write commits) would not move: off here."""
    settings.STORAGE_QUERY_CACHE_SECONDS = 0


@pytest.fixture
def receiver():
    started = receiver_start(Receiver())
    yield started
    receiver_stop(started)


@pytest.fixture
def plant(db):
    return source_create(slug="plant")


class Plant:
    """Writes points to a device's temperature series at times relative to a start."""

    def __init__(self, source) -> None:
        self.source = source
        self.start = timezone.now().replace(microsecond=0) - timedelta(minutes=30)

    def at(self, seconds: float):
        return self.start + timedelta(seconds=seconds)

    def write(self, seconds: float, value: float, *, device: str = "press-7", metric: str = "temperature") -> None:
        series_id = series_create(source=self.source, metric=metric, device=device)
        points_store(series_id, [(self.at(seconds), value)])


@pytest.fixture
def factory(plant):
    return Plant(plant)


def webhook_rule(*, owner, url: str, secret: str = "s3cret", **fields) -> AlertRule:
    """A rule on plant/temperature by device, `value > 90` unless `condition` says otherwise, to a webhook."""
    contact_point = contact_point_create(
        organization=organization_get(), created_by=owner, name=f"hook {AlertRule.objects.count()}", kind="webhook",
        config={"url": url, "secret": secret},
    )  # fmt: skip
    body = {
        "name": fields.pop("name", "Hot press"),
        "query": {"source": "plant", "metric": "temperature", "aggregation": "last", "group_by": ["device"]},
        "condition": {"type": "threshold", "op": ">", "value": 90},
        "for": "0s",
        "group_wait": "0s",
        "group_interval": "0s",
        "contact_points": [contact_point.id],
        **fields,
    }
    if body["query"] is None:
        del body["query"]
    return alert_rule_create(organization=organization_get(), owner=owner, data=body)
