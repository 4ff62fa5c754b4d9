"""The anomaly detection API: settings owned through the source's organisation, detections listed as annotations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.alerts.models import AnomalyDetection, AnomalyEvent
from tests.conftest import api_client_for
from tests.factories import user_create
from tests.storage.factories import series_create, source_create

pytestmark = pytest.mark.django_db

URL = "/api/v1/anomaly-detections/"


def test_an_editor_turns_detection_on_and_gets_the_score_metric_and_level(editor):
    source_create(slug="plant")
    response = api_client_for(editor).post(
        URL, {"source": "plant", "metric": "temperature", "label_filters": {"facility": "f2"}}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["source"], body["metric"], body["label_filters"]) == ("plant", "temperature", {"facility": "f2"})
    assert (body["detector"], body["sensitivity"], body["enabled"]) == ("ensemble", 0.41, True)
    assert body["score_metric"] == "temperature.anomaly_score"
    assert 0.99 < body["level"] < 1
    assert api_client_for(editor).get(URL).json()["results"][0]["id"] == body["id"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"source": "nowhere", "metric": "t"}, "source"),
        ({"source": "plant", "metric": "t", "detector": "magic"}, "detector"),
        ({"source": "plant", "metric": "t", "sensitivity": 2}, "sensitivity"),
        ({"source": "plant", "metric": "t.anomaly_score"}, "metric"),
        ({"source": "plant", "metric": "t", "label_filters": ["facility"]}, "label_filters"),
    ],
)
def test_bad_requests_name_the_field(editor, payload, field):
    source_create(slug="plant")
    response = api_client_for(editor).post(URL, payload, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body.get("field") == field or field in body, body


def test_the_same_metric_and_filters_twice_is_409(editor):
    source_create(slug="plant")
    api_client_for(editor).post(URL, {"source": "plant", "metric": "temperature"}, format="json")
    response = api_client_for(editor).post(URL, {"source": "plant", "metric": "temperature"}, format="json")
    assert response.status_code == 409
    assert response.json()["field"] == "metric"


def test_viewers_read_but_may_not_change_and_other_organisations_see_nothing(editor, viewer):
    source_create(slug="plant")
    created = api_client_for(editor).post(URL, {"source": "plant", "metric": "temperature"}, format="json").json()
    detail = f"{URL}{created['id']}/"
    assert api_client_for(viewer).get(detail).status_code == 200
    assert api_client_for(viewer).patch(detail, {"sensitivity": 0.9}, format="json").status_code == 403
    assert api_client_for(viewer).delete(detail).status_code == 403
    assert api_client_for(viewer).post(URL, {"source": "plant", "metric": "flow"}, format="json").status_code == 403
    outsider = user_create(username="olga", organization="other-org", role="admin")
    assert api_client_for(outsider).get(detail).status_code == 404
    assert api_client_for(outsider).get(URL).json()["results"] == []
    refused = api_client_for(outsider).post(URL, {"source": "plant", "metric": "flow"}, format="json")
    assert (refused.status_code, refused.json()["field"]) == (400, "source")


def test_an_editor_changes_sensitivity_and_removes_the_detection(editor):
    source_create(slug="plant")
    created = api_client_for(editor).post(URL, {"source": "plant", "metric": "temperature"}, format="json").json()
    detail = f"{URL}{created['id']}/"
    changed = api_client_for(editor).patch(detail, {"sensitivity": 0.9, "enabled": False}, format="json").json()
    assert (changed["sensitivity"], changed["enabled"]) == (0.9, False)
    assert changed["level"] < created["level"]
    assert api_client_for(editor).delete(detail).status_code == 204
    assert not AnomalyDetection.objects.exists()


def test_events_are_listed_for_annotations_by_detection_series_and_time(editor):
    source = source_create(slug="plant")
    press = series_create(source=source, metric="temperature", device="press-7")
    created = api_client_for(editor).post(URL, {"source": "plant", "metric": "temperature"}, format="json").json()
    for hour, score in ((1, 0.9991), (5, 0.9999)):
        AnomalyEvent.objects.create(
            detection_id=created["id"], series_id=press, time=datetime(2026, 1, 5, hour, tzinfo=UTC), score=score,
            value=80.0,
        )  # fmt: skip
    events = (
        api_client_for(editor)
        .get("/api/v1/anomaly-events", {"detection": created["id"], "start": "2026-01-05T03:00:00Z"})
        .json()
    )
    assert [(event["time"], event["labels"], event["metric"]) for event in events] == [
        ("2026-01-05T05:00:00Z", {"device": "press-7"}, "temperature")
    ]
    assert len(api_client_for(editor).get("/api/v1/anomaly-events", {"series": press}).json()) == 2
    bad = api_client_for(editor).get("/api/v1/anomaly-events", {"start": "soon"})
    assert (bad.status_code, bad.json()["field"]) == (400, "start")
    outsider = user_create(username="olga", organization="other-org", role="admin")
    assert api_client_for(outsider).get("/api/v1/anomaly-events").json() == []
