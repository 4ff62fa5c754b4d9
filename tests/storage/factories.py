"""Builders for storage tests: sources, series and points."""

from __future__ import annotations

from datetime import datetime

from apps.sources.models import Source
from apps.storage.services import points_write, series_key, series_resolve
from tests.factories import DEFAULT_ORGANIZATION_SLUG, organization_get


def source_create(*, slug: str = "plant", organization: str = DEFAULT_ORGANIZATION_SLUG, **fields) -> Source:
    """A source owned by `organization` (the shared test organisation by default)."""
    return Source.objects.create(
        name=fields.pop("name", slug.title()), slug=slug, organization=organization_get(slug=organization), **fields
    )


def series_create(*, source: Source, metric: str, **labels: str) -> int:
    """The id of a series, created if missing."""
    key = series_key(source_id=source.pk, metric=metric, labels=labels)
    return series_resolve(keys=[key])[key]


def points_store(series_id: int, points: list[tuple[datetime, float]]):
    """Write (time, value) points to one series."""
    return points_write(points=[(series_id, moment, value) for moment, value in points])
