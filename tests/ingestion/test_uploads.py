"""File uploads (CSV, Parquet) against real PostgreSQL: stored exactly, bad rows dead-lettered, resumable, API."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from celery.exceptions import Retry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from rest_framework.test import APIClient

from analytics_platform.redis_client import redis_client, redis_key
from apps.ingestion import services, tasks, uploads
from apps.ingestion.metrics import INGEST_POINTS
from apps.ingestion.models import DeadLetter, FileUpload, UploadStatus
from apps.ingestion.parsers.tabular import csv_count_rows, csv_records, parquet_records
from apps.ingestion.records import ParseResult, PayloadError
from tests.factories import user_create
from tests.ingestion.factories import source_with_key, stored_points

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAB_FILE = Path("/work/shared/data/nab/data/realKnownCause/machine_temperature_system_failure.csv")
STRICT_SCHEMA = {
    "time": {"field": "time", "format": "iso8601"},
    "measures": {"temperature": {"type": "number", "min": -50, "max": 150, "required": True}},
    "labels": {"device": {"required": True}},
    "unknown_fields": "reject",
}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


# --- builders --------------------------------------------------------------------------------------


def _rows(count: int, *, devices: tuple[str, ...] = ("d1", "d2")) -> list[dict]:
    return [
        {
            "time": (T0 + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
            "device": devices[i % len(devices)],
            "temperature": round(20 + i * 0.5, 2),
            "humidity": 40 + i,
        }
        for i in range(count)
    ]


def _csv_bytes(rows: list[dict], *, delimiter: str = ",", bom: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode()


def _expected(rows: list[dict]) -> list[tuple]:
    """What stored_points returns for rows of _rows: one point per number, device as the label."""
    points = []
    for row in rows:
        moment = datetime.fromisoformat(row["time"].replace("Z", "+00:00"))
        for metric in ("humidity", "temperature"):
            points.append((metric, {"device": row["device"]}, moment, float(row[metric]), 1))
    return sorted(points, key=lambda point: (point[0], point[1]["device"], point[2]))


def _upload(source, content: bytes, name: str = "readings.csv") -> FileUpload:
    return uploads.upload_create(source=source, uploaded_file=SimpleUploadedFile(name, content), created_by=None)


def _parquet_bytes(table: pa.Table, tmp_path: Path, **options) -> bytes:
    target = tmp_path / "built.parquet"
    pq.write_table(table, target, **options)
    return target.read_bytes()


# --- CSV -------------------------------------------------------------------------------------------


def test_csv_upload_stores_every_row_exactly_in_chunks():
    source, _ = source_with_key()
    rows = _rows(25)
    upload = _upload(source, _csv_bytes(rows))
    assert upload.status == UploadStatus.QUEUED
    assert upload.payload_format == "csv"
    assert upload.size_bytes == len(_csv_bytes(rows))
    assert Path(upload.file.path).read_bytes() == _csv_bytes(rows)  # the file is kept as sent

    upload = uploads.upload_process(upload_id=upload.id, chunk_rows=10)

    assert stored_points(source=source) == _expected(rows)
    assert (upload.status, upload.rows_total, upload.rows_done) == (UploadStatus.DONE, 25, 25)
    assert (upload.points_written, upload.rows_rejected, upload.error) == (50, 0, "")
    assert upload.started_at is not None
    assert upload.finished_at is not None
    assert uploads.upload_percent(upload) == 100.0
    # Running a finished upload again is a no-op.
    assert uploads.upload_process(upload_id=upload.id, chunk_rows=10).points_written == 50
    assert len(stored_points(source=source)) == 50


def test_a_history_upload_takes_the_delta_path_and_reaggregates_nothing_in_its_chunks():
    """A backfill through an upload is written as fast as live data: its rollups wait as deltas for the refresh."""
    from django.db import connection

    with connection.cursor() as cursor:  # everything the rows hold is below the watermark: materialized already
        cursor.execute(
            "UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [T0 + timedelta(days=2)]
        )
        cursor.execute("SELECT count(*) FROM points_1m")
        rows_before = cursor.fetchone()[0]
    source, _ = source_with_key()
    rows = _rows(30)
    upload = uploads.upload_process(upload_id=_upload(source, _csv_bytes(rows)).id, chunk_rows=10)
    assert upload.status == UploadStatus.DONE
    assert stored_points(source=source) == _expected(rows)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM points_1m")
        assert cursor.fetchone()[0] == rows_before  # no bucket re-aggregated inside the chunks' transactions
        cursor.execute("SELECT sum(count) FROM points_1m_delta")
        assert cursor.fetchone()[0] == 60  # every point, as deltas of the minute tier


@pytest.mark.parametrize(("delimiter", "bom"), [(";", False), ("\t", True), (",", True)])
def test_csv_delimiter_sniffed_and_bom_dropped(delimiter, bom):
    source, _ = source_with_key()
    rows = _rows(6)
    upload = uploads.upload_process(upload_id=_upload(source, _csv_bytes(rows, delimiter=delimiter, bom=bom)).id)
    assert upload.status == UploadStatus.DONE, upload.error
    assert stored_points(source=source) == _expected(rows)


def test_csv_values_empty_cells_booleans_and_padded_numbers(tmp_path):
    target = tmp_path / "values.csv"
    target.write_text("time,device,temp,ok,zip,note\n2026-01-01T00:00:00Z,d1,,true,0042,-1.5e2\n\n1,2\n")
    chunks = list(csv_records(target, start_row=0, chunk_rows=100))
    assert len(chunks) == 1
    records, errors, next_row = chunks[0]
    assert next_row == 3  # the blank line keeps its number
    assert records[0].index == 0
    assert records[0].fields == {"time": "2026-01-01T00:00:00Z", "device": "d1", "ok": "true", "zip": "0042",
                                 "note": -150.0}  # fmt: skip
    assert [(error.index, error.code, error.raw) for error in errors] == [(2, "invalid_row", "1,2")]
    assert csv_count_rows(target) == 3
    # Starting later yields the same rows with the same numbers.
    assert [(e.index, e.code) for e in next(csv_records(target, start_row=1, chunk_rows=100))[1]] == [
        (2, "invalid_row")
    ]


def test_bad_rows_become_dead_letters_with_row_numbers():
    source, _ = source_with_key(schema_mode="strict", schema=STRICT_SCHEMA)
    content = (
        b"time,device,temperature\n"
        b"2026-01-01T00:00:00Z,d1,20\n"  # row 0 stored
        b"2026-01-01T00:01:00Z,d1,999\n"  # row 1 out of range
        b"2026-01-01T00:02:00Z,d1\n"  # row 2 has too few columns
        b"not a time,d1,21\n"  # row 3 bad time
        b"2026-01-01T00:04:00Z,,22\n"  # row 4 misses the required label
        b"2026-01-01T00:05:00Z,d2,23\n"  # row 5 stored
    )
    upload = uploads.upload_process(upload_id=_upload(source, content, "plant.csv").id, chunk_rows=2)
    assert (upload.status, upload.rows_done, upload.points_written, upload.rows_rejected) == ("done", 6, 2, 4)
    assert [(labels["device"], value) for _, labels, _, value, _ in stored_points(source=source)] == [
        ("d1", 20.0),
        ("d2", 23.0),
    ]
    letters = DeadLetter.objects.filter(source=source).order_by("record_index")
    assert [(letter.record_index, letter.error_code) for letter in letters] == [
        (1, "out_of_range"),
        (2, "invalid_row"),
        (3, "invalid_time"),
        (4, "missing_field"),
    ]
    for letter in letters:
        assert letter.transport == "file"
        assert letter.payload_format == "csv"
        assert letter.context == {"upload": upload.id, "file": "plant.csv", "row": letter.record_index}
    assert letters[1].raw == "2026-01-01T00:02:00Z,d1"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", None),  # refused at upload: empty
        (b"\n\n", "missing_header"),
        (b"1767225600,21.5\n1767225660,22\n", "missing_header"),
        (b"time,value,value\n2026-01-01T00:00:00Z,1,2\n", "duplicate_column"),
        (b"time,,value\n2026-01-01T00:00:00Z,1,2\n", "empty_column_name"),
        (b"time,device,v\n2026-01-01T00:00:00Z,caf\xe9,1\n", "invalid_encoding"),
    ],
)
def test_file_level_errors_fail_the_upload_and_store_nothing(content, code):
    source, _ = source_with_key()
    if code is None:
        with pytest.raises(uploads.UploadError) as refused:
            _upload(source, content)
        assert refused.value.field == "file"
        return
    upload = uploads.upload_process(upload_id=_upload(source, content).id)
    assert upload.status == UploadStatus.FAILED
    assert upload.error.startswith(f"{code}: ")
    assert upload.finished_at is not None
    assert stored_points(source=source) == []
    assert Path(upload.file.path).exists()  # kept, to inspect or resume after a fix


def test_format_from_extension_or_content_and_size_limit(settings, tmp_path):
    source, _ = source_with_key()
    assert _upload(source, _csv_bytes(_rows(2)), "export.txt").payload_format == "csv"
    table = pa.table({"time": ["2026-01-01T00:00:00Z"], "v": [1.0]})
    assert _upload(source, _parquet_bytes(table, tmp_path), "export.bin").payload_format == "parquet"
    with pytest.raises(uploads.UploadError) as refused:
        _upload(source, b"\x00\x01\x02binary junk", "junk.bin")
    assert (refused.value.field, refused.value.status) == ("file", 415)
    settings.INGEST_MAX_UPLOAD_BYTES = 10
    with pytest.raises(uploads.UploadError) as too_big:
        _upload(source, _csv_bytes(_rows(2)))
    assert (too_big.value.field, too_big.value.status) == ("file", 413)


# --- Parquet ---------------------------------------------------------------------------------------


def test_parquet_upload_stores_rows_exactly_and_refuses_nested_values(tmp_path):
    source, _ = source_with_key()
    count = 11
    times = [T0 + timedelta(seconds=i) for i in range(count)]
    table = pa.table(
        {
            # Naive nanosecond timestamps (pandas' default) are UTC.
            "time": pa.array([int(t.timestamp()) * 10**9 for t in times], pa.timestamp("ns")),
            "device": pa.array(["a", "b"] * 5 + ["a"]).dictionary_encode(),
            "temperature": pa.array([20.0 + i for i in range(count)], pa.float64()),
            "count": pa.array([i if i != 3 else None for i in range(count)], pa.int64()),
            "tags": pa.array([[1, 2] if i == 7 else None for i in range(count)], pa.list_(pa.int64())),
        }
    )
    upload = _upload(source, _parquet_bytes(table, tmp_path, row_group_size=4), "readings.parquet")
    upload = uploads.upload_process(upload_id=upload.id, chunk_rows=3)
    assert (upload.status, upload.rows_total, upload.rows_done) == ("done", count, count), upload.error
    assert upload.rows_rejected == 1
    expected = []
    for i, moment in enumerate(times):
        if i == 7:
            continue
        labels = {"device": "a" if i % 2 == 0 else "b"}
        expected.append(("temperature", labels, moment, 20.0 + i, 1))
        if i != 3:
            expected.append(("count", labels, moment, float(i), 1))
    expected.sort(key=lambda point: (point[0], point[1]["device"], point[2]))
    assert stored_points(source=source) == expected
    assert upload.points_written == len(expected)
    letter = DeadLetter.objects.get(source=source)
    assert (letter.record_index, letter.error_code, letter.error_field) == (7, "nested_value", "tags")
    assert (letter.payload_format, letter.context["row"]) == ("parquet", 7)
    assert '"tags": [1, 2]' in letter.raw


def test_parquet_reader_starts_mid_row_group(tmp_path):
    target = tmp_path / "t.parquet"
    pq.write_table(pa.table({"v": list(range(10))}), target, row_group_size=4)
    chunks = list(parquet_records(target, start_row=5, chunk_rows=2))
    assert [[record.index for record in records] for records, _, _ in chunks] == [[5, 6], [7, 8], [9]]
    assert [next_row for *_, next_row in chunks] == [7, 9, 10]
    assert list(parquet_records(target, start_row=10, chunk_rows=2)) == []
    with pytest.raises(PayloadError) as error:
        list(parquet_records(tmp_path / "missing.parquet", start_row=0, chunk_rows=2))
    assert error.value.code == "invalid_parquet"


# --- resumability and cancellation -----------------------------------------------------------------


def test_crash_mid_file_resumes_after_the_last_committed_chunk(monkeypatch):
    """Failure injection: the 3rd chunk's write runs, then the 'worker dies' inside its transaction."""
    source, _ = source_with_key()
    rows = _rows(50)
    upload = _upload(source, _csv_bytes(rows))
    real_batch_ingest = services.batch_ingest
    calls: list[list[int]] = []

    def crashing_batch_ingest(**kwargs):
        result = real_batch_ingest(**kwargs)
        calls.append([record.index for record in kwargs["parsed"].records])
        if len(calls) == 3:
            raise OperationalError("server closed the connection unexpectedly")
        return result

    monkeypatch.setattr(uploads, "batch_ingest", crashing_batch_ingest)
    with pytest.raises(OperationalError):
        uploads.upload_process(upload_id=upload.id, chunk_rows=10)

    upload.refresh_from_db()
    assert (upload.status, upload.rows_done, upload.rows_total) == ("running", 20, 50)
    assert upload.points_written == 40
    assert uploads.upload_percent(upload) == 40.0
    assert stored_points(source=source) == _expected(rows[:20])  # chunk 3's points were rolled back

    monkeypatch.setattr(uploads, "batch_ingest", lambda **kwargs: calls.append(
        [record.index for record in kwargs["parsed"].records]) or real_batch_ingest(**kwargs))  # fmt: skip
    upload = uploads.upload_process(upload_id=upload.id, chunk_rows=10)  # what a redelivered task does

    assert (upload.status, upload.rows_done, upload.rows_total) == ("done", 50, 50)
    committed = calls[:2] + calls[3:]  # the 3rd call's transaction was rolled back
    assert sorted(index for chunk in committed for index in chunk) == list(range(50))  # once each, no gaps
    assert calls[3][0] == 20
    assert upload.points_written == 100
    assert stored_points(source=source) == _expected(rows)


