"""Paginated lists: `limit` and `offset` as documented, refused with 400 (naming the parameter) when they are not;
and the links of HTML pages' pages (templates/_pagination.html)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000


def _whole_number(request: Request, name: str, *, default: int, minimum: int, maximum: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise ValidationError({name: [f"must be a whole number from {minimum}."]}, code="invalid")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum:,}" if maximum is not None else f"at least {minimum}"
        raise ValidationError({name: [f"must be {bound}."]}, code="invalid")
    return value


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """DRF's limit/offset pages, except that a limit or offset out of range is refused instead of ignored."""

    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> int:
        return _whole_number(
            request, self.limit_query_param, default=self.default_limit, minimum=1, maximum=self.max_limit
        )

    def get_offset(self, request: Request) -> int:
        return _whole_number(request, self.offset_query_param, default=0, minimum=0, maximum=None)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"Items per page, 1 to {self.max_limit:,} (default {self.default_limit}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_limit},
            },
            {
                "name": self.offset_query_param,
                "required": False,
                "in": "query",
                "description": "How many items to skip.",
                "schema": {"type": "integer", "minimum": 0},
            },
        ]


class WholeNumberQueryField(serializers.IntegerField):
    """An integer query parameter written as digits (DRF's IntegerField also takes "5.0" and " 5")."""

    def to_internal_value(self, data):
        if isinstance(data, str) and not (data.isascii() and data.lstrip("-").isdigit() and data.count("-") <= 1):
            self.fail("invalid")
        return super().to_internal_value(data)


def page_links(page: Any, query: dict[str, str]) -> dict[str, str]:
    """Query strings for the previous and next page, keeping the filters."""
    links = {}
    clean = {key: value for key, value in query.items() if value}
    if page.has_previous():
        links["previous"] = "?" + urlencode({**clean, "page": page.previous_page_number()})
    if page.has_next():
        links["next"] = "?" + urlencode({**clean, "page": page.next_page_number()})
    return links
