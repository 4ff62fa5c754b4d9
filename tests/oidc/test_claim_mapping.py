"""Claims to users and memberships: just-in-time users, group rules, SSO-managed memberships, local passwords."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.exceptions import ImproperlyConfigured

from apps.access.models import Membership
from apps.access.services import team_create
from apps.audit.models import AuditEvent
from apps.sso.config import GroupRule, parse_group_rules
from apps.sso.models import GroupRule as GroupRuleRow
from apps.sso.models import ManagedMembership, ManagedTeamMembership, OidcIdentity
from apps.sso.services import SignInRefused, sso_user_sign_in
from tests.factories import organization_get, user_create

ISSUER = "https://idp.example.com"


@pytest.fixture
def sso(settings):
    settings.OIDC_ISSUER = ISSUER
    settings.OIDC_CLIENT_ID = "analytics"
    settings.OIDC_CLIENT_SECRET = "secret"
    settings.OIDC_GROUP_RULES = (
        "plant-f1-operators=acme/f1/viewer; plant-f1-engineers=acme/f2/editor; "
        "globex-admins=globex/admin; globex-staff=globex/editor"
    )
    return settings


def _claims(groups: list[str], **extra) -> dict:
    return {
        "sub": "u-1",
        "email": "Olivia@Acme.example",
        "email_verified": True,
        "name": "Olivia Ops",
        "preferred_username": "olivia",
        "groups": groups,
        **extra,
    }


def _roles(user) -> dict[str, str]:
    return dict(Membership.objects.filter(user=user).values_list("organization__slug", "role"))


def _teams(user) -> set[str]:
    return {f"{group.team.organization.slug}/{group.team.slug}" for group in user.groups.select_related("team")}


def test_rules_parse_from_the_environment_forms():
    assert parse_group_rules("a=acme/viewer;/kc/path/b=acme/f1/editor\nc = globex/admin") == [
        GroupRule(group="a", organization="acme", role="viewer"),
        GroupRule(group="/kc/path/b", organization="acme", team="f1", role="editor"),
        GroupRule(group="c", organization="globex", role="admin"),
    ]
    assert parse_group_rules('[{"group": "g", "organization": "acme", "role": "viewer", "team": "f1"}]') == [
        GroupRule(group="g", organization="acme", team="f1", role="viewer")
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("g=acme/owner", "role must be one of viewer, editor, admin, got 'owner'"),
        ("g=acme", "write group=organization/role"),
        ("=acme/viewer", "the group is empty"),
        ('[{"group": "g", "org": "acme"}]', "unknown keys ['org']"),
        ("[not json", "not valid JSON"),
    ],
)
def test_bad_rules_say_what_is_wrong(text, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_group_rules(text)


def test_first_sign_in_creates_the_user_just_in_time_with_mapped_memberships(db, sso):
    acme = organization_get(slug="acme")
    user = sso_user_sign_in(claims=_claims(["plant-f1-operators", "other"]))
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "olivia",
        "olivia@acme.example",
        "Olivia",
        "Ops",
    )
    assert not user.has_usable_password()
    assert _roles(user) == {"acme": "viewer"}
    membership = Membership.objects.get(user=user, organization=acme)
    assert membership.sso.groups == ["plant-f1-operators"]
    identity = OidcIdentity.objects.get(user=user)
    assert (identity.issuer, identity.subject, identity.groups) == (ISSUER, "u-1", ["other", "plant-f1-operators"])


def test_every_sign_in_applies_the_groups_again(db, sso):
    organization_get(slug="acme")
    organization_get(slug="globex")
    user = sso_user_sign_in(claims=_claims(["plant-f1-operators"]))
    assert sso_user_sign_in(claims=_claims(["plant-f1-operators", "plant-f1-engineers"])) == user
    assert _roles(user) == {"acme": "editor"}  # the highest role of the matching rules wins
    sso_user_sign_in(claims=_claims(["globex-staff"]))
    assert _roles(user) == {"globex": "editor"}  # removed at the provider, removed here
    sso_user_sign_in(claims=_claims([]))
    assert _roles(user) == {}
    assert not ManagedMembership.objects.exists()


def test_memberships_granted_by_hand_are_left_alone(db, sso):
    acme = organization_get(slug="acme")
    user = sso_user_sign_in(claims=_claims([]))
    Membership.objects.create(user=user, organization=acme, role="admin")
    sso_user_sign_in(claims=_claims(["plant-f1-operators"]))
    assert _roles(user) == {"acme": "admin"}
    sso_user_sign_in(claims=_claims([]))
    assert _roles(user) == {"acme": "admin"}


def test_rules_from_the_admin_count_too(db, sso):
    initech = organization_get(slug="initech")
    GroupRuleRow.objects.create(group="initech-staff", organization=initech, role="editor")
    user = sso_user_sign_in(claims=_claims(["initech-staff"]))
    assert _roles(user) == {"initech": "editor"}


def test_rules_naming_a_missing_organisation_are_skipped(db, sso):
    user = sso_user_sign_in(claims=_claims(["globex-admins"]))
    assert _roles(user) == {}


def test_a_verified_email_links_an_existing_user_but_never_a_superuser(db, sso):
    existing = user_create(username="olivia.local", organization=None)
    existing.email = "olivia@acme.example"
    existing.save()
    assert sso_user_sign_in(claims=_claims([])) == existing

    root = get_user_model().objects.create_superuser("root", "root@acme.example", "x")
    other = sso_user_sign_in(claims=_claims([], sub="u-2", email="root@acme.example", preferred_username="root"))
    assert other != root
    assert other.username == "root-2"


def test_an_unverified_email_does_not_link(db, sso):
    existing = user_create(username="olivia", organization=None)
    user = sso_user_sign_in(claims=_claims([], email="olivia@example.com", email_verified=False))
    assert user != existing
    assert user.username == "olivia-2"


def test_without_just_in_time_creation_unknown_people_are_refused(db, sso):
    sso.OIDC_CREATE_USERS = False
    with pytest.raises(SignInRefused, match="no account for this identity"):
        sso_user_sign_in(claims=_claims([]))


def test_a_deactivated_user_is_refused(db, sso):
    user = sso_user_sign_in(claims=_claims([]))
    user.is_active = False
    user.save()
    with pytest.raises(SignInRefused, match="deactivated"):
        sso_user_sign_in(claims=_claims([]))


def test_local_passwords_off_leaves_only_break_glass_users(db, settings):
    user_create(username="admin")
    user_create(username="vic")
    password = "correct horse battery staple"
    assert authenticate(username="vic", password=password) is not None
    settings.OIDC_LOCAL_PASSWORDS = False
    settings.OIDC_BREAK_GLASS_USERS = ["admin"]
    assert authenticate(username="vic", password=password) is None
    assert authenticate(username="admin", password=password) is not None


def test_teams_follow_the_groups_and_hand_made_places_stay(db, sso):
    acme = organization_get(slug="acme")
    f1 = team_create(organization=acme, name="Plant F1", slug="f1")
    team_create(organization=acme, name="Plant F2", slug="f2")
    user = sso_user_sign_in(claims=_claims(["plant-f1-operators"]))
    assert _teams(user) == {"acme/f1"}
    assert ManagedTeamMembership.objects.get(user=user).team == f1
    user = sso_user_sign_in(claims=_claims(["plant-f1-engineers"]))
    assert (_roles(user), _teams(user)) == ({"acme": "editor"}, {"acme/f2"})
    f1.group.user_set.add(user)  # by hand
    sso_user_sign_in(claims=_claims(["plant-f1-engineers"]))
    assert _teams(user) == {"acme/f1", "acme/f2"}
    sso_user_sign_in(claims=_claims([]))
    assert (_roles(user), _teams(user)) == ({}, set())  # the membership went, and every team place with it
    assert not ManagedTeamMembership.objects.exists()


def test_sign_ins_and_role_changes_are_audited(db, sso):
    acme = organization_get(slug="acme")
    user = sso_user_sign_in(claims=_claims(["plant-f1-operators"]))
    sso_user_sign_in(claims=_claims(["plant-f1-engineers"]))
    sso_user_sign_in(claims=_claims([]))
    everything = AuditEvent.objects.order_by("id").values_list("action", "actor_id", "organization_id", "details")
    # The access services record their own generic member.* events for the changes SSO makes through them.
    generic = [action for action, *_ in everything if action.startswith("member.")]
    assert generic == ["member.role_changed", "member.removed"]
    events = [event for event in everything if event[0].startswith("sso.")]
    actions = [(action, organization) for action, _, organization, _ in events]
    assert actions == [
        ("sso.sign_in", None),
        ("sso.membership_added", acme.pk),
        ("sso.sign_in", None),
        ("sso.membership_role_changed", acme.pk),
        ("sso.sign_in", None),
        ("sso.membership_removed", acme.pk),
    ]
    assert {actor for _, actor, _, _ in events} == {user.pk}
    assert events[0][3]["groups"] == ["plant-f1-operators"]
    assert (events[3][3]["previous_role"], events[3][3]["role"]) == ("viewer", "editor")


def test_the_last_admin_is_not_removed_by_a_sign_in(db, sso):
    globex = organization_get(slug="globex")
    user = sso_user_sign_in(claims=_claims(["globex-admins"]))
    sso_user_sign_in(claims=_claims([]))
    assert _roles(user) == {"globex": "admin"}
    kept = AuditEvent.objects.get(action="sso.membership_kept")
    assert kept.organization_id == globex.pk
    assert "last admin" in kept.details["reason"]
