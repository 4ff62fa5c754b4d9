"""Reads for sources."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from apps.access.models import MembershipRole
from apps.access.selectors import organization_ids_for_user
from apps.sources.models import Source, SourceSchema

MANAGER_ROLES = (MembershipRole.ADMIN, MembershipRole.EDITOR)


def source_get_by_slug(*, slug: str) -> Source | None:
    """The source with this slug, or None."""
    return Source.objects.filter(slug=slug).first()


def source_list() -> list[Source]:
    """Every source, by name."""
    return list(Source.objects.order_by("name"))


def source_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Source]:
    """Sources of the user's organisations (all of them for superusers), by name."""
    sources = Source.objects.select_related("organization").order_by("name")
    if user.is_superuser:
        return sources
    return sources.filter(organization_id__in=organization_ids_for_user(user=user))


def source_ids_for_user(*, user: AbstractBaseUser) -> set[int] | None:
    """Ids of the sources the user may read; None means every source (superusers)."""
    if user.is_superuser:
        return None
    return set(
        Source.objects.filter(organization_id__in=organization_ids_for_user(user=user)).values_list("id", flat=True)
    )


def source_can_manage(*, user: AbstractBaseUser, source: Source) -> bool:
    """Whether the user may edit the source, its keys and schemas (org admin or editor, or superuser)."""
    if user.is_superuser:
        return True
    return source.organization_id in organization_ids_for_user(user=user, roles=MANAGER_ROLES)


def schema_current(*, source_id: int) -> SourceSchema | None:
    """The newest schema version of a source."""
    return SourceSchema.objects.filter(source_id=source_id).order_by("-version").first()


def schema_get(*, source_id: int, version: int) -> SourceSchema | None:
    """One schema version of a source."""
    return SourceSchema.objects.filter(source_id=source_id, version=version).first()