def _counted(source) -> dict[str, int]:
    """What the live figures (Redis) and /metrics counted for a source's file ingest so far."""
    client = redis_client()
    totals = {"points": 0, "records": 0, "rejected": 0}
    for key in client.scan_iter(match=redis_key("ingest", "rate", source.id, "*")):
        for name, value in client.hgetall(key).items():
            totals[name.decode()] += int(value)
    totals["metric_points"] = int(
        INGEST_POINTS.labels(organization=source.organization.slug, source=source.slug, transport="file")._value.get()
    )
    return totals


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_chunk_is_not_counted_and_a_resumed_upload_counts_each_chunk_once(
    monkeypatch, storage_committed_cleanup
):
    """Real commits: the 3rd chunk (with the one bad row) is written, then rolled back; the resume writes it again."""
    source, _ = source_with_key(slug=f"counted-{uuid.uuid4().hex[:8]}")
    rows = _rows(50)
    rows[25]["time"] = "not a time"
    upload = _upload(source, _csv_bytes(rows))
    real_batch_ingest = services.batch_ingest
    calls = 0

    def crashing_batch_ingest(**kwargs):
        nonlocal calls
        result = real_batch_ingest(**kwargs)
        calls += 1
        if calls == 3:
            raise OperationalError("server closed the connection unexpectedly")
        return result

    monkeypatch.setattr(uploads, "batch_ingest", crashing_batch_ingest)
    with pytest.raises(OperationalError):
        uploads.upload_process(upload_id=upload.id, chunk_rows=10)
    assert _counted(source) == {"points": 40, "records": 20, "rejected": 0, "metric_points": 40}
    assert not DeadLetter.objects.filter(source=source).exists()

    monkeypatch.setattr(uploads, "batch_ingest", real_batch_ingest)
    upload = uploads.upload_process(upload_id=upload.id, chunk_rows=10)  # what a redelivered task does
    assert (upload.status, upload.points_written, upload.rows_rejected) == ("done", 98, 1)
    assert _counted(source) == {"points": 98, "records": 49, "rejected": 1, "metric_points": 98}
    assert DeadLetter.objects.get(source=source).occurrences == 1


