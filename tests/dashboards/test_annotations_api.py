"""Dashboard annotations over the REST API on real PostgreSQL: create, list by range/panel/kind/tags, edit, delete,
the dashboard's permissions (editors write, viewers read) and 404 across organisations."""

from __future__ import annotations

from datetime import datetime

import pytest

from apps.dashboards.models import Annotation, AnnotationKind
from apps.dashboards.services import annotation_create
from tests.conftest import api_client_for
from tests.dashboards.factories import dashboard_make
from tests.factories import user_create

pytestmark = pytest.mark.django_db


def _at(text: str) -> datetime:
    return datetime.fromisoformat(f"2026-05-01T{text}+00:00")


@pytest.fixture
def dashboard(editor):
    return dashboard_make(owner=editor)


def _url(dashboard, suffix: str = "") -> str:
    return f"/api/v1/dashboards/{dashboard.uid}/annotations/{suffix}"


def test_an_editor_annotates_an_instant_and_a_range(editor, dashboard):
    client = api_client_for(editor)
    instant = client.post(_url(dashboard), {"time": "2026-05-01T08:00:00Z", "text": " Shift change "}, format="json")
    assert instant.status_code == 201, instant.content
    body = instant.json()
    assert (body["text"], body["time_end"], body["panel"], body["kind"], body["created_by"]) == (
        "Shift change", None, "", "manual", "erin"
    )  # fmt: skip
    ranged = client.post(
        _url(dashboard),
        {"time": "2026-05-01T09:00:00Z", "time_end": "2026-05-01T10:30:00Z", "text": "Press 7 serviced",
         "tags": ["Maintenance", "press"], "panel": "p1"},
        format="json",
    )  # fmt: skip
    assert ranged.status_code == 201, ranged.content
    assert ranged.json()["tags"] == ["maintenance", "press"]
    assert ranged.json()["panel"] == "p1"
    assert Annotation.objects.filter(dashboard=dashboard).count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"time": "2026-05-01T08:00:00Z", "text": "   "}, "text"),
        ({"text": "no time"}, "time"),
        ({"time": "yesterday", "text": "x"}, "time"),
        ({"time": "2026-05-01T08:00:00Z", "time_end": "2026-05-01T07:00:00Z", "text": "backwards"}, "time_end"),
        ({"time": "2026-05-01T08:00:00Z", "text": "x", "panel": "no-such-panel"}, "panel"),
        ({"time": "2026-05-01T08:00:00Z", "text": "x", "tags": "deploy"}, "tags"),
    ],
)
def test_a_bad_annotation_answers_400_naming_the_field(editor, dashboard, body, field):
    response = api_client_for(editor).post(_url(dashboard), body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not Annotation.objects.exists()


def test_the_list_holds_what_overlaps_the_range_for_the_panel_kind_and_tags(editor, viewer, dashboard):
    def make(time, text, **kwargs):
        return annotation_create(dashboard=dashboard, time=_at(time), text=text, **kwargs)

    make("01:00:00", "before the range")
    make("02:00:00", "range into it", time_end=_at("03:30:00"), tags=["deploy"])
    make("04:00:00", "inside, panel p1", panel_key="p1", tags=["deploy", "ops"])
    make("04:30:00", "inside, panel p2", panel_key="p2")
    make("05:00:00", "alert fired", kind=AnnotationKind.ALERT, source_ref="alert-rule:3")
    make("09:00:00", "after the range")
    client = api_client_for(viewer)

    def texts(**params):
        window = {"start": "2026-05-01T03:00:00Z", "end": "2026-05-01T06:00:00Z"}
        response = client.get(_url(dashboard), {**window, **params})
        assert response.status_code == 200, response.content
        return [item["text"] for item in response.json()["results"]]

    assert texts() == ["range into it", "inside, panel p1", "inside, panel p2", "alert fired"]
    assert texts(panel="p1") == ["range into it", "inside, panel p1", "alert fired"]
    assert texts(kind="alert") == ["alert fired"]
    assert texts(tags="deploy,ops") == ["inside, panel p1"]
    bad = client.get(_url(dashboard), {"start": "2026-05-01T06:00:00Z", "end": "2026-05-01T03:00:00Z"})
    assert (bad.status_code, bad.json()["field"]) == (400, "end")


def test_an_editor_edits_and_deletes_an_annotation(editor, dashboard):
    annotation = annotation_create(dashboard=dashboard, time=_at("08:00:00"), text="first")
    client = api_client_for(editor)
    changed = client.patch(_url(dashboard, str(annotation.id)), {"text": "second", "time_end": "2026-05-01T09:00:00Z"})
    assert changed.status_code == 200, changed.content
    annotation.refresh_from_db()
    assert (annotation.text, annotation.time_end.isoformat()) == ("second", "2026-05-01T09:00:00+00:00")
    backwards = client.patch(_url(dashboard, str(annotation.id)), {"time": "2026-05-01T10:00:00Z"}, format="json")
    assert (backwards.status_code, backwards.json()["field"]) == (400, "time_end")
    assert client.delete(_url(dashboard, str(annotation.id))).status_code == 204
    assert not Annotation.objects.exists()


def test_a_viewer_reads_but_cannot_write(viewer, dashboard):
    annotation = annotation_create(dashboard=dashboard, time=_at("08:00:00"), text="kept")
    client = api_client_for(viewer)
    assert client.get(_url(dashboard, str(annotation.id))).json()["text"] == "kept"
    assert client.post(_url(dashboard), {"time": "2026-05-01T08:00:00Z", "text": "x"}).status_code == 403
    assert client.patch(_url(dashboard, str(annotation.id)), {"text": "y"}).status_code == 403
    assert client.delete(_url(dashboard, str(annotation.id))).status_code == 403
    assert Annotation.objects.get().text == "kept"


def test_another_organisation_gets_404_for_everything(dashboard):
    annotation = annotation_create(dashboard=dashboard, time=_at("08:00:00"), text="private")
    outsider = api_client_for(user_create(username="olga", organization="other-org", role="admin"))
    assert outsider.get(_url(dashboard)).status_code == 404
    assert outsider.get(_url(dashboard, str(annotation.id))).status_code == 404
    assert outsider.post(_url(dashboard), {"time": "2026-05-01T08:00:00Z", "text": "x"}).status_code == 404
    assert outsider.delete(_url(dashboard, str(annotation.id))).status_code == 404
    assert api_client_for(None).get(_url(dashboard)).status_code in (401, 403)
    assert Annotation.objects.count() == 1


def test_an_annotation_of_another_dashboard_is_404(editor, dashboard):
    other = dashboard_make(owner=editor, title="Other")
    annotation = annotation_create(dashboard=other, time=_at("08:00:00"), text="elsewhere")
    assert api_client_for(editor).get(_url(dashboard, str(annotation.id))).status_code == 404


def test_annotations_are_in_the_openapi_schema():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/dashboards/{uid}/annotations/"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/dashboards/{uid}/annotations/{annotation_id}"])
    assert "Annotation" in schema["components"]["schemas"]
