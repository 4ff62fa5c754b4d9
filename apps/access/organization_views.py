"""Pages for organisations: the switcher, and members, teams and data policies (admins change them, members read
the members and teams). Each page calls the same services as the API."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from apps.access.models import MembershipRole, Organization
from apps.access.selectors import (
    data_policy_get,
    data_policy_list,
    member_get,
    member_list,
    organization_for_member,
    team_get,
    team_list,
    team_slugs_for_user,
)
from apps.access.services import (
    AccessError,
    data_policy_create,
    data_policy_delete,
    data_policy_update,
    member_add,
    member_remove,
    member_role_set,
    team_create,
    team_delete,
    team_member_add,
    team_member_remove,
)

ACTIVE_ORGANIZATION_SESSION_KEY = "active_organization"
ROLE_CHOICES = MembershipRole.choices


def _organization(request: HttpRequest, slug: str, *, admin: bool = False) -> tuple[Organization, str]:
    found = organization_for_member(user=request.user, slug=slug)
    if found is None:
        raise Http404("No such organisation, or you are not a member.")
    if admin and found[1] != MembershipRole.ADMIN:
        raise PermissionDenied("Only organisation admins may do this.")
    return found


def _refused(request: HttpRequest, error: AccessError) -> None:
    messages.error(request, f"{error.field}: {error.message}")


@login_required
@require_POST
def organization_switch(request: HttpRequest) -> HttpResponse:
    """Make one of your organisations the active one (the pages show its sources, members, teams and policies)."""
    organization, _ = _organization(request, request.POST.get("organization", ""))
    request.session[ACTIVE_ORGANIZATION_SESSION_KEY] = organization.slug
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "home"
    return redirect(next_url)


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=MembershipRole.VIEWER)


@login_required
@require_http_methods(["GET", "POST"])
def organization_members(request: HttpRequest, slug: str) -> HttpResponse:
    """Members and their roles and teams; admins add members, change roles and remove members."""
    organization, role = _organization(request, slug)
    form = MemberAddForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        _organization(request, slug, admin=True)
        action = request.POST.get("action", "add")
        try:
            if action == "add" and form.is_valid():
                member_add(organization=organization, **form.cleaned_data)
                messages.success(request, f"{form.cleaned_data['username']} added.")
                return redirect("organization-members", slug=slug)
            if action in ("role", "remove"):
                membership = member_get(organization=organization, username=request.POST.get("username", ""))
                if membership is None:
                    raise Http404("No such member.")
                if action == "role":
                    member_role_set(membership=membership, role=request.POST.get("role", ""))
                    messages.success(request, f"{membership.user.get_username()} is now {membership.role}.")
                else:
                    member_remove(membership=membership)
                    messages.success(request, f"{membership.user.get_username()} removed.")
                return redirect("organization-members", slug=slug)
        except AccessError as error:
            _refused(request, error)
    members = [
        (membership, team_slugs_for_user(user=membership.user, organization=organization))
        for membership in member_list(organization=organization)
    ]
    return render(
        request,
        "access/organization_members.html",
        {"organization": organization, "role": role, "members": members, "form": form, "roles": ROLE_CHOICES},
    )


class TeamForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=100)


@login_required
@require_http_methods(["GET", "POST"])
def organization_teams(request: HttpRequest, slug: str) -> HttpResponse:
    """Teams and their members; admins create and delete teams and change their members."""
    organization, role = _organization(request, slug)
    form = TeamForm(request.POST if request.method == "POST" and request.POST.get("action") == "create" else None)
    if request.method == "POST":
        _organization(request, slug, admin=True)
        action = request.POST.get("action")
        try:
            if action == "create" and form.is_valid():
                team_create(organization=organization, **form.cleaned_data)
                messages.success(request, f"Team {form.cleaned_data['name']} created.")
                return redirect("organization-teams", slug=slug)
            if action in ("add", "remove", "delete"):
                team = team_get(organization=organization, slug=request.POST.get("team", ""))
                if team is None:
                    raise Http404("No such team.")
                username = request.POST.get("username", "")
                if action == "add":
                    team_member_add(team=team, username=username)
                elif action == "remove":
                    user = team.group.user_set.filter(username=username).first()
                    if user is None:
                        raise Http404("No such team member.")
                    team_member_remove(team=team, user=user)
                else:
                    team_delete(team=team)
                messages.success(request, "Team updated." if action != "delete" else f"Team {team.name} deleted.")
                return redirect("organization-teams", slug=slug)
        except AccessError as error:
            _refused(request, error)
    return render(
        request,
        "access/organization_teams.html",
        {"organization": organization, "role": role, "teams": team_list(organization=organization), "form": form},
    )


class DataPolicyForm(forms.Form):
    name = forms.CharField(max_length=200)
    source = forms.CharField(max_length=100, required=False, help_text="A source slug; empty: every source.")
    all_members = forms.BooleanField(required=False, label="Every member")
    users = forms.CharField(required=False, help_text="Usernames, separated by commas.")
    teams = forms.CharField(required=False, help_text="Team slugs, separated by commas.")
    labels = forms.CharField(
        required=False,
        help_text="One condition a line, key=value1,value2 (values OR-ed, lines AND-ed), e.g. facility=f1,f2.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    metrics = forms.CharField(required=False, help_text="Metric names, separated by commas; empty: every metric.")

    @staticmethod
    def _names(text: str) -> list[str]:
        return [name.strip() for name in text.split(",") if name.strip()]

    def clean_labels(self) -> dict[str, list[str]]:
        labels: dict[str, list[str]] = {}
        for line in self.cleaned_data["labels"].splitlines():
            if not line.strip():
                continue
            key, separator, values = line.partition("=")
            if not separator or not key.strip() or not self._names(values):
                raise forms.ValidationError(f"Write each condition as key=value1,value2 (got {line.strip()!r}).")
            labels[key.strip()] = self._names(values)
        return labels

    def policy_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "source": data["source"].strip() or None,
            "all_members": data["all_members"],
            "users": self._names(data["users"]),
            "teams": self._names(data["teams"]),
            "labels": data["labels"],
            "metrics": self._names(data["metrics"]) or None,
        }

    @classmethod
    def initial_for(cls, policy) -> dict:
        return {
            "name": policy.name,
            "source": policy.source.slug if policy.source_id else "",
            "all_members": policy.all_members,
            "users": ", ".join(sorted(user.get_username() for user in policy.users.all())),
            "teams": ", ".join(sorted(team.slug for team in policy.teams.all())),
            "labels": "\n".join(f"{key}={','.join(values)}" for key, values in sorted(policy.labels.items())),
            "metrics": ", ".join(policy.metrics or []),
        }


@login_required
@require_http_methods(["GET", "POST"])
def organization_policies(request: HttpRequest, slug: str) -> HttpResponse:
    """Row-level data policies (admins only): create, edit (?edit=<id>) and delete."""
    organization, role = _organization(request, slug, admin=True)
    editing = None
    if request.GET.get("edit", "").isdigit():
        editing = data_policy_get(organization=organization, policy_id=int(request.GET["edit"]))
    if request.method == "POST" and request.POST.get("action") == "delete":
        policy = data_policy_get(organization=organization, policy_id=int(request.POST.get("policy", "0") or 0))
        if policy is None:
            raise Http404("No such policy.")
        data_policy_delete(policy=policy)
        messages.success(request, f"Policy {policy.name} deleted.")
        return redirect("organization-policies", slug=slug)
    if request.method == "POST":
        form = DataPolicyForm(request.POST)
        if form.is_valid():
            try:
                if editing is not None:
                    data_policy_update(policy=editing, **form.policy_fields())
                    messages.success(request, f"Policy {form.cleaned_data['name']} saved.")
                else:
                    data_policy_create(organization=organization, **form.policy_fields())
                    messages.success(request, f"Policy {form.cleaned_data['name']} created.")
                return redirect("organization-policies", slug=slug)
            except AccessError as error:
                form.add_error(None, f"{error.field}: {error.message}")
    else:
        form = DataPolicyForm(initial=DataPolicyForm.initial_for(editing) if editing else None)
    return render(
        request,
        "access/organization_policies.html",
        {
            "organization": organization,
            "role": role,
            "policies": data_policy_list(organization=organization),
            "form": form,
            "editing": editing,
        },
    )
