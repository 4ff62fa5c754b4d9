"""Refusals that name one input: the exception services raise and the JSON body every API answers with."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response


class FieldError(ValueError):
    """A change was refused because of one input: `field` names it, `status` is the HTTP status to answer with."""

    def __init__(self, field: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status


def field_error_response(field: str, message: str, status: int, **extra: Any) -> Response:
    """{"detail": "<field>: <message>", "field": <field>, ...extra} with `status`."""
    return Response({"detail": f"{field}: {message}", "field": field, **extra}, status=status)
