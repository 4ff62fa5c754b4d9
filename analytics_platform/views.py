"""The home page: what exists on this platform and where to go next."""

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from analytics_platform.health import database_check, redis_check, worker_heartbeat_last
from apps.access.selectors import api_token_list
from apps.sources.selectors import source_list_for_user
from apps.storage.selectors import storage_summary


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """List what exists: the user's tokens, service status, and the platform's areas."""
    tokens = api_token_list(user=request.user)
    context = {
        "token_count": tokens.count(),
        "active_token_count": sum(1 for token in tokens if token.status == "active"),
        "database": database_check(),
        "redis": redis_check(),
        "worker_last_heartbeat": _heartbeat_time(worker_heartbeat_last()),
        # Only the user's organisations' sources, and the series their data policies let them read.
        "sources": source_list_for_user(user=request.user),
        "storage": storage_summary(principal=request.user),
    }
    return render(request, "home.html", context)


def _heartbeat_time(text: str | None) -> datetime | None:
    """The worker's last heartbeat as a time the page formats (it showed the raw ISO text, microseconds and all)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
