"""The API's one error shape: the exception services raise, the JSON body every error answers with, its schema.

Every error under /api/ (except the InfluxDB-compatible write endpoints, which keep InfluxDB's format) is
{"detail": "<field>: <message>", "field": "<field>" or null, "code": "<stable code>"}, plus keys some errors add
(a schema change's `reasons`, a refused field's other `errors`). api_errors.py renders DRF's and Django's errors
in it; views answer their own refusals with field_error_response.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.response import Response

# The code an error carries when nothing more precise is known, by HTTP status. Codes are stable: clients branch
# on them, not on the wording of `detail`.
CODE_BY_STATUS = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "throttled",
    500: "server_error",
    503: "unavailable",
}


class FieldError(ValueError):
    """A change was refused because of one input: `field` names it, `status` is the HTTP status to answer with."""

    def __init__(self, field: str, message: str, *, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status
        self.code = code or CODE_BY_STATUS.get(status, "invalid")


def error_body(*, message: str, field: str | None, code: str, **extra: Any) -> dict[str, Any]:
    """{"detail": "<field>: <message>" (or the message alone), "field": <field or None>, "code": <code>, ...extra}."""
    detail = f"{field}: {message}" if field else message
    return {"detail": detail, "field": field, "code": code, **extra}


def field_error_response(field: str, message: str, status: int, *, code: str | None = None, **extra: Any) -> Response:
    """The error body for a refused `field`, with `status` (the code defaults to the status's)."""
    return Response(
        error_body(message=message, field=field, code=code or CODE_BY_STATUS.get(status, "invalid"), **extra),
        status=status,
    )


class FieldMessageSerializer(serializers.Serializer):
    """One refused field, when a request had several."""

    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()
    code = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """An error answer: what went wrong, which input (if one), and a stable code to branch on."""

    detail = serializers.CharField(help_text='"<field>: <message>", or the message alone when no field is at fault.')
    field = serializers.CharField(
        allow_null=True,
        help_text="The request field, query parameter or JSON path at fault (e.g. panels[2].grid.w), or null.",
    )
    code = serializers.CharField(
        help_text="Stable: invalid, required, not_found, not_authenticated, authentication_failed, "
        "permission_denied, method_not_allowed, unsupported_media_type, parse_error, conflict, too_large, "
        "throttled, invalid_value, ..., and DRF's codes for field validation (e.g. max_length, "
        "null_characters_not_allowed)."
    )
    errors = FieldMessageSerializer(
        many=True, required=False, help_text="Every refused field, when a request had more than one."
    )
    reasons = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Why a schema change is breaking (409 only)."
    )
