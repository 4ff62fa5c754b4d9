"""The request being answered, for audit events recorded deep inside services (source address, user agent).

AuditRequestMiddleware sets it for every HTTP request; asgiref copies context variables into the thread a
sync view runs in, so a service called by any view sees it without every signature carrying `request`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

current_request: ContextVar[HttpRequest | None] = ContextVar("audit_current_request", default=None)


class AuditRequestMiddleware:
    """Make the current request known to audit_record; after an admin POST, audit the admin's log entries."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = current_request.set(request)
        try:
            admin_mark = _admin_log_mark(request)
            response = self.get_response(request)
            if admin_mark is not None:
                from apps.audit.services import audit_admin_log_entries_record

                audit_admin_log_entries_record(request=request, after_id=admin_mark)
            return response
        finally:
            current_request.reset(token)


def _admin_log_mark(request: HttpRequest) -> int | None:
    """For a staff member's POST to the admin, the newest LogEntry id before the request (None otherwise).

    Admin actions are copied from Django's LogEntry rows the request wrote rather than from post_save: the
    admin writes several entries with bulk_create (a bulk delete), which sends no signal.
    """
    if request.method != "POST" or not request.path.startswith("/admin/"):
        return None
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return None
    from django.contrib.admin.models import LogEntry

    latest = LogEntry.objects.order_by("-id").values_list("id", flat=True).first()
    return latest or 0
