"""Infer mode keeps a field's type: a field stored as a measure refuses text later, a label refuses numbers, on
every ingest path (the record goes to the dead letters with the field named, as InfluxDB's field type conflict)."""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.ingestion import services, uploads
from apps.ingestion.connectors import BatchStore, message_parse
from apps.ingestion.models import DeadLetter
from tests.ingestion.factories import source_with_key, stored_points

pytestmark = pytest.mark.django_db
T0_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _time(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}Z"


def _ingest_json(client, key: str, records: list[dict], *, content_type="application/json"):
    body = json.dumps(records) if content_type == "application/json" else "\n".join(map(json.dumps, records))
    return client.post(
        "/api/v1/sources/plant/ingest", data=body, content_type=content_type, headers={"Authorization": f"Bearer {key}"}
    )


def _letters(source) -> list[tuple[str, str]]:
    return [(letter.error_code, letter.error_field) for letter in DeadLetter.objects.filter(source=source)]


def _labels_of(source) -> set[str]:
    return {name for _, labels, *_ in stored_points(source=source) for name in labels}


def _metrics_of(source) -> set[str]:
    return {metric for metric, *_ in stored_points(source=source)}


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_http_json_a_measure_that_later_arrives_as_text_is_a_type_conflict(client, content_type):
    source, key = source_with_key()
    first = _ingest_json(client, key, [{"time": _time(0), "device": "d1", "temperature": 21.5, "vibration": 1.0}])
    assert first.status_code == 200
    later = [
        {"time": _time(1), "device": "d1", "temperature": "bad", "vibration": 2.0},
        {"time": _time(2), "device": "d1", "temperature": 22.0, "vibration": 3.0},
    ]
    response = _ingest_json(client, key, later, content_type=content_type)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["field"] == "temperature"
    assert body["errors"][0]["code"] == "type_conflict"
    assert "stored as a number" in body["errors"][0]["message"]
    assert _letters(source) == [("type_conflict", "temperature")]
    assert "temperature" not in _labels_of(source)  # no label temperature=bad on vibration
    assert len(stored_points(source=source)) == 4


def test_http_json_a_label_that_later_arrives_as_a_number_is_a_type_conflict(client):
    source, key = source_with_key()
    _ingest_json(client, key, [{"time": _time(0), "device": "d1", "temperature": 21.5}])
    response = _ingest_json(client, key, [{"time": _time(1), "device": 7, "temperature": 22.0}])
    assert response.status_code == 422  # every record refused
    assert _letters(source) == [("type_conflict", "device")]
    assert "device" not in _metrics_of(source)


def test_within_one_batch_the_first_use_decides(client):
    source, key = source_with_key()
    records = [
        {"time": _time(0), "device": "d1", "temperature": 21.5, "flow": 1.0},
        {"time": _time(1), "device": "d1", "temperature": "bad", "flow": 2.0},
        {"time": _time(2), "device": "d1", "temperature": 23.0, "flow": 3.0},
    ]
    response = _ingest_json(client, key, records)
    assert response.json()["rejected"] == 1
    assert _letters(source) == [("type_conflict", "temperature")]
    assert _metrics_of(source) == {"flow", "temperature"}
    assert _labels_of(source) == {"device"}


def test_a_replayed_letter_that_still_conflicts_stays_pending_with_the_field_named(client, editor):
    from apps.ingestion.services import dead_letters_replay

    source, key = source_with_key()
    _ingest_json(client, key, [{"time": _time(0), "device": "d1", "temperature": 21.5}])
    _ingest_json(client, key, [{"time": _time(1), "device": "d1", "temperature": "bad", "flow": 1.0}])
    outcome = dead_letters_replay(source=source, user=editor)
    assert (outcome.replayed, outcome.still_failing) == (0, 1)
    assert _letters(source) == [("type_conflict", "temperature")]


