"""Builders for ingestion tests: sources with write keys, and reading back what was stored."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.db import connection

from apps.ingestion.validation import RecordValidator
from apps.sources.models import Source
from apps.sources.schemas import schema_definition_clean
from apps.sources.services import source_create
from tests.factories import DEFAULT_ORGANIZATION_SLUG, organization_get


def source_with_key(
    *,
    slug: str = "plant",
    kind: str = "http",
    schema_mode: str = "infer",
    schema: dict | None = None,
    config: dict | None = None,
    organization: str = DEFAULT_ORGANIZATION_SLUG,
    **options,
) -> tuple[Source, str]:
    """A source made through the service (schema v1 and a first write key); returns it and the raw key.

    Test data is stamped in early 2026, further back than the default raw retention (7 days on plain PostgreSQL),
    and ingest refuses points older than a source keeps raw: these sources keep ten years unless told otherwise.
    The bound itself is tested with sources that set it (tests/ingestion/test_hostile_input.py).
    """
    options.setdefault("raw_retention_days", 3650)
    return source_create(
        organization=organization_get(slug=organization),
        name=slug.title(),
        slug=slug,
        kind=kind,
        schema_mode=schema_mode,
        schema_definition=schema,
        config=config,
        **options,
    )


def stored_points(*, source: Source) -> list[tuple[str, dict, datetime, float, int | None]]:
    """Every stored point of a source as (metric, labels, time, value, schema version), in a stable order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.metric, s.labels, p.time, p.value, sc.version FROM points p "
            "JOIN storage_series s ON s.id = p.series_id "
            "LEFT JOIN sources_sourceschema sc ON sc.id = p.schema_id "
            "WHERE s.source_id = %s ORDER BY s.metric, s.labels::text, p.time",
            [source.pk],
        )
        rows = cursor.fetchall()
    # Django's psycopg adapter hands jsonb back as text.
    return [
        (metric, json.loads(labels) if isinstance(labels, str) else labels, moment, value, version)
        for metric, labels, moment, value, version in rows
    ]


def infer_validator() -> RecordValidator:
    """A validator for the default inferring schema, refusing times more than an hour ahead."""
    return RecordValidator(
        mode="infer", definition=schema_definition_clean(None, mode="infer"), max_future=timedelta(hours=1)
    )
