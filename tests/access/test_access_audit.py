"""Member, role, team, policy and share changes land in the audit log, with who did it and what changed."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from tests.conftest import api_client_for
from tests.dashboards.factories import dashboard_make
from tests.factories import user_create

ORG = "/api/v1/organizations/test-org"


@pytest.mark.django_db
def test_access_changes_are_audited(viewer, editor):
    admin = user_create(username="ada", role="admin")
    user_create(username="newbie", organization=None)
    client = api_client_for(admin)
    client.post(f"{ORG}/members/", {"username": "newbie", "role": "viewer"}, format="json")
    client.patch(f"{ORG}/members/newbie/", {"role": "editor"}, format="json")
    client.post(f"{ORG}/teams/", {"name": "Ops", "slug": "ops"}, format="json")
    client.post(f"{ORG}/teams/ops/members/", {"username": "newbie"}, format="json")
    policy = client.post(f"{ORG}/policies/", {"name": "f1", "all_members": True, "labels": {"facility": ["f1"]}},
                         format="json").json()  # fmt: skip
    client.patch(f"{ORG}/policies/{policy['id']}/", {"metrics": ["temperature"]}, format="json")
    client.delete(f"{ORG}/policies/{policy['id']}/")
    dashboard = dashboard_make()
    client.post(f"/api/v1/dashboards/{dashboard.uid}/shares/", {"team": "ops", "level": "edit"}, format="json")
    client.delete(f"/api/v1/dashboards/{dashboard.uid}/shares/team/ops/")
    client.delete(f"{ORG}/teams/ops/members/newbie/")
    client.delete(f"{ORG}/members/newbie/")
    events = list(AuditEvent.objects.filter(organization__slug="test-org").order_by("id"))
    actions = [event.action for event in events]
    assert actions == [
        "member.added",
        "member.role_changed",
        "team.created",
        "team.member_added",
        "policy.created",
        "policy.changed",
        "policy.deleted",
        "share.created",
        "share.removed",
        "team.member_removed",
        "member.removed",
    ]
    assert {event.actor_id for event in events} == {admin.pk}
    changed = events[5].details
    assert (changed["before"]["metrics"], changed["after"]["metrics"]) == (None, ["temperature"])
    assert events[1].details == {"username": "newbie", "from": "viewer", "to": "editor"}
