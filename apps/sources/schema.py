"""OpenAPI: the `organization` query parameter of every `/api/v1/sources/<slug>/...` operation.

Slugs are unique per organisation, so each of these views accepts `?organization=<slug>` to pick a source when the
caller sees the slug in several (apps/sources/api.py `source_for_request`); declared once here rather than on
every view. Ingest is left out: there the write key names the source.
"""

from __future__ import annotations

from typing import Any

from analytics_platform.openapi import ERROR_DESCRIPTIONS

SOURCE_PATH_PREFIX = "/api/v1/sources/{slug}"
WRITE_KEY_PATHS = ("/api/v1/sources/{slug}/ingest",)
ORGANIZATION_PARAMETER = {
    "in": "query",
    "name": "organization",
    "required": False,
    "schema": {"type": "string"},
    "description": (
        "The organisation's slug: needed only when you see sources with this slug in several organisations "
        "(400 naming `organization` otherwise)."
    ),
}


def source_organization_parameter(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add `organization` to the source operations that resolve a slug."""
    for path, operations in result.get("paths", {}).items():
        if not path.startswith(SOURCE_PATH_PREFIX) or path in WRITE_KEY_PATHS:
            continue
        for method, operation in operations.items():
            if method in ("get", "post", "put", "patch", "delete") and isinstance(operation, dict):
                parameters = operation.setdefault("parameters", [])
                if not any(parameter.get("name") == "organization" for parameter in parameters):
                    parameters.append(dict(ORGANIZATION_PARAMETER))
                responses = operation.setdefault("responses", {})
                responses.setdefault("400", {
                    "description": ERROR_DESCRIPTIONS["400"],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                })  # fmt: skip
                operation["responses"] = dict(sorted(responses.items()))
    return result
