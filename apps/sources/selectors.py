"""Reads for sources."""

from __future__ import annotations

from apps.sources.models import Source


def source_get_by_slug(*, slug: str) -> Source | None:
    """The source with this slug, or None."""
    return Source.objects.filter(slug=slug).first()


def source_list() -> list[Source]:
    """Every source, by name."""
    return list(Source.objects.order_by("name"))
