"""File uploads (CSV, Parquet) for backfills: accept and store the file, then ingest it chunk by chunk, resumably.

Each chunk's points, dead letters and the upload's counters (`rows_done`, `points_written`, `rows_rejected`)
commit in one transaction, so a run that dies mid-file resumes exactly after the last committed chunk: no row is
stored twice and none is skipped. The live ingest figures count a chunk once it commits (`batch_ingest` counts
on commit), so a rolled-back chunk is not counted and a resumed upload counts each chunk once. The row lock taken
per chunk also makes two runners of one upload harmless (the second finds `rows_done` moved and stops) and lets a
cancel take effect between chunks.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from analytics_platform.field_errors import FieldError
from apps.ingestion.models import DeadLetter, FileUpload, PayloadFormat, Transport, UploadStatus
from apps.ingestion.parsers.tabular import tabular_readers, tabular_sniff
from apps.ingestion.records import ParseResult, PayloadError
from apps.ingestion.services import IngestRefused, batch_ingest
from apps.sources.models import Source

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
EXTENSION_FORMATS = {".csv": PayloadFormat.CSV, ".tsv": PayloadFormat.CSV, ".parquet": PayloadFormat.PARQUET}
ACTIVE_STATUSES = (UploadStatus.QUEUED, UploadStatus.RUNNING)
# Queued too: if the broker lost (or never got) the task, resuming enqueues it again; a duplicate run is harmless.
RESUMABLE_STATUSES = (UploadStatus.FAILED, UploadStatus.CANCELLED, UploadStatus.QUEUED)
# Transient database trouble: the task retries these, so the upload stays running rather than failed.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


class UploadError(FieldError):
    """An upload or an action on one was refused; `field` names the input at fault, `status` the HTTP status."""


def upload_max_bytes() -> int:
    """The largest file accepted (setting INGEST_MAX_UPLOAD_BYTES, 2 GiB by default)."""
    return int(getattr(settings, "INGEST_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))


def upload_format_detect(uploaded_file: UploadedFile) -> str:
    """CSV or Parquet, from the file name's extension or else from its first bytes."""
    extension = os.path.splitext(uploaded_file.name or "")[1].lower()
    if extension in EXTENSION_FORMATS:
        return EXTENSION_FORMATS[extension]
    uploaded_file.seek(0)
    head = uploaded_file.read(4096)
    uploaded_file.seek(0)
    detected = tabular_sniff(head)
    if detected is None:
        raise UploadError(
            "file",
            f"{uploaded_file.name!r} is neither CSV (UTF-8 text with a header row) nor Parquet; "
            "upload a .csv or .parquet file.",
            status=415,
        )
    return detected


def upload_create(*, source: Source, uploaded_file: UploadedFile, created_by: AbstractBaseUser | None) -> FileUpload:
    """Store an uploaded CSV or Parquet file and record it as a queued upload (the caller enqueues processing)."""
    limit = upload_max_bytes()
    size = uploaded_file.size or 0
    if size == 0:
        raise UploadError("file", "The file is empty.")
    if size > limit:
        raise UploadError(
            "file", f"The file is {size} bytes; uploads may be at most {limit} bytes. Split it and retry.", status=413
        )
    payload_format = upload_format_detect(uploaded_file)
    original_name = os.path.basename(uploaded_file.name or "upload")[:255] or "upload"
    upload = FileUpload(
        source=source,
        original_name=original_name,
        payload_format=payload_format,
        size_bytes=size,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    upload.file.save(original_name, uploaded_file, save=False)
    upload.save()
    return upload


@contextmanager
def _local_path(upload: FileUpload) -> Iterator[Path]:
    """A local path to the upload's file: the file itself on disk storage, else a temporary copy."""
    try:
        local = Path(upload.file.path)
    except NotImplementedError:  # remote storage (S3 and the like) has no path
        local = None
    if local is not None:
        yield local
        return
    with tempfile.NamedTemporaryFile(suffix=f".{upload.payload_format}") as copy:
        with upload.file.open("rb") as remote:
            shutil.copyfileobj(remote, copy, length=1024 * 1024)
        copy.flush()
        yield Path(copy.name)


def _finish(
    upload_id: int, *, status: str, error: str = "", only_from: tuple[str, ...] = (UploadStatus.RUNNING,)
) -> FileUpload:
    with transaction.atomic():
        upload = FileUpload.objects.select_for_update().get(id=upload_id)
        if upload.status not in only_from:
            return upload  # cancelled (or requeued) meanwhile: that state stands
        upload.status = status
        upload.error = error
        upload.finished_at = timezone.now()
        if status == UploadStatus.DONE:
            # The CSV total was counted from line breaks; the rows actually read are exact.
            upload.rows_total = upload.rows_done
        upload.save(update_fields=["status", "error", "finished_at", "rows_total"])
    return upload


def upload_fail(*, upload_id: int, error: str) -> FileUpload:
    """Mark a queued or running upload failed with a reason (rows already committed stay stored)."""
    return _finish(upload_id, status=UploadStatus.FAILED, error=error, only_from=ACTIVE_STATUSES)


def _start(upload_id: int) -> FileUpload | None:
    """Claim the upload for this run; None if there is nothing to do (done, failed, cancelled)."""
    with transaction.atomic():
        upload = FileUpload.objects.select_for_update().select_related("source").get(id=upload_id)
        if upload.status not in ACTIVE_STATUSES:
            return None
        # RUNNING here means a redelivered task after a crash: it resumes from rows_done.
        upload.status = UploadStatus.RUNNING
        upload.started_at = upload.started_at or timezone.now()
        upload.error = ""
        upload.save(update_fields=["status", "started_at", "error"])
    return upload


def _dead_letter_rows_mark(ids: list[int]) -> None:
    """Add each dead letter's row number to its context (batch_ingest gives one context to the whole batch)."""
    if not ids:
        return
    table = DeadLetter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET context = context || jsonb_build_object('row', record_index) "  # noqa: S608 (table name from the model)
            "WHERE id = ANY(%s)",
            [ids],
        )


