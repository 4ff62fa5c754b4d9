"""Sharing a report with members and teams of its organisation (apps/access/sharing.py does the work).

An "edit" share lets a viewer change and send the report; sharing a report never shares data: each recipient's
files still show only what their own policies grant.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from apps.access.sharing_api import ObjectShareDetailView, ObjectShareListView
from apps.reporting.api import report_for_request
from apps.reporting.models import Report
from apps.reporting.selectors import report_can_manage


class _ReportShares:
    def shared_object(self, request: Request, **kwargs: Any) -> Report:
        return report_for_request(request, kwargs["report_id"])

    def may_manage_shares(self, request: Request, obj: Report) -> bool:
        return report_can_manage(user=request.user, report=obj)


class ReportShareListView(_ReportShares, ObjectShareListView):
    """Who can open the report and why; its organisation's admins and editors share it as view or edit."""


class ReportShareDetailView(_ReportShares, ObjectShareDetailView):
    """Take back a share of the report."""