def test_cancel_is_honoured_between_chunks_and_resume_finishes(monkeypatch):
    source, _ = source_with_key()
    rows = _rows(30)
    upload = _upload(source, _csv_bytes(rows))
    real_batch_ingest = services.batch_ingest

    def cancel_during_second_chunk(**kwargs):
        result = real_batch_ingest(**kwargs)
        if kwargs["parsed"].records[0].index == 10:
            uploads.upload_cancel(upload=upload)  # as the API does while the chunk is written
        return result

    monkeypatch.setattr(uploads, "batch_ingest", cancel_during_second_chunk)
    upload = uploads.upload_process(upload_id=upload.id, chunk_rows=10)
    assert (upload.status, upload.rows_done) == ("cancelled", 20)
    assert len(stored_points(source=source)) == 40

    with pytest.raises(uploads.UploadError):
        uploads.upload_cancel(upload=upload)  # already cancelled
    uploads.upload_requeue(upload=upload)
    upload = uploads.upload_process(upload_id=upload.id, chunk_rows=10)
    assert (upload.status, upload.rows_done, upload.points_written) == ("done", 30, 60)
    assert stored_points(source=source) == _expected(rows)


def test_a_second_runner_stops_when_the_upload_moved_on():
    """Two runs of one upload (a resume while the old task still runs): the chunk lock lets only one write."""
    source, _ = source_with_key()
    upload = _upload(source, _csv_bytes(_rows(20)))
    uploads.upload_process(upload_id=upload.id, chunk_rows=10)
    FileUpload.objects.filter(id=upload.id).update(status=UploadStatus.RUNNING)
    records, errors, next_row = next(csv_records(upload.file.path, start_row=0, chunk_rows=10))
    stale = uploads._chunk_commit(
        upload, chunk_start=0, next_row=next_row, parsed=ParseResult(records, errors), context={}
    )
    assert stale is False
    upload.refresh_from_db()
    assert (upload.rows_done, upload.points_written) == (20, 40)
    assert tasks.upload_process.delay(999_999).get()["status"] == "deleted"


