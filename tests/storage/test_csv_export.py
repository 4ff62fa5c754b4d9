"""POST /api/v1/query/csv: label values come from whoever writes data, so no cell may start a formula; plain
numbers are kept as they are (the platform's one rule, analytics_platform/spreadsheet_cells.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from apps.access.services import api_token_create
from tests.storage.factories import points_store, series_create, source_create

DEVICES = ['=HYPERLINK("http://x","y")', "\n=cmd", "\t@SUM(A1)", "-5", "+7", "-1+2", "ok"]


@pytest.mark.django_db
def test_label_cells_that_would_run_are_quoted_and_plain_numbers_kept(api_client, user):
    source = source_create(slug="plant")
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    for device in DEVICES:
        points_store(series_create(source=source, metric="balance", device=device), [(moment, -12.5)])
    token = api_token_create(user=user, name="api")[1]
    response = api_client.post("/api/v1/query/csv", {"source": "plant", "metric": "balance", "aggregation": "raw",
                               "start": "-1h"}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert response.status_code == 200, response.content
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert sorted(row["device"] for row in rows) == sorted(
        ['\'=HYPERLINK("http://x","y")', "'\n=cmd", "'\t@SUM(A1)", "-5", "+7", "'-1+2", "ok"]
    )
    assert {row["value"] for row in rows} == {"-12.5"}  # numbers are written as numbers, untouched