def test_line_protocol_a_string_field_of_a_known_measure_is_a_type_conflict(client, monkeypatch):
    # Every request reads the source again, as a writer does after TARGET_CACHE_SECONDS (2 s) in production.
    monkeypatch.setattr(services, "TARGET_CACHE_SECONDS", 0)
    source, key = source_with_key()
    headers = {"Authorization": f"Token {key}"}
    first = client.post(
        "/api/v2/write?bucket=plant&org=x", data=f"m,device=d1 temperature=21.5 {T0_NS}", content_type="text/plain",
        headers=headers,
    )  # fmt: skip
    assert first.status_code == 204
    body = f'm,device=d1 temperature="bad" {T0_NS + 10**9}\nm,device=d1 flow=2 {T0_NS + 2 * 10**9}'
    response = client.post("/api/v2/write?bucket=plant&org=x", data=body, content_type="text/plain", headers=headers)
    assert response.status_code == 400  # InfluxDB answers a partial write so
    assert "partial write" in response.json()["message"]
    assert _letters(source) == [("type_conflict", "temperature")]
    assert len(stored_points(source=source)) == 2


def _csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _upload(source, content: bytes, name: str):
    upload = uploads.upload_create(source=source, uploaded_file=SimpleUploadedFile(name, content), created_by=None)
    return uploads.upload_process(upload_id=upload.id)


def test_csv_upload_a_bad_value_in_a_numeric_column_is_refused_not_made_a_label():
    """The issue's case: `temperature` numeric in most rows and "bad" in one."""
    source, _ = source_with_key()
    rows = [{"time": _time(i), "device": "d1", "temperature": 20 + i, "humidity": 40 + i} for i in range(6)]
    rows[3]["temperature"] = "bad"
    upload = _upload(source, _csv(rows), "readings.csv")
    assert (upload.rows_rejected, upload.points_written) == (1, 10)
    assert _letters(source) == [("type_conflict", "temperature")]
    assert _labels_of(source) == {"device"}


def test_parquet_upload_a_text_value_of_a_known_measure_is_refused(tmp_path: Path):
    source, _ = source_with_key()
    _upload(source, _csv([{"time": _time(0), "device": "d1", "temperature": 20.5}]), "first.csv")
    table = pa.table(
        {"time": [_time(1), _time(2)], "device": ["d1", "d1"], "temperature": ["21.5", "bad"], "flow": [1.0, 2.0]}
    )
    target = tmp_path / "later.parquet"
    pq.write_table(table, target)
    upload = _upload(source, target.read_bytes(), "later.parquet")
    assert upload.rows_rejected >= 1
    assert ("type_conflict", "temperature") in _letters(source)
    assert "temperature" not in _labels_of(source)


@pytest.mark.parametrize("transport", ["mqtt", "kafka"])
def test_connector_messages_with_a_conflicting_field_are_dead_lettered(transport):
    """MQTT and Kafka store through BatchStore (without a broker here: the broker paths are tested in
    test_mqtt_connector.py and test_kafka_connector.py; what they store goes through this same code)."""
    source, _ = source_with_key(
        slug=f"{transport}-plant",
        kind=transport,
        config={"topic": "test-org/plant/+"} if transport == "mqtt" else {"topics": ["test-org.plant"]},
    )
    store = BatchStore(source_id=source.id, transport=transport, payload_format="json", connector_key=f"{transport}:t")
    payloads = [
        {"time": _time(0), "device": "d1", "temperature": 21.5},
        {"time": _time(1), "device": "d1", "temperature": "bad", "flow": 1.0},
    ]
    messages = [
        message_parse(
            payload=json.dumps(payload).encode(), topic="test-org/plant/1", payload_format="json", precision="ns",
            topic_label=False, handle=handle,
        )
        for handle, payload in enumerate(payloads)
    ]  # fmt: skip
    acknowledged: list[int] = []
    store.store(messages, stop=threading.Event(), acknowledge=lambda done: acknowledged.extend(m.handle for m in done))
    assert acknowledged == [0, 1]
    assert _letters(source) == [("type_conflict", "temperature")]
    assert "temperature" not in _labels_of(source)