def test_paused_source_fails_the_upload_and_resume_continues():
    from apps.sources.services import source_set_enabled

    source, _ = source_with_key()
    rows = _rows(5)
    upload = _upload(source, _csv_bytes(rows))
    source_set_enabled(source=source, enabled=False)
    services.ingest_targets_forget(source_id=source.id)
    upload = uploads.upload_process(upload_id=upload.id)
    assert upload.status == "failed"
    assert upload.error.startswith("source_paused: ")
    source_set_enabled(source=source, enabled=True)
    services.ingest_targets_forget(source_id=source.id)
    uploads.upload_requeue(upload=upload)
    assert uploads.upload_process(upload_id=upload.id).status == "done"
    assert stored_points(source=source) == _expected(rows)


def test_task_processes_and_gives_up_after_retries(monkeypatch):
    source, _ = source_with_key()
    upload = _upload(source, _csv_bytes(_rows(4)))
    tasks.upload_process.delay(upload.id)
    upload.refresh_from_db()
    assert (upload.status, upload.points_written) == ("done", 8)

    second = _upload(source, _csv_bytes(_rows(4)), "again.csv")
    attempts = []

    def database_down(**kwargs):
        attempts.append(kwargs)
        FileUpload.objects.filter(id=second.id).update(status=UploadStatus.RUNNING)
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(uploads, "upload_process", database_down)
    with pytest.raises(Retry):  # eager tasks surface the scheduled retry
        tasks.upload_process.delay(second.id)
    second.refresh_from_db()
    assert second.status == "running"  # a retry will resume it; not failed yet
    with pytest.raises(OperationalError):  # the last allowed attempt fails too
        tasks.upload_process.apply(args=[second.id], retries=tasks.UPLOAD_MAX_RETRIES)
    assert len(attempts) == 2
    second.refresh_from_db()
    assert second.status == "failed"
    assert second.error.startswith("database_unavailable: ")


