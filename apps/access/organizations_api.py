"""REST endpoints for organisations, their members, teams and row-level data policies.

An organisation the caller is not a member of answers 404 like one that does not exist; a member without the
role for a change gets 403. Admins manage members, teams and policies; every member reads the lists of members
and teams; only admins read the policies (they name label values of others' grants).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import ErrorSerializer
from apps.access.models import DataPolicy, Membership, MembershipRole, Organization, Team
from apps.access.selectors import (
    data_policy_get,
    data_policy_list,
    member_get,
    member_list,
    organization_for_member,
    organization_list_with_roles,
    team_get,
    team_list,
)
from apps.access.serializers import (
    DataPolicySerializer,
    DataPolicyUpdateSerializer,
    DataPolicyWriteSerializer,
    MemberCreateSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    OrganizationCreateSerializer,
    OrganizationSerializer,
    TeamCreateSerializer,
    TeamMemberCreateSerializer,
    TeamSerializer,
    TeamUpdateSerializer,
)
from apps.access.services import (
    data_policy_create,
    data_policy_delete,
    data_policy_update,
    member_add,
    member_remove,
    member_role_set,
    organization_create_with_admin,
    team_create,
    team_delete,
    team_member_add,
    team_member_remove,
    team_update,
)

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


def organization_for_request(request: Request, slug: str, *, admin: bool = False) -> tuple[Organization, str]:
    """The organisation and the caller's role; 404 for non-members (as for no such organisation), 403 for a member
    who is not an admin when `admin`."""
    found = organization_for_member(user=request.user, slug=slug)
    if found is None:
        raise Http404(f"No organisation {slug!r} that you belong to.")
    if admin and found[1] != MembershipRole.ADMIN:
        raise PermissionDenied("Only organisation admins may do this.")
    return found


def _organization(organization: Organization, role: str) -> dict[str, Any]:
    return OrganizationSerializer(
        {"name": organization.name, "slug": organization.slug, "role": role, "created_at": organization.created_at}
    ).data


def _member(membership: Membership) -> dict[str, Any]:
    teams = sorted(
        team.slug for team in membership.organization.teams.filter(group__user=membership.user_id).only("slug")
    )
    return MemberSerializer(
        {
            "username": membership.user.get_username(),
            "role": membership.role,
            "teams": teams,
            "created_at": membership.created_at,
        }
    ).data


def _team(team: Team) -> dict[str, Any]:
    members = sorted(user.get_username() for user in team.group.user_set.all())
    return TeamSerializer(
        {"name": team.name, "slug": team.slug, "members": members, "created_at": team.created_at}
    ).data


def _policy(policy: DataPolicy) -> dict[str, Any]:
    return DataPolicySerializer(
        {
            "id": policy.pk,
            "name": policy.name,
            "source": policy.source.slug if policy.source_id else None,
            "all_members": policy.all_members,
            "users": sorted(user.get_username() for user in policy.users.all()),
            "teams": sorted(team.slug for team in policy.teams.all()),
            "labels": policy.labels,
            "metrics": policy.metrics,
            "created_at": policy.created_at,
            "updated_at": policy.updated_at,
        }
    ).data


class OrganizationListCreateView(APIView):
    """Your organisations, or create one (you become its admin; it starts with the policy 'All members read
    everything')."""

    @extend_schema(responses={200: OrganizationSerializer(many=True)}, summary="List your organisations")
    def get(self, request: Request) -> Response:
        return Response([_organization(org, role) for org, role in organization_list_with_roles(user=request.user)])

    @extend_schema(
        request=OrganizationCreateSerializer,
        responses={201: OrganizationSerializer, **ERRORS},
        summary="Create an organisation",
    )
    def post(self, request: Request) -> Response:
        serializer = OrganizationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = organization_create_with_admin(admin=request.user, **serializer.validated_data)
        return Response(_organization(organization, MembershipRole.ADMIN), status=status.HTTP_201_CREATED)


class OrganizationDetailView(APIView):
    """One of your organisations, with your role in it."""

    @extend_schema(responses={200: OrganizationSerializer, 404: ErrorSerializer}, summary="Get an organisation")
    def get(self, request: Request, slug: str) -> Response:
        return Response(_organization(*organization_for_request(request, slug)))


class MemberListCreateView(APIView):
    """The organisation's members (any member reads them); admins add members."""

    scope_required = {"POST": "admin", "PATCH": "admin", "PUT": "admin", "DELETE": "admin"}  # API tokens

    @extend_schema(responses={200: MemberSerializer(many=True), 404: ErrorSerializer}, summary="List members")
    def get(self, request: Request, slug: str) -> Response:
        organization, _ = organization_for_request(request, slug)
        return Response([_member(membership) for membership in member_list(organization=organization)])

    @extend_schema(request=MemberCreateSerializer, responses={201: MemberSerializer, **ERRORS}, summary="Add a member")
    def post(self, request: Request, slug: str) -> Response:
        organization, _ = organization_for_request(request, slug, admin=True)
        serializer = MemberCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = member_add(organization=organization, **serializer.validated_data)
        return Response(_member(membership), status=status.HTTP_201_CREATED)


class MemberDetailView(APIView):
    """One member: admins change their role or remove them (never the last admin)."""

    scope_required = {"POST": "admin", "PATCH": "admin", "PUT": "admin", "DELETE": "admin"}  # API tokens

    def _membership(self, request: Request, slug: str, username: str, *, admin: bool) -> Membership:
        organization, _ = organization_for_request(request, slug, admin=admin)
        membership = member_get(organization=organization, username=username)
        if membership is None:
            raise Http404(f"No member {username!r} in this organisation.")
        return membership

    @extend_schema(responses={200: MemberSerializer, 404: ErrorSerializer}, summary="Get a member")
    def get(self, request: Request, slug: str, username: str) -> Response:
        return Response(_member(self._membership(request, slug, username, admin=False)))

    @extend_schema(request=MemberUpdateSerializer, responses={200: MemberSerializer, **ERRORS}, summary="Change a role")
    def patch(self, request: Request, slug: str, username: str) -> Response:
        membership = self._membership(request, slug, username, admin=True)
        serializer = MemberUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(_member(member_role_set(membership=membership, role=serializer.validated_data["role"])))

    @extend_schema(request=None, responses={204: None, **ERRORS}, summary="Remove a member")
    def delete(self, request: Request, slug: str, username: str) -> Response:
        member_remove(membership=self._membership(request, slug, username, admin=True))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamListCreateView(APIView):
    """The organisation's teams (any member reads them); admins create teams."""

    scope_required = {"POST": "admin", "PATCH": "admin", "PUT": "admin", "DELETE": "admin"}  # API tokens

    @extend_schema(responses={200: TeamSerializer(many=True), 404: ErrorSerializer}, summary="List teams")
    def get(self, request: Request, slug: str) -> Response:
        organization, _ = organization_for_request(request, slug)
        return Response([_team(team) for team in team_list(organization=organization)])

    @extend_schema(request=TeamCreateSerializer, responses={201: TeamSerializer, **ERRORS}, summary="Create a team")
    def post(self, request: Request, slug: str) -> Response:
        organization, _ = organization_for_request(request, slug, admin=True)
        serializer = TeamCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(
            _team(team_create(organization=organization, **serializer.validated_data)), status=status.HTTP_201_CREATED
        )


def _team_for_request(request: Request, slug: str, team_slug: str, *, admin: bool) -> Team:
    organization, _ = organization_for_request(request, slug, admin=admin)
    team = team_get(organization=organization, slug=team_slug)
    if team is None:
        raise Http404(f"No team {team_slug!r} in this organisation.")
    return team


class TeamDetailView(APIView):
    """One team: admins rename or delete it."""

    scope_required = {"POST": "admin", "PATCH": "admin", "PUT": "admin", "DELETE": "admin"}  # API tokens

    @extend_schema(responses={200: TeamSerializer, 404: ErrorSerializer}, summary="Get a team")
    def get(self, request: Request, slug: str, team_slug: str) -> Response:
        return Response(_team(_team_for_request(request, slug, team_slug, admin=False)))

    @extend_schema(request=TeamUpdateSerializer, responses={200: TeamSerializer, **ERRORS}, summary="Rename a team")
    def patch(self, request: Request, slug: str, team_slug: str) -> Response:
        team = _team_for_request(request, slug, team_slug, admin=True)
        serializer = TeamUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(_team(team_update(team=team, name=serializer.validated_data["name"])))

    @extend_schema(request=None, responses={204: None, **ERRORS}, summary="Delete a team")
    def delete(self, request: Request, slug: str, team_slug: str) -> Response:
        team_delete(team=_team_for_request(request, slug, team_slug, admin=True))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamMemberListCreateView(APIView):
    """A team's members; admins add members of the organisation to it."""

    scope_required = {"POST": "admin", "PATCH": "admin", "PUT": "admin", "DELETE": "admin"}  # API tokens

    @extend_schema(responses={200: TeamSerializer, 404: ErrorSerializer}, summary="List a team's members")
    def get(self, request: Request, slug: str, team_slug: str) -> Response:
        return Response(_team(_team_for_request(request, slug, team_slug, admin=False)))

    @extend_schema(
        request=TeamMemberCreateSerializer, responses={201: TeamSerializer, **ERRORS}, summary="Add a team member"
    )
    def post(self, request: Request, slug: str, team_slug: str) -> Response:
        team = _team_for_request(request, slug, team_slug, admin=True)
        serializer = TeamMemberCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team_member_add(team=team, username=serializer.validated_data["username"])
        return Response(_team(team), status=status.HTTP_201_CREATED)


class TeamMemberDetailView(APIView):
    """Remove a user from a team (admins)."""

    scope_required = {"POST": "admin", "PATCH": "admin", "PUT": "admin", "DELETE": "admin"}  # API tokens

    @extend_schema(request=None, responses={204: None, **ERRORS}, summary="Remove a team member")
    def delete(self, request: Request, slug: str, team_slug: str, username: str) -> Response:
        team = _team_for_request(request, slug, team_slug, admin=True)
        user = team.group.user_set.filter(username=username).first()
        if user is None:
            raise Http404(f"No member {username!r} in this team.")
        team_member_remove(team=team, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DataPolicyListCreateView(APIView):
    """Row-level data policies (admins): deny by default; each policy grants its subjects some series."""

    scope_required = {"POST": "admin", "PATCH": "admin", "PUT": "admin", "DELETE": "admin"}  # API tokens

    @extend_schema(responses={200: DataPolicySerializer(many=True), **ERRORS}, summary="List data policies")
    def get(self, request: Request, slug: str) -> Response:
        organization, _ = organization_for_request(request, slug, admin=True)
        return Response([_policy(policy) for policy in data_policy_list(organization=organization)])

    @extend_schema(
        request=DataPolicyWriteSerializer, responses={201: DataPolicySerializer, **ERRORS}, summary="Create a policy"
    )
    def post(self, request: Request, slug: str) -> Response:
        organization, _ = organization_for_request(request, slug, admin=True)
        serializer = DataPolicyWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = data_policy_create(organization=organization, **serializer.validated_data)
        return Response(_policy(policy), status=status.HTTP_201_CREATED)


class DataPolicyDetailView(APIView):
    """One data policy (admins): change or delete it; the change applies to queries and live feeds at once."""

    scope_required = {"POST": "admin", "PATCH": "admin", "PUT": "admin", "DELETE": "admin"}  # API tokens

    def _policy(self, request: Request, slug: str, policy_id: int) -> DataPolicy:
        organization, _ = organization_for_request(request, slug, admin=True)
        policy = data_policy_get(organization=organization, policy_id=policy_id)
        if policy is None:
            raise Http404(f"No policy {policy_id} in this organisation.")
        return policy

    @extend_schema(responses={200: DataPolicySerializer, **ERRORS}, summary="Get a policy")
    def get(self, request: Request, slug: str, policy_id: int) -> Response:
        return Response(_policy(self._policy(request, slug, policy_id)))

    @extend_schema(
        request=DataPolicyUpdateSerializer, responses={200: DataPolicySerializer, **ERRORS}, summary="Change a policy"
    )
    def patch(self, request: Request, slug: str, policy_id: int) -> Response:
        policy = self._policy(request, slug, policy_id)
        serializer = DataPolicyUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = data_policy_update(policy=policy, **serializer.validated_data)
        return Response(_policy(data_policy_get(organization=policy.organization, policy_id=policy.pk)))

    @extend_schema(request=None, responses={204: None, **ERRORS}, summary="Delete a policy")
    def delete(self, request: Request, slug: str, policy_id: int) -> Response:
        data_policy_delete(policy=self._policy(request, slug, policy_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
