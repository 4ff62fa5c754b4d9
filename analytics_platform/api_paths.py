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
        twin = api_path_twin(request.path_info, getattr(request, "urlconf", None))
        if twin is not None:
            request.path_info = twin
            request.path = f"{request.META.get('SCRIPT_NAME', '').rstrip('/')}{twin}"
        return self.get_response(request)


def api_path_twin(path: str, urlconf: str | None = None) -> str | None:
    """The path to serve instead of `path`: its twin with the trailing slash added or removed, when `path` is under
    /api/, does not resolve, and its twin does; else None (serve `path` as it is)."""
    if not path.startswith(API_PREFIX) or path == API_PREFIX or is_valid_path(path, urlconf):
        return None
    twin = path[:-1] if path.endswith("/") else f"{path}/"
    return twin if is_valid_path(twin, urlconf) else None