# --- a real data set -------------------------------------------------------------------------------


@pytest.mark.skipif(not NAB_FILE.exists(), reason="the shared NAB data set is not mounted")
def test_real_sensor_file_slice(tmp_path):
    """The first 3000 readings of NAB's machine_temperature_system_failure.csv ("timestamp,value")."""
    with NAB_FILE.open() as stream:
        lines = [next(stream) for _ in range(3001)]
    # The data is from 2013: a source keeping raw points for 20 years takes it (ingest refuses points older than
    # the source's raw retention).
    source, _ = source_with_key(slug="machine", raw_retention_days=20 * 365)
    upload = _upload(source, "".join(lines).encode(), NAB_FILE.name)
    upload = uploads.upload_process(upload_id=upload.id, chunk_rows=1000)
    assert (upload.status, upload.rows_total, upload.rows_done, upload.rows_rejected) == ("done", 3000, 3000, 0)
    points = stored_points(source=source)
    assert len(points) == upload.points_written == 3000
    first_time, first_value = lines[1].strip().split(",")
    assert points[0][:4] == ("value", {}, datetime.fromisoformat(first_time).replace(tzinfo=UTC), float(first_value))
    assert sum(value for *_, value, _ in points) == pytest.approx(sum(float(line.split(",")[1]) for line in lines[1:]))


# --- REST API --------------------------------------------------------------------------------------


def _post_file(client: APIClient, slug: str, content: bytes, name: str = "readings.csv"):
    return client.post(
        f"/api/v1/sources/{slug}/uploads/", {"file": SimpleUploadedFile(name, content)}, format="multipart"
    )


