"""One error shape under /api/: {"detail", "field", "code"}, in JSON, whatever answered the error."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.conftest import api_client_for
from tests.ingestion.factories import source_with_key

pytestmark = pytest.mark.django_db

SQL_WORDS = ("SELECT", "LINE 1", "storage_", "sources_", "psycopg", "::")


def _shape(response, status: int, *, field: str | None, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["field"] == field
    assert body["code"] == code
    assert body["detail"].startswith(f"{field}: ") if field else body["detail"]
    return body


def test_a_drf_field_error_names_the_field_in_the_documented_shape(user):
    body = _shape(
        api_client_for(user).post("/api/v1/tokens/", {"name": "x", "expires_in_days": 0}),
        400,
        field="expires_in_days",
        code="min_value",
    )
    assert body["detail"] == "expires_in_days: Ensure this value is greater than or equal to 1."


def test_several_field_errors_are_all_listed(editor):
    source_with_key(slug="plant")
    response = api_client_for(editor).patch("/api/v1/sources/plant/", {"max_series": 0, "raw_retention_days": 0})
    body = _shape(response, 400, field="max_series", code="min_value")
    assert [error["field"] for error in body["errors"]] == ["max_series", "raw_retention_days"]


def test_a_body_value_of_another_json_type_is_refused_not_converted(user):
    client = api_client_for(user)
    _shape(client.post("/api/v1/tokens/", {"name": 0}), 400, field="name", code="invalid")
    _shape(client.post("/api/v1/tokens/", {"name": "ok", "expires_in_days": "5"}), 400, field="expires_in_days",
           code="invalid")  # fmt: skip


def test_text_longer_than_documented_is_refused_as_sent_before_trimming(editor):
    source_with_key(slug="plant")
    response = api_client_for(editor).post("/api/v1/sources/plant/keys/", {"name": "\t" + "k" * 100})
    _shape(response, 400, field="name", code="invalid")


def test_unreadable_json_is_a_parse_error_of_the_body(user):
    response = api_client_for(user).generic("POST", "/api/v1/tokens/", "{not json", content_type="application/json")
    _shape(response, 400, field="body", code="parse_error")


def test_a_form_body_is_an_unsupported_media_type(user):
    response = api_client_for(user).post("/api/v1/tokens/", {"name": "x"}, format="multipart")
    _shape(response, 415, field=None, code="unsupported_media_type")


def test_unauthenticated_is_401_json_with_the_challenge():
    response = APIClient().get("/api/v1/me")
    _shape(response, 401, field=None, code="not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    bad_token = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION="Bearer nope")
    _shape(bad_token, 401, field=None, code="authentication_failed")


def test_forbidden_is_403_json(viewer):
    source_with_key(slug="plant")
    _shape(api_client_for(viewer).post("/api/v1/sources/plant/pause"), 403, field=None, code="permission_denied")


def test_not_found_is_404_json_from_a_view_and_from_the_url_resolver(user, settings):
    client = api_client_for(user)
    _shape(client.get("/api/v1/sources/nope/"), 404, field=None, code="not_found")
    for debug in (False, True):  # DEBUG's technical 404 page too
        settings.DEBUG = debug
        body = _shape(client.get("/api/v1/no-such-endpoint"), 404, field=None, code="not_found")
        assert "/api/v1/no-such-endpoint" in body["detail"]
        _shape(client.get("/api/v1/dashboards/not a uid/"), 404, field=None, code="not_found")


def test_method_not_allowed_is_405_json_with_allow(user):
    response = api_client_for(user).delete("/api/v1/me")
    _shape(response, 405, field=None, code="method_not_allowed")
    assert "GET" in response["Allow"]


def test_an_unexpected_failure_is_500_json_without_the_exception_text(user, monkeypatch, settings):
    from apps.access import api

    def broken(self, request):
        raise RuntimeError("secret internals")

    # A stand-in for a bug: no real view fails on purpose.
    monkeypatch.setattr(api.MeView, "get", broken)
    client = api_client_for(user)
    client.raise_request_exception = False
    for debug in (False, True):  # DEBUG's technical 500 page too
        settings.DEBUG = debug
        body = _shape(client.get("/api/v1/me"), 500, field=None, code="server_error")
        assert "secret internals" not in body["detail"]


def test_a_value_the_database_refuses_is_400_without_sql(user, monkeypatch):
    from apps.access import api

    def refusing_list(*, user):
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::int FROM storage_series", ["not a number"])  # a real DataError

    # Forces a database refusal no validated input reaches any more.
    monkeypatch.setattr(api, "api_token_list", refusing_list)
    body = _shape(api_client_for(user).get("/api/v1/tokens/"), 400, field=None, code="invalid_value")
    assert not any(word in body["detail"] for word in SQL_WORDS), body


def test_pagination_parameters_out_of_range_are_refused(user):
    client = api_client_for(user)
    _shape(client.get("/api/v1/tokens/", {"limit": "x"}), 400, field="limit", code="invalid")
    _shape(client.get("/api/v1/tokens/", {"limit": ""}), 400, field="limit", code="invalid")
    _shape(client.get("/api/v1/tokens/", {"limit": 0}), 400, field="limit", code="invalid")
    _shape(client.get("/api/v1/tokens/", {"limit": 1001}), 400, field="limit", code="invalid")
    _shape(client.get("/api/v1/tokens/", {"offset": -1}), 400, field="offset", code="invalid")
    assert client.get("/api/v1/tokens/", {"limit": 1000, "offset": 5}).status_code == 200


def test_the_ingest_endpoint_answers_in_the_shape_and_keeps_its_error_key(db):
    source_with_key(slug="plant")
    response = APIClient().post("/api/v1/sources/plant/ingest", [{"t": 1}], format="json")
    body = _shape(response, 401, field=None, code="unauthorized")
    assert body["error"] == "unauthorized"


def test_influx_endpoints_keep_influxdbs_own_format(db):
    _, key = source_with_key(slug="plant")
    v2 = APIClient().post("/api/v2/write?bucket=other", b"m v=1", content_type="text/plain",
                          HTTP_AUTHORIZATION=f"Token {key}")  # fmt: skip
    assert v2.status_code == 404
    assert set(v2.json()) == {"code", "message"}
    v1 = APIClient().post("/write?db=other", b"m v=1", content_type="text/plain", HTTP_AUTHORIZATION=f"Token {key}")
    assert v1.status_code == 404
    assert set(v1.json()) == {"error"}


def test_an_upload_without_a_file_says_which_field(editor, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    source_with_key(slug="plant")
    client = api_client_for(editor)
    _shape(client.post("/api/v1/sources/plant/uploads/", {}, format="multipart"), 400, field="file", code="invalid")
    empty = client.generic(
        "POST", "/api/v1/sources/plant/uploads/", b"", content_type="multipart/form-data; boundary=xyz"
    )
    _shape(empty, 400, field="file", code="invalid")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": "Pl\x00ant"}, "title"),
        ({"folder": "Ops\x00"}, "folder"),
        ({"tags": ["ok", "fac\x00tory"]}, "tags[1]"),
        ({"panels": [{"key": "p1", "type": "text", "title": "a\x00"}]}, "panels[0].title"),
    ],
)
def test_a_nul_character_in_a_dashboard_document_is_400_naming_its_path(editor, change, field):
    from tests.dashboards.factories import dashboard_document

    client = api_client_for(editor)
    _shape(client.post("/api/v1/dashboards/", {**dashboard_document(), **change}), 400, field=field, code="invalid")
    created = client.post("/api/v1/dashboards/", dashboard_document())
    assert created.status_code == 201, created.content
    saved = client.put(f"/api/v1/dashboards/{created.json()['uid']}/", {"document": {**dashboard_document(), **change}})
    _shape(saved, 400, field=field, code="invalid")


def test_a_nul_character_in_a_source_config_or_schema_is_400_naming_its_path(editor):
    source_with_key(slug="plant")
    client = api_client_for(editor)
    _shape(client.patch("/api/v1/sources/plant/", {"config": {"note": "a\x00"}}), 400, field="config.note",
           code="invalid")  # fmt: skip
    created = client.post("/api/v1/sources/", {"name": "Other", "slug": "other", "config": {"x": ["\x00"]}})
    _shape(created, 400, field="config.x[0]", code="invalid")
    schema = client.post("/api/v1/sources/plant/schemas/", {"mode": "infer", "definition": {"labels": ["a\x00"]}})
    _shape(schema, 400, field="definition.labels[0]", code="invalid")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/query", '{"metric": "\\ud800"}', "metric"),
        ("/api/v1/query", '{"metric": "temperature", "filters": {"device": "\\udfff"}}', "filters.device"),
        ("/api/v1/dashboards/", '{"title": "\\ud800"}', "title"),
        ("/api/v1/sources/", '{"name": "x", "slug": "y", "config": {"a": "\\ud800"}}', "config.a"),
        ("/api/v1/tokens/", '{"name": "\\ud800"}', "name"),
    ],
)
def test_a_lone_surrogate_in_a_json_body_is_400_naming_the_field(editor, path, body, field):
    # JSON may escape half of a surrogate pair ("\ud800"); that is not text PostgreSQL (or UTF-8) can hold.
    response = api_client_for(editor).generic("POST", path, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_an_api_path_answers_with_or_without_its_trailing_slash_and_an_unknown_one_is_a_json_404(db):
    """The routes are spelled both ways (`me`, `reports/`): either spelling reaches the view, in place (no redirect);
    a path that matches neither way stays a 404 in the API's error shape."""
    from tests.conftest import api_client_for
    from tests.factories import user_create

    client = api_client_for(user_create(username="slashes"))
    assert client.get("/api/v1/me/").json()["username"] == "slashes"
    assert client.get("/api/v1/me").json()["username"] == "slashes"
    assert client.get("/api/v1/tokens").status_code == 200
    missing = client.get("/api/v1/no-such-thing/")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
