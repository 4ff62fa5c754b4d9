"""Template context for every page: the user's organisations and the active one (the organisation switcher)."""

from __future__ import annotations

from django.http import HttpRequest

from apps.access.selectors import organization_list_with_roles


def organizations(request: HttpRequest) -> dict:
    """`user_organizations` [(organisation, role)] and `active_organization` (the session's choice, else the first)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def active():
        from apps.access.organization_views import ACTIVE_ORGANIZATION_SESSION_KEY

        mine = organization_list_with_roles(user=user)
        chosen = request.session.get(ACTIVE_ORGANIZATION_SESSION_KEY)
        for organization, role in mine:
            if organization.slug == chosen:
                return {"organization": organization, "role": role, "all": mine}
        return {"organization": mine[0][0], "role": mine[0][1], "all": mine} if mine else None

    cache: dict = {}

    def lazy():
        if "value" not in cache:
            cache["value"] = active()
        return cache["value"]

    return {"active_organization": lazy}