def test_api_upload_progress_list_cancel_resume(django_capture_on_commit_callbacks):
    source, _ = source_with_key()
    editor = user_create(username="erin", role="editor")
    client = APIClient()
    client.force_authenticate(editor)
    rows = _rows(12)
    with django_capture_on_commit_callbacks() as callbacks:
        response = _post_file(client, "plant", _csv_bytes(rows))
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"  # the task is only enqueued once the upload is committed
    assert len(callbacks) == 1
    callbacks[0]()  # the commit: the (eager) task runs
    upload_id = response.json()["id"]
    detail = client.get(f"/api/v1/sources/plant/uploads/{upload_id}").json()
    assert {key: detail[key] for key in ("status", "rows_total", "rows_done", "percent", "points_written",
                                         "rows_rejected", "error", "created_by", "original_name")} == {
        "status": "done", "rows_total": 12, "rows_done": 12, "percent": 100.0, "points_written": 24,
        "rows_rejected": 0, "error": "", "created_by": "erin", "original_name": "readings.csv",
    }  # fmt: skip
    assert stored_points(source=source) == _expected(rows)

    listing = client.get("/api/v1/sources/plant/uploads/").json()
    assert listing["count"] == 1
    assert [item["id"] for item in listing["results"]] == [upload_id]

    conflict = client.post(f"/api/v1/sources/plant/uploads/{upload_id}/cancel")
    assert conflict.status_code == 409
    assert conflict.json()["field"] == "status"
    assert client.post(f"/api/v1/sources/plant/uploads/{upload_id}/resume").status_code == 409

    # A failed upload (header problem) is resumed after the fix... here: the source was paused.
    failed = FileUpload.objects.create(
        source=source, file=FileUpload.objects.get(id=upload_id).file.name, original_name="x.csv",
        payload_format="csv", status=UploadStatus.FAILED, rows_total=12, rows_done=12, error="source_paused: ...",
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        resumed = client.post(f"/api/v1/sources/plant/uploads/{failed.id}/resume")
    assert resumed.status_code == 202, resumed.content
    failed.refresh_from_db()
    assert (failed.status, failed.rows_done, failed.error) == ("done", 12, "")
    assert len(stored_points(source=source)) == 24  # rows_done was 12: nothing written again

    missing = _post_file(client, "plant", b"", "empty.csv")
    assert missing.status_code == 400
    assert missing.json()["field"] == "file"
    no_file = client.post("/api/v1/sources/plant/uploads/", {}, format="multipart")
    assert no_file.status_code == 400
    assert no_file.json()["field"] == "file"


def test_api_cancel_a_queued_upload():
    source, _ = source_with_key()
    client = APIClient()
    client.force_authenticate(user_create(username="erin", role="editor"))
    upload = _upload(source, _csv_bytes(_rows(3)))
    response = client.post(f"/api/v1/sources/plant/uploads/{upload.id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert uploads.upload_process(upload_id=upload.id).rows_done == 0  # the late task does nothing


def test_api_permissions(settings):
    source, _ = source_with_key()
    upload = _upload(source, _csv_bytes(_rows(3)))
    outsider = user_create(username="mallory", organization="other-org", role="admin")
    viewer = user_create(username="victor", role="viewer")
    client = APIClient()

    client.force_authenticate(outsider)
    assert client.get("/api/v1/sources/plant/uploads/").status_code == 404
    assert client.get(f"/api/v1/sources/plant/uploads/{upload.id}").status_code == 404
    assert _post_file(client, "plant", _csv_bytes(_rows(3))).status_code == 404
    assert client.post(f"/api/v1/sources/plant/uploads/{upload.id}/cancel").status_code == 404

    client.force_authenticate(viewer)
    assert client.get(f"/api/v1/sources/plant/uploads/{upload.id}").status_code == 200
    assert client.get("/api/v1/sources/plant/uploads/").json()["count"] == 1
    assert _post_file(client, "plant", _csv_bytes(_rows(3))).status_code == 403
    assert client.post(f"/api/v1/sources/plant/uploads/{upload.id}/cancel").status_code == 403
    assert client.get("/api/v1/sources/plant/uploads/999999").status_code == 404

    client.force_authenticate(None)
    assert client.get("/api/v1/sources/plant/uploads/").status_code in (401, 403)

    client.force_authenticate(user_create(username="erin", role="editor"))
    settings.INGEST_MAX_UPLOAD_BYTES = 16
    too_big = _post_file(client, "plant", _csv_bytes(_rows(3)))
    assert too_big.status_code == 413
    assert too_big.json()["field"] == "file"
    assert FileUpload.objects.filter(source=source).count() == 1
