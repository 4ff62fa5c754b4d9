"""Dashboard pages: the list and one dashboard. The pages are shells; their scripts read and write the REST API."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from apps.access.models import Organization
from apps.access.selectors import organization_ids_for_user
from apps.dashboards.models import PanelType
from apps.dashboards.selectors import EDITOR_ROLES, dashboard_get_for_user

API_URL = "/api/v1/dashboards/"


def _organizations_for_new(user) -> list[Organization]:
    """Organisations where the user may create dashboards."""
    organizations = Organization.objects.order_by("name")
    if not user.is_superuser:
        organizations = organizations.filter(pk__in=organization_ids_for_user(user=user, roles=EDITOR_ROLES))
    return list(organizations)


@login_required
def dashboard_list(request: HttpRequest) -> HttpResponse:
    """Dashboards to search and open, with "New dashboard" and import for editors."""
    context = {
        "api_url": API_URL,
        "list_url": reverse("dashboard-list"),
        "organizations": _organizations_for_new(request.user),
        "q": request.GET.get("q", ""),
        "tag": request.GET.get("tag", ""),
        "folder": request.GET.get("folder", ""),
    }
    return render(request, "dashboards/list.html", context)


@login_required
def dashboard_detail(request: HttpRequest, uid: str) -> HttpResponse:
    """One dashboard, viewed live or edited in the drag-and-drop builder (404 unless the user may see it)."""
    dashboard = dashboard_get_for_user(user=request.user, uid=uid)
    if dashboard is None:
        raise Http404("No such dashboard, or you cannot see it.")
    from apps.dashboards.api import dashboard_detail_data

    detail = dashboard_detail_data(user=request.user, dashboard=dashboard)
    context = {
        "uid": dashboard.uid,
        "title": dashboard.title,
        # The API's answer, embedded: the page draws its panels without first asking for the document.
        "detail": detail,
        "can_edit": detail["can_edit"],
        "api_url": API_URL,
        "list_url": reverse("dashboard-list"),
        "panel_types": PanelType.choices,
        "default_width": 6,
        "source_organization": _source_organization(request.user, dashboard),
    }
    return render(request, "dashboards/detail.html", context)


def _source_organization(user, dashboard) -> str:
    """The organisation the page names panels' bare source slugs in, for a viewer who may see sources of several
    (slugs are unique per organisation only): the dashboard's. Empty otherwise: the slug alone names one source."""
    if user.is_superuser or len(organization_ids_for_user(user=user)) > 1:
        return dashboard.organization.slug
    return ""
