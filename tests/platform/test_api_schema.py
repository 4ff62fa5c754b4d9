"""The OpenAPI schema documents every operation's errors, with the one error component."""

from __future__ import annotations

import pytest

ERROR = "#/components/schemas/Error"
INFLUX_PATHS = ("/write", "/api/v2/write", "/ping", "/api/v2/ping")


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield path, method.upper(), operation


def _ref(response: dict) -> str | None:
    return response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")


def test_every_api_error_answer_uses_the_error_component(schema):
    for path, method, operation in _operations(schema):
        if path in INFLUX_PATHS or path.endswith("/ingest"):
            continue
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                assert _ref(response) == ERROR, (method, path, status, response)


def test_every_operation_documents_the_errors_it_can_give(schema):
    for path, method, operation in _operations(schema):
        if path in INFLUX_PATHS:
            continue
        statuses = set(operation["responses"])
        if "security" in operation:
            assert "401" in statuses, (method, path)
            if method != "GET":
                assert "403" in statuses, (method, path)
        if "{" in path:
            assert "404" in statuses, (method, path)
        reads_input = "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", []))
        if reads_input:
            assert "400" in statuses, (method, path)
        if "requestBody" in operation:
            assert "415" in statuses, (method, path)


def test_the_error_component_is_the_documented_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"detail", "field", "code"}
    assert error["properties"]["field"]["nullable"] is True


def test_influx_endpoints_document_influxdbs_own_formats(schema):
    v2 = schema["paths"]["/api/v2/write"]["post"]["responses"]
    v1 = schema["paths"]["/write"]["post"]["responses"]
    assert _ref(v2["400"]) == "#/components/schemas/InfluxV2Error"
    assert _ref(v1["400"]) == "#/components/schemas/InfluxV1Error"
    assert "InfluxDB" in schema["paths"]["/write"]["post"]["description"]


def test_request_bodies_are_json_except_file_uploads(schema):
    for path, method, operation in _operations(schema):
        if "requestBody" not in operation:
            continue
        types = set(operation["requestBody"]["content"])
        assert "application/x-www-form-urlencoded" not in types, (method, path)
        if "multipart/form-data" in types:
            assert path.endswith(("/uploads/", "/import")), (method, path)
