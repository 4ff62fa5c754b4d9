"""Odd and hostile input on every write path: decoded completely or refused whole, refused per record, never a 5xx.

Each case here once lost acknowledged data, stored a corrupted point, or failed a whole batch with a 5xx (issue 14).
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.ingestion import services, uploads
from apps.ingestion.connectors import message_parse
from apps.ingestion.content_encoding import BodyRefused, gzip_decode
from apps.ingestion.models import DeadLetter, DeadLetterStatus
from tests.ingestion.factories import source_with_key, stored_points

pytestmark = pytest.mark.django_db

LINE_1 = b'{"time": "2026-01-01T00:00:00Z", "device": "d1", "v": 1.5}\n'
LINE_2 = b'{"time": "2026-01-01T00:00:01Z", "device": "d1", "v": 123456.75}\n'
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _post(client, body, *, key, content_type="application/x-ndjson", **headers):
    return client.post(
        "/api/v1/sources/plant/ingest", data=body, content_type=content_type,
        headers={"Authorization": f"Bearer {key}", **headers},
    )  # fmt: skip


def _gzip_post(client, body, *, key):
    return _post(client, body, key=key, **{"Content-Encoding": "gzip"})


# --- compressed bodies ---------------------------------------------------------------------------------


def test_every_member_of_a_concatenated_gzip_body_is_stored(client):
    source, key = source_with_key()
    response = _gzip_post(client, gzip.compress(LINE_1) + gzip.compress(LINE_2), key=key)
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 2
    assert [point[3] for point in stored_points(source=source)] == [1.5, 123456.75]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (gzip.compress(LINE_1 + LINE_2)[:-12], "truncated"),  # cut inside the last member: once stored a bad point
        (gzip.compress(LINE_1 + LINE_2)[:-4], "truncated"),  # the length field missing
        (gzip.compress(LINE_1) + gzip.compress(LINE_2)[:20], "truncated"),  # the second member cut off
        (b"\x1f\x8b\x08\x00garbage", "truncated"),  # once answered 204 with nothing stored nor dead-lettered
        (gzip.compress(LINE_1) + b"trailing", "not another gzip member"),
        (gzip.compress(LINE_1) + b"\x00\x00", "not another gzip member"),
        (b"", "empty"),
        (LINE_1, "could not be decompressed"),
    ],
)
def test_a_body_that_is_not_whole_gzip_is_refused_whole_and_nothing_is_stored(client, body, reason):
    source, key = source_with_key()
    response = _gzip_post(client, body, key=key)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_gzip"
    assert reason in response.json()["detail"]
    assert stored_points(source=source) == []


def test_a_damaged_checksum_is_refused(client):
    source, key = source_with_key()
    body = bytearray(gzip.compress(LINE_1))
    body[-8] ^= 0xFF  # CRC-32 of the member
    response = _gzip_post(client, bytes(body), key=key)
    assert response.status_code == 400
    assert "could not be decompressed" in response.json()["detail"]
    assert stored_points(source=source) == []


def test_the_decoded_limit_counts_every_member(settings):
    member = gzip.compress(b"x" * 600)
    assert gzip_decode(member + member, limit=1200) == b"x" * 1200
    with pytest.raises(BodyRefused) as refused:
        gzip_decode(member + member, limit=1199)
    assert refused.value.status == 413


def test_x_gzip_is_gzip_and_other_encodings_are_refused_with_415(client):
    source, key = source_with_key()
    assert _post(client, gzip.compress(LINE_1), key=key, **{"Content-Encoding": "x-gzip"}).status_code == 200
    response = _post(client, LINE_1, key=key, **{"Content-Encoding": "br"})
    assert response.status_code == 415
    assert len(stored_points(source=source)) == 1


def test_line_protocol_bodies_are_decoded_the_same_way(client):
    source, key = source_with_key()
    lines = [b"m,device=d1 v=1 1767225600000000000\n", b"m,device=d1 v=2 1767225601000000000\n"]
    headers = {"Authorization": f"Token {key}", "Content-Encoding": "gzip"}
    good = client.post("/api/v2/write?bucket=plant", gzip.compress(lines[0]) + gzip.compress(lines[1]),
                       content_type="text/plain", headers=headers)  # fmt: skip
    assert good.status_code == 204, good.content
    cut = client.post("/write?db=plant", gzip.compress(b"m,device=d2 v=3 1767225602000000000\n")[:-9],
                      content_type="text/plain", headers=headers)  # fmt: skip
    assert cut.status_code == 400
    assert "truncated" in cut.json()["error"]
    assert [point[3] for point in stored_points(source=source)] == [1.0, 2.0]


def test_a_connector_payload_in_gzip_is_decoded_whole_or_refused_whole():
    whole = message_parse(payload=gzip.compress(LINE_1) + gzip.compress(LINE_2), topic="t", payload_format="json",
                          precision="ns", topic_label=False, handle=None)  # fmt: skip
    assert whole.payload_error is None
    assert [record.fields["v"] for record in whole.records] == [1.5, 123456.75]
    cut = message_parse(payload=gzip.compress(LINE_1 + LINE_2)[:-12], topic="t", payload_format="json",
                        precision="ns", topic_label=False, handle=None)  # fmt: skip
    assert cut.records == []
    assert cut.payload_error is not None
    assert cut.payload_error.code == "invalid_gzip"


# --- one bad value refuses its record only ------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "code", "field"),
    [
        ('{"device": "d9", "v": ' + "9" * 400 + "}", "invalid_number", "v"),  # was 500 OverflowError
        ('{"device": "d9", "v": -' + "9" * 5000 + "}", "invalid_number", "v"),  # past Python's int conversion
        ('{"device": "d9", "v": 1.7e308}', "invalid_number", "v"),  # finite, but two of them overflow a sum
        ('{"device": "\\ud800", "v": 1}', "invalid_text", "device"),  # was 503, retried forever by senders
        ('{"\\ud800": 1, "device": "d9"}', "invalid_text", "\ud800"),  # was 500
        ('{"\\udfffname": "x", "device": "d9", "v": 1}', "invalid_text", "\udfffname"),
        ('{"device": "d9", "v\\u0000": 1}', "invalid_text", "v\x00"),
    ],
)
@pytest.mark.parametrize("shape", ["array", "ndjson"])
def test_an_unstorable_value_refuses_its_record_and_the_rest_is_stored(client, bad, code, field, shape):
    source, key = source_with_key()
    good = '{"time": "2026-01-01T00:00:00Z", "device": "d1", "v": 2}'
    if shape == "array":
        response = _post(client, f"[{good}, {bad}]", key=key, content_type="application/json")
    else:
        response = _post(client, f"{good}\n{bad}\n", key=key)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert (answer["errors"][0]["code"], answer["errors"][0]["field"]) == (code, field)
    assert stored_points(source=source) == [("v", {"device": "d1"}, T0, 2.0, 1)]
    letter = DeadLetter.objects.get(source=source)
    assert letter.error_code == code
    json.loads(letter.raw, parse_int=str)  # kept as JSON text that replays to the same record (escapes kept visible)
    outcome = services.dead_letters_replay(source=source)
    assert (outcome.replayed, outcome.still_failing) == (0, 1)
    assert DeadLetter.objects.get(source=source).status == DeadLetterStatus.PENDING


def test_a_csv_upload_with_a_huge_number_stores_the_other_rows(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    source, _ = source_with_key()
    content = (
        "time,device,v\n2026-01-01T00:00:00Z,d1,2\n2026-01-01T00:00:01Z,d1," + "9" * 400 + "\n"
        "2026-01-01T00:00:02Z,d1," + "9" * 5000 + "\n2026-01-01T00:00:03Z,d1,4\n"
    ).encode()
    upload = uploads.upload_create(source=source, uploaded_file=SimpleUploadedFile("u.csv", content), created_by=None)
    upload = uploads.upload_process(upload_id=upload.id)
    assert upload.status == "done"
    assert [point[3] for point in stored_points(source=source)] == [2.0, 4.0]
    assert sorted(DeadLetter.objects.filter(source=source).values_list("error_code", flat=True)) == [
        "invalid_number", "invalid_number",
    ]  # fmt: skip


# --- how old a point may be ----------------------------------------------------------------------------


def test_a_point_older_than_the_source_keeps_raw_points_is_refused_per_record(client):
    """Decades-old points each made a daily partition, and retention deleted them at its next run anyway (on
    TimescaleDB without ever rolling them up): a point older than the raw retention is refused, on every path."""
    source, key = source_with_key(raw_retention_days=None)  # the backend's default: 7 days on plain PostgreSQL
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=8)
    body = json.dumps([
        {"time": old.isoformat(), "device": "old", "v": 1}, {"time": now.isoformat(), "device": "d1", "v": 2},
    ])  # fmt: skip
    response = _post(client, body, key=key, content_type="application/json")
    assert response.status_code == 200, response.content
    error = response.json()["errors"][0]
    assert (error["code"], error["field"]) == ("time_out_of_range", "time")
    assert "keeps raw points (7 days)" in error["message"]
    assert stored_points(source=source) == [("v", {"device": "d1"}, now, 2.0, 1)]
    stamp = int(old.timestamp()) * 10**9
    lines = f"m,device=old v=1 {stamp}\nm,device=d1 v=3 {int(now.timestamp()) * 10**9}\n".encode()
    answer = client.post("/write?db=plant", lines, content_type="text/plain", headers={"Authorization": f"Token {key}"})
    assert answer.status_code == 400
    assert "partial write" in answer.json()["error"]
    assert len(stored_points(source=source)) == 2


def test_a_source_that_keeps_raw_points_longer_takes_older_points(client):
    source, key = source_with_key(raw_retention_days=60 * 365)
    response = _post(client, '{"time": "1971-03-03T00:00:00Z", "device": "old", "v": 1}', key=key)
    assert response.json()["accepted"] == 1
    assert stored_points(source=source)[0][2] == datetime(1971, 3, 3, tzinfo=UTC)