def _chunk_commit(
    upload: FileUpload, *, chunk_start: int, next_row: int, parsed: ParseResult, context: dict[str, object]
) -> bool:
    """Store one chunk and advance the counters in one transaction; False if this run must stop instead."""
    with transaction.atomic():
        current = (
            FileUpload.objects.select_for_update()
            .only("status", "rows_done", "points_written", "rows_rejected")
            .get(id=upload.id)
        )
        if current.status != UploadStatus.RUNNING:
            return False  # cancelled through the API: honoured between chunks
        if current.rows_done != chunk_start:
            logger.warning(
                "upload %s: rows_done is %s, this run expected %s; another run owns it, stopping",
                upload.id,
                current.rows_done,
                chunk_start,
            )
            return False
        result = batch_ingest(
            source_id=upload.source_id,
            parsed=parsed,
            transport=Transport.FILE,
            payload_format=upload.payload_format,
            # Records without a time are stamped with the upload's time, so a resumed run stamps them alike.
            received_at=upload.created_at,
            context=context,
            # Source rate limits pace live senders; a backfill is paced by its chunk size instead.
            enforce_rate_limit=False,
        )
        _dead_letter_rows_mark(result.dead_letter_ids)
        current.rows_done = next_row
        current.points_written += result.points
        current.rows_rejected += result.rejected
        current.save(update_fields=["rows_done", "points_written", "rows_rejected"])
    return True


def upload_process(*, upload_id: int, chunk_rows: int | None = None) -> FileUpload:
    """Ingest an upload from `rows_done` on, chunk by chunk, until done, cancelled or failed; safe to re-run.

    Raises the database's transient errors (OperationalError, InterfaceError) with the upload still running, for
    the task to retry; any other unexpected error marks it failed and is raised.
    """
    chunk_rows = chunk_rows or settings.INGEST_CONNECTOR_BATCH_SIZE
    upload = _start(upload_id)
    if upload is None:
        return FileUpload.objects.get(id=upload_id)
    reader, counter = tabular_readers()[upload.payload_format]
    context = {"upload": upload.id, "file": upload.original_name}
    try:
        with _local_path(upload) as path:
            if upload.rows_total is None:
                upload.rows_total = counter(path)
                FileUpload.objects.filter(id=upload.id).update(rows_total=upload.rows_total)
            chunk_start = upload.rows_done
            for records, errors, next_row in reader(path, start_row=chunk_start, chunk_rows=chunk_rows):
                parsed = ParseResult(records=records, errors=errors)
                if not _chunk_commit(
                    upload, chunk_start=chunk_start, next_row=next_row, parsed=parsed, context=context
                ):
                    return FileUpload.objects.get(id=upload_id)
                chunk_start = next_row
    except PayloadError as error:
        return _finish(upload_id, status=UploadStatus.FAILED, error=f"{error.code}: {error.message}")
    except IngestRefused as refused:
        return _finish(
            upload_id,
            status=UploadStatus.FAILED,
            error=f"{refused.code}: {refused.message} Resume the upload once that is fixed.",
        )
    except FileNotFoundError:
        return _finish(upload_id, status=UploadStatus.FAILED, error="file_missing: the stored file is gone.")
    except TRANSIENT_ERRORS:
        raise
    except DatabaseError as error:
        logger.exception("upload %s failed", upload_id)
        _finish(upload_id, status=UploadStatus.FAILED, error=f"database_error: {error}")
        raise
    except Exception as error:
        logger.exception("upload %s failed", upload_id)
        _finish(upload_id, status=UploadStatus.FAILED, error=f"internal_error: {type(error).__name__}: {error}")
        raise
    return _finish(upload_id, status=UploadStatus.DONE)


def upload_cancel(*, upload: FileUpload) -> FileUpload:
    """Cancel a queued or running upload; the running chunk commits, nothing after it starts."""
    with transaction.atomic():
        current = FileUpload.objects.select_for_update().get(id=upload.id)
        if current.status not in ACTIVE_STATUSES:
            raise UploadError(
                "status", f"The upload is {current.status}; only queued or running ones can be cancelled.", status=409
            )
        current.status = UploadStatus.CANCELLED
        current.finished_at = timezone.now()
        current.save(update_fields=["status", "finished_at"])
    return current


def upload_requeue(*, upload: FileUpload) -> FileUpload:
    """Queue a failed, cancelled (or stuck queued) upload again; it resumes after the rows already committed."""
    with transaction.atomic():
        current = FileUpload.objects.select_for_update().get(id=upload.id)
        if current.status not in RESUMABLE_STATUSES:
            raise UploadError(
                "status",
                f"The upload is {current.status}; only failed, cancelled or queued ones can be resumed.",
                status=409,
            )
        current.status = UploadStatus.QUEUED
        current.error = ""
        current.finished_at = None
        current.save(update_fields=["status", "error", "finished_at"])
    return current


def upload_percent(upload: FileUpload) -> float | None:
    """Progress in percent (None until the rows are counted)."""
    if upload.rows_total is None:
        return None
    if upload.rows_total == 0:
        return 100.0 if upload.status == UploadStatus.DONE else 0.0
    return round(min(100.0, 100.0 * upload.rows_done / upload.rows_total), 1)
