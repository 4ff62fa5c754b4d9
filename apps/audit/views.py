"""The audit-log page for organisation admins."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.audit.selectors import audit_event_list, organization_for_admin
from apps.audit.serializers import AuditFilterSerializer

PAGE_SIZE = 100


@login_required
@require_GET
def audit_log_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The organisation's audit log with filters, a page at a time, and a link to the same events as CSV."""
    organization = organization_for_admin(user=request.user, slug=slug)
    raw = {key: value for key, value in request.GET.items() if value and key != "page"}
    params = AuditFilterSerializer(data=raw)
    errors = {} if params.is_valid() else params.errors
    events = audit_event_list(organization=organization, filters=params.filters() if not errors else None)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "audit/audit_log.html",
        {
            "organization": organization,
            "page": page,
            "filters": raw,
            "errors": errors,
            "query": urlencode(raw),
        },
    )
