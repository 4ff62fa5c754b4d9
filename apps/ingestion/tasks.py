"""Ingestion background work: processing file uploads (route "ingestion.*" in analytics_platform/celery.py)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.ingestion import uploads
from apps.ingestion.models import FileUpload

logger = logging.getLogger(__name__)

UPLOAD_MAX_RETRIES = 5


@shared_task(
    name="ingestion.upload_process",
    bind=True,
    acks_late=True,
    # A worker killed mid-file (deploy, OOM) gets the message back, and the redelivered task resumes from the last
    # committed chunk; without this Celery acknowledges a lost task and the upload would stay "running".
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=UPLOAD_MAX_RETRIES,
)
def upload_process(self, upload_id: int) -> dict:
    """Ingest one uploaded file chunk by chunk from where it stopped; retried on database outages."""
    try:
        upload = uploads.upload_process(upload_id=upload_id)
    except FileUpload.DoesNotExist:
        logger.info("upload %s was deleted before it was processed", upload_id)
        return {"upload": upload_id, "status": "deleted", "rows_done": 0}
    except (OperationalError, InterfaceError) as error:
        if self.request.retries >= UPLOAD_MAX_RETRIES:
            # Out of retries: say so on the upload (if the database answers), so it can be resumed by hand.
            try:
                uploads.upload_fail(upload_id=upload_id, error=f"database_unavailable: {error}")
            except Exception:
                logger.warning("upload %s could not be marked failed", upload_id, exc_info=True)
        raise
    return {"upload": upload.id, "status": upload.status, "rows_done": upload.rows_done}
