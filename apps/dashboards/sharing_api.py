"""Sharing a dashboard with members and teams of its organisation (apps/access/sharing.py does the work)."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework.request import Request

from apps.access.sharing_api import ObjectShareDetailView, ObjectShareListView
from apps.dashboards.models import Dashboard
from apps.dashboards.selectors import dashboard_can_manage, dashboard_get_for_user


class _DashboardShares:
    def shared_object(self, request: Request, **kwargs: Any) -> Dashboard:
        dashboard = dashboard_get_for_user(user=request.user, uid=kwargs["uid"])
        if dashboard is None:
            raise Http404(f"No dashboard {kwargs['uid']!r} that you can see.")
        return dashboard

    def may_manage_shares(self, request: Request, obj: Dashboard) -> bool:
        return dashboard_can_manage(user=request.user, dashboard=obj)


class DashboardShareListView(_DashboardShares, ObjectShareListView):
    """Who can open the dashboard and why; its organisation's admins and editors share it as view or edit."""


class DashboardShareDetailView(_DashboardShares, ObjectShareDetailView):
    """Take back a share of the dashboard."""
