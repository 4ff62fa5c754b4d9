"""The dashboard's access page: who can open it and why, and (for its organisation's admins and editors) sharing."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.access.services import AccessError
from apps.access.sharing import LEVELS, object_access_list, object_share, object_share_list, object_unshare
from apps.dashboards.selectors import dashboard_can_manage, dashboard_get_for_user


@login_required
@require_http_methods(["GET", "POST"])
def dashboard_access(request: HttpRequest, uid: str) -> HttpResponse:
    """Everyone who can open the dashboard, their level and every reason; managers share and unshare here."""
    dashboard = dashboard_get_for_user(user=request.user, uid=uid)
    if dashboard is None:
        raise Http404("No such dashboard, or you cannot see it.")
    can_manage = dashboard_can_manage(user=request.user, dashboard=dashboard)
    if request.method == "POST":
        if not can_manage:
            raise Http404("Only organisation admins and editors may share this dashboard.")
        kind, name = request.POST.get("kind", "user"), request.POST.get("name", "").strip()
        subject = {"username": name} if kind == "user" else {"team": name}
        try:
            if request.POST.get("action") == "unshare":
                object_unshare(obj=dashboard, **subject)
                messages.success(request, f"No longer shared with {kind} {name}.")
            else:
                share = object_share(obj=dashboard, level=request.POST.get("level", ""), **subject)
                messages.success(request, f"Shared with {share.kind} {share.name} ({share.level}).")
        except AccessError as error:
            messages.error(request, f"{error.field}: {error.message}")
        return redirect("dashboard-access", uid=uid)
    return render(
        request,
        "dashboards/access.html",
        {
            "dashboard": dashboard,
            "access": object_access_list(obj=dashboard),
            "shares": object_share_list(obj=dashboard),
            "can_manage": can_manage,
            "levels": LEVELS,
        },
    )
