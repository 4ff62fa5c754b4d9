"""Group rules applied to a user at sign-in: organisation roles and team places that SSO manages.

The rule (docs/sso.md): SSO adds, changes and removes only what it granted itself (ManagedMembership,
ManagedTeamMembership). A membership or team place someone granted by hand is never changed or removed here,
and the highest role of all matching rules wins in each organisation. Rules naming an organisation or team
that does not exist are skipped and logged. The organisation's last admin is never removed or demoted by a
sign-in (the access rules refuse it); that is logged and audited instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from apps.access.models import Membership, Organization, Team
from apps.access.services import AccessError, member_remove, member_role_set
from apps.sso.config import ROLE_RANK, GroupRule, settings_group_rules
from apps.sso.models import GroupRule as GroupRuleRow
from apps.sso.models import ManagedMembership, ManagedTeamMembership

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MembershipChange:
    """One change a sign-in made (`added`, `role_changed`, `removed`, `team_added`, `team_removed`, `kept`)."""

    organization: str
    change: str
    role: str = ""
    previous_role: str = ""
    team: str = ""
    reason: str = ""


def group_rules() -> list[GroupRule]:
    """Rules from OIDC_GROUP_RULES and from the admin."""
    rows = GroupRuleRow.objects.select_related("organization")
    return settings_group_rules() + [
        GroupRule(group=row.group, organization=row.organization.slug, team=row.team, role=row.role) for row in rows
    ]


def _wanted(groups: list[str]) -> tuple[dict[str, tuple[str, list[str]]], dict[tuple[str, str], list[str]]]:
    roles: dict[str, tuple[str, list[str]]] = {}
    teams: dict[tuple[str, str], list[str]] = {}
    for rule in group_rules():
        if rule.group not in groups:
            continue
        role, granted_by = roles.get(rule.organization, ("", []))
        if not role or ROLE_RANK[rule.role] > ROLE_RANK[role]:
            role = rule.role
        roles[rule.organization] = (role, sorted({*granted_by, rule.group}))
        if rule.team:
            teams[(rule.organization, rule.team)] = sorted({*teams.get((rule.organization, rule.team), []), rule.group})
    return roles, teams


def sso_memberships_sync(*, user: AbstractBaseUser, groups: list[str]) -> list[MembershipChange]:
    """Make the user's SSO-managed memberships and team places exactly what the rules grant for `groups`."""
    wanted_roles, wanted_teams = _wanted(groups)
    organizations = {org.slug: org for org in Organization.objects.filter(slug__in=wanted_roles)}
    for slug in set(wanted_roles) - set(organizations):
        logger.warning("SSO group rule names organisation %r, which does not exist; skipped", slug)
    memberships = {
        membership.organization_id: membership
        for membership in Membership.objects.filter(user=user).select_related("organization", "sso")
    }
    changes: list[MembershipChange] = []
    for slug, organization in organizations.items():
        role, granted_by = wanted_roles[slug]
        membership = memberships.pop(organization.pk, None)
        if membership is None:
            membership = Membership.objects.create(organization=organization, user=user, role=role)
            ManagedMembership.objects.create(membership=membership, groups=granted_by)
            changes.append(MembershipChange(organization=slug, change="added", role=role))
            continue
        managed = getattr(membership, "sso", None)
        if managed is None:
            continue  # granted by hand: SSO leaves it alone
        if membership.role != role:
            previous = membership.role
            try:
                member_role_set(membership=membership, role=role)
            except AccessError as error:
                changes.append(MembershipChange(organization=slug, change="kept", role=previous, reason=str(error)))
            else:
                changes.append(
                    MembershipChange(organization=slug, change="role_changed", role=role, previous_role=previous)
                )
        if managed.groups != granted_by:
            managed.groups = granted_by
            managed.updated_at = timezone.now()
            managed.save(update_fields=["groups", "updated_at"])
    for membership in memberships.values():
        if getattr(membership, "sso", None) is None:
            continue
        slug = membership.organization.slug
        try:
            member_remove(membership=membership)
        except AccessError as error:
            changes.append(MembershipChange(organization=slug, change="kept", role=membership.role, reason=str(error)))
        else:
            changes.append(MembershipChange(organization=slug, change="removed", role=membership.role))
    changes += _teams_sync(user=user, wanted=wanted_teams)
    return changes


def _teams_sync(*, user: AbstractBaseUser, wanted: dict[tuple[str, str], list[str]]) -> list[MembershipChange]:
    member_of = set(Membership.objects.filter(user=user).values_list("organization__slug", flat=True))
    teams: dict[tuple[str, str], Team] = {}
    for organization_slug, team_slug in wanted:
        team = (
            Team.objects.select_related("group", "organization")
            .filter(organization__slug=organization_slug, slug=team_slug)
            .first()
        )
        if team is None:
            logger.warning(
                "SSO group rule names team %r of %r, which does not exist; skipped", team_slug, organization_slug
            )
        elif organization_slug in member_of:
            teams[(organization_slug, team_slug)] = team
    managed = {
        (place.team.organization.slug, place.team.slug): place
        for place in ManagedTeamMembership.objects.filter(user=user).select_related("team__organization", "team__group")
    }
    in_group = set(user.groups.values_list("pk", flat=True))
    changes: list[MembershipChange] = []
    for key, team in teams.items():
        place = managed.pop(key, None)
        if team.group_id in in_group and place is None:
            continue  # put in the team by hand
        if team.group_id not in in_group:
            team.group.user_set.add(user)
            changes.append(MembershipChange(organization=key[0], change="team_added", team=key[1]))
        ManagedTeamMembership.objects.update_or_create(
            user=user, team=team, defaults={"groups": wanted[key], "updated_at": timezone.now()}
        )
    for key, place in managed.items():
        if place.team.group_id in in_group:
            place.team.group.user_set.remove(user)
            changes.append(MembershipChange(organization=key[0], change="team_removed", team=key[1]))
        place.delete()
    return changes
