"""The REST API against its own OpenAPI schema, with schemathesis: no 5xx, every answer as documented.

Schemathesis reads /api/schema/ and, for every operation, sends the schema's examples, the boundary and
wrong-type cases of its coverage phase, and generated requests, valid and invalid, then checks each answer: no
server error, a documented status, content type and body, invalid input refused, authentication enforced,
undocumented methods refused.

The app runs in this process over WSGI (the same Django views, middleware and database as under daphne), in the
test's transaction, for speed: each operation's examples run in a savepoint that is rolled back, so every example
sees the same world, a deleted dashboard included. Path parameters are pinned to objects of that world (a source,
its write key, a dashboard, an upload, a report, a spare token and key to revoke) so requests reach the code behind the
404. The world's owner is an organisation editor, authenticated with an API token (the ingest endpoints with
the source's write key).

`positive_data_acceptance` is off: it expects every schema-valid request to succeed, and a schema cannot say that
a metric must exist or that a dashboard's variables must be declared; such requests answer 400, as documented.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings

from analytics_platform.keys import key_digest
from apps.access.models import ApiToken
from apps.access.services import api_token_create
from apps.dashboards.models import Dashboard
from apps.dashboards.services import dashboard_create
from apps.ingestion.models import FileUpload, UploadStatus
from apps.reporting.models import Report
from apps.reporting.services import report_create
from apps.sources.models import SourceWriteKey
from tests.dashboards.factories import dashboard_document
from tests.factories import organization_get, user_create
from tests.ingestion.factories import source_with_key
from tests.storage.factories import points_store, series_create

pytestmark = pytest.mark.slow

SLUG = "fuzz"
DASHBOARD_UID = "fuzz-board"
SPARE_ID = 990_001  # the spare token's, the spare write key's and the upload's id: fixed, so the schema can pin them
# Generated requests per operation (on top of the schema's examples and the coverage phase's cases): about a
# minute in all. API_FUZZ_EXAMPLES=500 searches deeper.
EXAMPLES_PER_OPERATION = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))
# The same requests on every run, so `make test` passes or fails alike; a deeper search draws new ones each time.
DERANDOMIZED = "API_FUZZ_EXAMPLES" not in os.environ

APP = get_wsgi_application()
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "parameters": {
            "slug": SLUG,
            "uid": DASHBOARD_UID,
            "token_id": SPARE_ID,
            "key_id": SPARE_ID,
            "upload_id": SPARE_ID,
            "version": 1,
            "report_id": SPARE_ID,
        },
        "checks": {"positive_data_acceptance": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_wsgi("/api/schema/", APP, config=CONFIG)


@schemathesis.serializer("application/x-ndjson")
def ndjson_body(context, value) -> bytes:
    """The ingest endpoint's NDJSON body is documented as text: sent as generated (lone surrogates and all)."""
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else json.dumps(value).encode()


WRITE_KEY_PATHS = {"/api/v1/sources/{slug}/ingest": "Bearer", "/write": "Token", "/api/v2/write": "Token"}


@pytest.fixture
def world(db, settings, tmp_path):
    """An editor with an API token; a source with data, a write key, a spare key, an upload; a dashboard."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # As Django's test client does: the in-process requests must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    user = user_create(username="fuzzer", role="editor")
    _, token = api_token_create(user=user, name="fuzz")
    ApiToken.objects.create(id=SPARE_ID, user=user, name="spare", key_prefix="spare", key_hash=key_digest("spare"))
    source, write_key = source_with_key(slug=SLUG)
    SourceWriteKey.objects.create(
        id=SPARE_ID, source=source, name="spare", key_prefix="spare", key_hash=key_digest("spare-key")
    )
    FileUpload.objects.create(
        id=SPARE_ID, source=source, file="uploads/old.csv", original_name="old.csv", payload_format="csv",
        status=UploadStatus.FAILED, error="the worker stopped",
    )  # fmt: skip
    now = datetime.now(UTC)
    for device in ("d1", "d2"):
        series_id = series_create(source=source, metric="temperature", device=device, facility="f1")
        points_store(series_id, [(now - timedelta(minutes=minute), 20.0 + minute) for minute in range(30)])
    dashboard = dashboard_create(organization=organization_get(), owner=user, document=dashboard_document())
    Dashboard.objects.filter(pk=dashboard.pk).update(uid=DASHBOARD_UID)
    settings.REPORT_FILES_ROOT = tmp_path / "reports"
    report = report_create(organization=organization_get(), owner=user, data={
        "name": "Fuzz", "dashboard": DASHBOARD_UID, "formats": ["csv"], "recipients": {"users": ["fuzzer"]},
        "time_range": {"start": "-1h", "end": "now"}})  # fmt: skip
    Report.objects.filter(pk=report.pk).update(id=SPARE_ID)  # foreign keys are checked at commit: move them too
    Report.recipient_users.through.objects.filter(report_id=report.pk).update(report_id=SPARE_ID)
    try:
        yield {"token": token, "write_key": write_key}
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZED,
)
def test_api_answers_as_its_schema_says(case, world):
    scheme = WRITE_KEY_PATHS.get(case.operation.path)
    credentials = f"{scheme} {world['write_key']}" if scheme else f"Bearer {world['token']}"
    with transaction.atomic():
        case.call_and_validate(headers={"Authorization": credentials})
        transaction.set_rollback(True)
