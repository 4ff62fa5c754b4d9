"""API paths answer with or without their trailing slash.

The API's routes are spelled both ways (`/api/v1/query`, `/api/v1/reports/`), and clients write either. Django's
APPEND_SLASH answers a missing slash with a redirect, which a client follows by sending a POST again as a GET (so
`POST /api/v1/reports` listed the reports instead of creating one), and under DEBUG it raises instead (a 500). Here a
path under /api/ that does not resolve, but does with the slash added or removed, is served as that path, in place:
the same view, method and body, and no redirect.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import is_valid_path

API_PREFIX = "/api/"


class ApiTrailingSlashMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(API_PREFIX) and path != API_PREFIX:
            urlconf = getattr(request, "urlconf", None)
            if not is_valid_path(path, urlconf):
                twin = path[:-1] if path.endswith("/") else f"{path}/"
                if is_valid_path(twin, urlconf):
                    request.path_info = twin
                    request.path = f"{request.META.get('SCRIPT_NAME', '').rstrip('/')}{twin}"
        return self.get_response(request)
