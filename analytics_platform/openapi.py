"""The OpenAPI schema's error answers: every operation documents the errors it can give, with the Error component.

drf-spectacular documents what a view declares; the errors every view can give by the way DRF works are added
here, so no operation's schema omits one: 400 when it reads parameters or a body, 401 and 403 when it needs
authentication (403 for reads only where the view needs more than an API token's `read` scope: otherwise only
writes are refused by role, scope or CSRF), 404 when its path names an object, 415 when it reads a body, 429 when
the view is rate-limited (`throttle_scope`). A view that answers in another format on purpose (the
InfluxDB-compatible writes) sets `standard_error_responses = False` and declares its own.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

from analytics_platform.field_errors import ErrorSerializer

ERROR_DESCRIPTIONS = {
    "400": "Invalid request: `field` names the parameter, body field or JSON path at fault.",
    "401": "Not authenticated: no session, or a missing, unknown, expired or revoked API token.",
    "403": "Authenticated but not allowed (a viewer changing something, an API token without the scope this needs, "
    "or a session request without its CSRF token).",
    "404": "No such object, or none that you may see.",
    "415": "The body's Content-Type is not one this operation reads.",
    "429": "Too many requests for this API token or user (API_QUERY_RATE): wait the seconds in Retry-After.",
}
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, adding the error answers every operation can give (see the module docstring)."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None or not getattr(self.view, "standard_error_responses", True):
            return operation
        responses = operation["responses"]
        error = {"$ref": self.resolve_serializer(ErrorSerializer, "response").ref["$ref"]}
        statuses = []
        if operation.get("requestBody") or any(item.get("in") == "query" for item in operation.get("parameters", [])):
            statuses.append("400")
        if "security" in operation:
            statuses.append("401")
            if self.method not in _SAFE_METHODS or getattr(self.view, "scope_required", None) not in (None, "read"):
                statuses.append("403")
        if "{" in self.path:
            statuses.append("404")
        if operation.get("requestBody"):
            statuses.append("415")
        if getattr(self.view, "throttle_scope", None):
            statuses.append("429")
        for status in statuses:
            responses.setdefault(
                status, {"description": ERROR_DESCRIPTIONS[status], "content": {"application/json": {"schema": error}}}
            )
        operation["responses"] = dict(sorted(responses.items()))
        return operation
