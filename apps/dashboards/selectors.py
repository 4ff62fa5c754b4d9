"""Reads for dashboards: lists and look-ups scoped to what a user may see, permissions, and the export document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet

from apps.access.models import MembershipRole
from apps.access.selectors import organization_ids_for_user
from apps.access.sharing import EDIT, object_share_level
from apps.dashboards.documents import SCHEMA_VERSION
from apps.dashboards.models import Annotation, Dashboard, DashboardVersion

EDITOR_ROLES = (MembershipRole.ADMIN, MembershipRole.EDITOR)


def dashboard_list_for_user(
    *, user: AbstractBaseUser, q: str | None = None, tag: str | None = None, folder: str | None = None
) -> QuerySet[Dashboard]:
    """Dashboards of the user's organisations (every one for superusers), by title; optionally filtered."""
    dashboards = (
        Dashboard.objects.select_related("organization", "owner")
        .annotate(panel_count=Count("panels"))
        .order_by("title", "id")
    )
    if not user.is_superuser:
        dashboards = dashboards.filter(organization_id__in=organization_ids_for_user(user=user))
    if q:
        dashboards = dashboards.filter(title__icontains=q.strip())
    if tag:
        dashboards = dashboards.filter(tags__contains=[tag.strip()])
    if folder is not None:
        dashboards = dashboards.filter(folder=folder.strip())
    return dashboards


def dashboard_get_for_user(*, user: AbstractBaseUser, uid: str) -> Dashboard | None:
    """The dashboard with this uid if the user may see it, else None."""
    dashboards = Dashboard.objects.select_related("organization", "owner").filter(uid=uid)
    if not user.is_superuser:
        dashboards = dashboards.filter(organization_id__in=organization_ids_for_user(user=user))
    return dashboards.first()


def dashboard_can_manage(*, user: AbstractBaseUser, dashboard: Dashboard) -> bool:
    """Whether the user may change, delete and share the dashboard by their role (organisation admin or editor, or
    superuser)."""
    if user.is_superuser:
        return True
    return dashboard.organization_id in organization_ids_for_user(user=user, roles=EDITOR_ROLES)


def dashboard_can_edit(*, user: AbstractBaseUser, dashboard: Dashboard) -> bool:
    """Whether the user may change the dashboard: by their role, or because it was shared with them (or a team of
    theirs) to edit. A share counts only while they are a member of its organisation."""
    if dashboard_can_manage(user=user, dashboard=dashboard):
        return True
    if dashboard.organization_id not in organization_ids_for_user(user=user):
        return False
    return object_share_level(user=user, obj=dashboard) == EDIT


def dashboard_document(*, dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard as a document (the export format of `apps.dashboards.documents`)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "title": dashboard.title,
        "folder": dashboard.folder,
        "tags": list(dashboard.tags),
        "variables": list(dashboard.variables),
        "time_range": dict(dashboard.time_range),
        "refresh": dashboard.refresh,
        "panels": [
            {
                "key": panel.key,
                "title": panel.title,
                "type": panel.type,
                "queries": panel.queries,
                "options": panel.options,
                "grid": panel.grid,
            }
            for panel in dashboard.panels.order_by("position", "id")
        ],
    }


def dashboard_version_list(*, dashboard: Dashboard) -> QuerySet[DashboardVersion]:
    """The saved versions of a dashboard, newest first."""
    return dashboard.versions.select_related("created_by").order_by("-version")


def dashboard_version_get(*, dashboard: Dashboard, version: int) -> DashboardVersion | None:
    """One saved version of a dashboard, or None."""
    return dashboard.versions.select_related("created_by").filter(version=version).first()


def annotation_list(
    *,
    dashboard: Dashboard,
    start: datetime | None = None,
    end: datetime | None = None,
    panel_key: str | None = None,
    kind: str | None = None,
    tags: list[str] | None = None,
) -> QuerySet[Annotation]:
    """A dashboard's annotations that overlap [start, end], oldest first.

    With `panel_key`, those of that panel plus the dashboard-wide ones (empty panel key); with `tags`, those
    carrying every one of them.
    """
    annotations = dashboard.annotations.select_related("created_by").order_by("time", "id")
    if end is not None:
        annotations = annotations.filter(time__lte=end)
    if start is not None:
        # An instant overlaps when it is at or after start; a range when it ends at or after start.
        annotations = annotations.filter(Q(time_end__isnull=True, time__gte=start) | Q(time_end__gte=start))
    if panel_key:
        annotations = annotations.filter(Q(panel_key=panel_key) | Q(panel_key=""))
    if kind:
        annotations = annotations.filter(kind=kind)
    if tags:
        annotations = annotations.filter(tags__contains=list(tags))
    return annotations


def annotation_get(*, dashboard: Dashboard, annotation_id: int) -> Annotation | None:
    """One annotation of the dashboard, or None."""
    return dashboard.annotations.select_related("created_by").filter(pk=annotation_id).first()
