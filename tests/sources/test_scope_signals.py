"""Which changes announce a data scope change (apps/sources/signals.py)."""

from __future__ import annotations

import json

import pytest

from apps.access.models import Membership
from apps.storage import scope_events
from tests.factories import organization_get, user_create
from tests.storage.factories import source_create


@pytest.fixture
def announced(monkeypatch):
    messages: list[set[int] | None] = []

    class Recorder:
        def pipeline(self, transaction=False):
            return self

        def incr(self, key):
            assert key == scope_events.SCOPE_GENERATION_KEY

        def publish(self, channel, message):
            assert channel == scope_events.SCOPE_CHANNEL
            messages.append(scope_events.scope_message_users(message))

        def execute(self):
            return []

    # Recorded instead of published so the test sees each message (the pub/sub path is tested end to end in
    # tests/dashboards/test_live_subscriptions.py against real Redis).
    monkeypatch.setattr(scope_events, "redis_client", lambda: Recorder())
    return messages


@pytest.mark.django_db
def test_memberships_flags_and_source_moves_announce_scope_changes(announced, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        user = user_create(username="quinn")
    assert announced == [{user.pk}]  # joined the test organisation
    with django_capture_on_commit_callbacks(execute=True):
        user.last_name = "Q"
        user.save()
        user.last_login = None
        user.save(update_fields=["last_login"])
    assert announced == [{user.pk}]  # name and login changes do not touch the scope
    with django_capture_on_commit_callbacks(execute=True):
        user.is_superuser = True
        user.save()
    assert announced[-1] == {user.pk}
    source = source_create(slug="moving")
    with django_capture_on_commit_callbacks(execute=True):
        source.enabled = False
        source.save()
    assert len(announced) == 2  # pausing a source changes nobody's scope
    with django_capture_on_commit_callbacks(execute=True):
        source.organization = organization_get(slug="elsewhere")
        source.save()
    assert announced[-1] is None  # everyone's
    with django_capture_on_commit_callbacks(execute=True):
        Membership.objects.filter(user=user).delete()
    assert announced[-1] == {user.pk}
    with django_capture_on_commit_callbacks(execute=True):
        source.delete()
    assert announced[-1] is None


def test_unreadable_messages_mean_everyone():
    assert scope_events.scope_message_users(json.dumps({"users": [3, 1]})) == {1, 3}
    assert scope_events.scope_message_users(json.dumps({"users": None})) is None
    assert scope_events.scope_message_users("{garbage") is None
