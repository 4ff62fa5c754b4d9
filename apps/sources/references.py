"""How a source is named in URLs, queries, live subscriptions, dashboards and alert rules.

A source slug is unique within its organisation only (docs/access.md, "Source slugs"), so a slug is always
resolved among the sources the caller may see: a token is bound to one organisation and most people belong to
one, so the slug alone names one source. Someone who can see sources with the same slug in several organisations
names one as `<organization>/<slug>` (`?organization=<slug>` on `/api/v1/sources/<slug>/...` URLs); a bare slug
that names more than one is refused with a 400 saying so, never answered from an arbitrary one of them. Sources
the caller cannot see are never counted, so the answer tells nothing about other tenants.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, QuerySet

SEPARATOR = "/"
# "<organization slug>/<source slug>", each at most 100 characters.
SOURCE_REFERENCE_MAX_LENGTH = 201


class SourceAmbiguous(Exception):
    """A bare slug names sources in several organisations the caller can see; `message` says how to pick one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def source_reference_split(reference: str) -> tuple[str | None, str]:
    """'<organization>/<slug>' or '<slug>' as (organisation slug or None, source slug)."""
    organization, separator, slug = reference.strip().rpartition(SEPARATOR)
    return (organization or None) if separator else None, slug


def source_reference_q(reference: str, *, path: str = "") -> Q:
    """The reference as a Q object on Source (or on a model reaching it through `path`, e.g. "source__")."""
    organization, slug = source_reference_split(reference)
    condition = Q(**{f"{path}slug": slug})
    if organization is not None:
        condition &= Q(**{f"{path}organization__slug": organization})
    return condition


def source_ambiguity_message(*, slug: str, organizations: Iterable[str], how: str) -> str:
    """What a caller who sees `slug` in several organisations is told (only organisations they can see)."""
    names = sorted(set(organizations))
    return f"you can see a source {slug!r} in {len(names)} organisations ({', '.join(names)}); {how}"


def source_reference_resolve(*, candidates: QuerySet, reference: str, field: str = "source", how: str = ""):
    """The one source among `candidates` (those the caller may see) that `reference` names, or None; raises
    SourceAmbiguous when a bare slug names sources of several organisations."""
    matches = list(candidates.filter(source_reference_q(reference)).select_related("organization")[:20])
    if len(matches) <= 1:
        return matches[0] if matches else None
    organization_slugs = [source.organization.slug for source in matches]
    _, slug = source_reference_split(reference)
    how = how or f"name one as '<organization>/{slug}', e.g. '{sorted(organization_slugs)[0]}/{slug}'."
    raise SourceAmbiguous(field, source_ambiguity_message(slug=slug, organizations=organization_slugs, how=how))
