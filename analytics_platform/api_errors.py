"""Every error under /api/ in the one shape of field_errors.py: DRF's exceptions, database refusals, Django's pages.

- `api_exception_handler` (DRF's EXCEPTION_HANDLER): validation errors name their field (nested ones by JSON path,
  e.g. document.panels[1].grid), authentication, permission, not found, method, media type, parse and throttling
  errors keep DRF's status, headers and code. A value the database refuses (DataError: a NUL character, a number
  out of range; or text psycopg cannot encode, a lone surrogate) is the client's: 400. Other database errors are
  the server's: 503 when the database cannot be reached, 500 otherwise. Either way the database's own text,
  which may quote SQL, is logged and never sent.
- `ApiErrorsMiddleware`: Django's own error pages for paths under /api/ (an unknown URL, a request Django could not
  read, a server error, DEBUG's technical pages included) become the same JSON, with the same status.
- `error_view_404` and `error_view_500` (urls.py's handler404/handler500): the same for anything answered outside
  the middleware (the ingest write lane), when DEBUG is off.

The InfluxDB-compatible endpoints (/write, /api/v2/write) answer their refusals in InfluxDB's format on purpose, so
existing agents and client libraries read them; apps/ingestion/views.py renders those itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, DataError, IntegrityError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import set_rollback

from analytics_platform.field_errors import CODE_BY_STATUS, FieldError, error_body

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
INVALID_VALUE_MESSAGE = (
    "a value in the request cannot be stored or compared (for example text with a NUL character or a lone "
    "surrogate, or a number out of range); nothing was changed."
)
_DATABASE_ERRORS = {
    # exception class: (status, code, message); the first that matches wins.
    DataError: (400, "invalid_value", INVALID_VALUE_MESSAGE),
    IntegrityError: (409, "conflict", "the change conflicts with another one made at the same time; retry it."),
    OperationalError: (503, "unavailable", "the database is unavailable; nothing was changed. Retry shortly."),
    DatabaseError: (500, "server_error", "the server failed on the database; the error is logged."),
}
_PAGE_MESSAGES = {
    400: "the request could not be read.",
    403: "the request was refused.",
    404: "no such API endpoint or object; the endpoints are listed at /api/docs/.",
    413: "the request is too large.",
    500: "the server failed to answer; the error is logged. Retry, or report it if it persists.",
}


def _flattened(detail: Any, path: str = "") -> list[tuple[str | None, str, str]]:
    """(field path or None, message, code) of each message in a DRF error detail, in order."""
    if isinstance(detail, dict):
        items = []
        for key, value in detail.items():
            if key in ("non_field_errors", "detail"):
                items += _flattened(value, path)
            elif isinstance(key, int):  # a ListField's or DictField's item
                items += _flattened(value, f"{path}[{key}]")
            else:
                items += _flattened(value, f"{path}.{key}" if path else str(key))
        return items
    if isinstance(detail, list):
        items = []
        for index, value in enumerate(detail):
            # A list of messages belongs to the path; a list of objects (many=True, ListField) indexes into it.
            items += _flattened(value, f"{path}[{index}]" if isinstance(value, dict | list) else path)
        return items
    return [(path or None, str(detail), getattr(detail, "code", None) or "invalid")]


def _validation_body(exc: exceptions.ValidationError) -> dict[str, Any]:
    messages = _flattened(exc.detail) or [(None, "invalid request.", "invalid")]
    field, message, code = messages[0]
    extra = {}
    if len(messages) > 1:
        extra["errors"] = [{"field": name, "message": text, "code": kind} for name, text, kind in messages]
    return error_body(message=message, field=field, code=code, **extra)


def _database_error(exc: DatabaseError, context: dict) -> Response:
    view = context.get("view")
    where = type(view).__name__ if view is not None else "?"
    for kind, (status, code, message) in _DATABASE_ERRORS.items():
        if isinstance(exc, kind):
            if status >= 500:
                logger.error("database error in %s", where, exc_info=exc)
            else:
                logger.warning("database refused a request's value in %s: %s", where, exc)
            set_rollback()
            headers = {"Retry-After": "5"} if status == 503 else {}
            return Response(error_body(message=message, field=None, code=code), status=status, headers=headers)
    raise AssertionError("DatabaseError matches the last entry")  # pragma: no cover


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: the error shape for every exception a view raises; None lets Django answer 500."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, DjangoValidationError):  # a model's full_clean() in a service
        exc = exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, FieldError):
        set_rollback()
        return Response(error_body(message=exc.message, field=exc.field, code=exc.code), status=exc.status)
    if isinstance(exc, DatabaseError):
        return _database_error(exc, context)
    if isinstance(exc, UnicodeEncodeError):  # psycopg's answer to a lone surrogate sent as a query parameter
        logger.warning("text the database cannot hold reached it: %s", exc)
        set_rollback()
        return Response(error_body(message=INVALID_VALUE_MESSAGE, field=None, code="invalid_value"), status=400)
    if not isinstance(exc, exceptions.APIException):
        return None
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
    if isinstance(exc, exceptions.ValidationError):
        body = _validation_body(exc)
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else CODE_BY_STATUS.get(exc.status_code, "error")
        field = "body" if isinstance(exc, exceptions.ParseError) else None
        body = error_body(message=str(exc.detail), field=field, code=code)
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)


def api_error_json(request: HttpRequest, status: int) -> JsonResponse:
    """The error body for an error Django answered itself (no view, or a view's unhandled exception)."""
    message = _PAGE_MESSAGES.get(status, "the request failed.")
    if status == 404:
        message = f"{request.path}: {message}"
    body = error_body(message=message, field=None, code=CODE_BY_STATUS.get(status, "error"))
    return JsonResponse(body, status=status)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


class ApiErrorsMiddleware:
    """Django's error pages (HTML, or DEBUG's technical pages) for paths under /api/ become the JSON error shape."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not _is_api(request)
            or response.streaming
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        replacement = api_error_json(request, response.status_code)
        for header in ("Allow", "Retry-After", "WWW-Authenticate", "Vary"):
            if header in response:
                replacement[header] = response[header]
        return replacement


def error_view_404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON under /api/, Django's page elsewhere."""
    if _is_api(request):
        return api_error_json(request, 404)
    return defaults.page_not_found(request, exception)


def error_view_500(request: HttpRequest) -> HttpResponse:
    """handler500: JSON under /api/, Django's page elsewhere."""
    if _is_api(request):
        return api_error_json(request, 500)
    return defaults.server_error(request)
