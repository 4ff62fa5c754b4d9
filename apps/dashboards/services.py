"""Writes for dashboards: create (and import), save with optimistic concurrency, restore, duplicate, delete.

Every write goes through a validated document (`apps.dashboards.documents`) and leaves a DashboardVersion.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from analytics_platform.field_errors import FieldError
from apps.access.models import Organization
from apps.dashboards.documents import dashboard_document_clean
from apps.dashboards.models import Annotation, AnnotationKind, Dashboard, DashboardVersion, Panel
from apps.dashboards.selectors import dashboard_document, dashboard_version_get

__all__ = [
    "DashboardError",
    "annotation_create",
    "annotation_delete",
    "annotation_update",
    "dashboard_create",
    "dashboard_delete",
    "dashboard_document",
    "dashboard_duplicate",
    "dashboard_restore",
    "dashboard_save",
]


class DashboardError(FieldError):
    """A dashboard change was refused; `field` names the offending input, `status` the HTTP status to answer with."""


def _user_or_none(user: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return user if user is not None and user.is_authenticated else None


def _apply(dashboard: Dashboard, document: dict[str, Any]) -> None:
    for field_name in ("title", "folder", "tags", "variables", "time_range", "refresh"):
        setattr(dashboard, field_name, document[field_name])


def _panels_write(dashboard: Dashboard, document: dict[str, Any]) -> None:
    dashboard.panels.all().delete()
    Panel.objects.bulk_create(
        Panel(
            dashboard=dashboard,
            key=panel["key"],
            title=panel["title"],
            type=panel["type"],
            queries=panel["queries"],
            options=panel["options"],
            grid=panel["grid"],
            position=position,
        )
        for position, panel in enumerate(document["panels"])
    )


def _snapshot(dashboard: Dashboard, document: dict[str, Any], user: AbstractBaseUser | None, message: str) -> None:
    DashboardVersion.objects.create(
        dashboard=dashboard,
        version=dashboard.version,
        document=document,
        message=message[:500],
        created_by=_user_or_none(user),
    )


@transaction.atomic
def dashboard_create(
    *, organization: Organization, owner: AbstractBaseUser | None, document: Any, message: str = "Created"
) -> Dashboard:
    """Create a dashboard from a document (also how imports arrive); it starts at version 1."""
    cleaned = dashboard_document_clean(document)
    dashboard = Dashboard(organization=organization, owner=_user_or_none(owner), version=1)
    _apply(dashboard, cleaned)
    dashboard.save()
    _panels_write(dashboard, cleaned)
    _snapshot(dashboard, cleaned, owner, message)
    return dashboard


@transaction.atomic
def dashboard_save(
    *,
    dashboard: Dashboard,
    document: Any,
    user: AbstractBaseUser | None,
    message: str = "",
    expected_version: int | None = None,
) -> Dashboard:
    """Replace the dashboard with `document` as a new version; 409 if `expected_version` is no longer current."""
    cleaned = dashboard_document_clean(document)
    # Lock the row so two saves cannot both pass the version check and write the same version number.
    current = Dashboard.objects.select_for_update().get(pk=dashboard.pk)
    if expected_version is not None and expected_version != current.version:
        raise DashboardError(
            "version",
            f"the dashboard changed since you opened it (you have version {expected_version}, it is now at "
            f"{current.version}). Reload it, reapply your changes and save again.",
            status=409,
        )
    _apply(current, cleaned)
    current.version += 1
    current.save()
    _panels_write(current, cleaned)
    _snapshot(current, cleaned, user, message)
    return current


def dashboard_restore(
    *, dashboard: Dashboard, version: int, user: AbstractBaseUser | None, expected_version: int | None = None
) -> Dashboard:
    """Save an earlier version's document as a new version (history is never rewritten)."""
    saved = dashboard_version_get(dashboard=dashboard, version=version)
    if saved is None:
        raise DashboardError("version", f"this dashboard has no version {version}.", status=404)
    return dashboard_save(
        dashboard=dashboard,
        document=saved.document,
        user=user,
        message=f"Restored version {version}",
        expected_version=expected_version,
    )


def dashboard_duplicate(*, dashboard: Dashboard, user: AbstractBaseUser | None, title: str | None = None) -> Dashboard:
    """A copy of the dashboard in the same organisation, owned by `user`, titled "<title> (copy)" unless given."""
    document = dashboard_document(dashboard=dashboard)
    document["title"] = title.strip() if title and title.strip() else f"{dashboard.title} (copy)"[:200]
    return dashboard_create(
        organization=dashboard.organization,
        owner=user,
        document=document,
        message=f"Duplicated from {dashboard.uid} v{dashboard.version}",
    )


def dashboard_delete(*, dashboard: Dashboard) -> None:
    """Delete the dashboard with its panels and versions."""
    dashboard.delete()


ANNOTATION_TEXT_MAX = 1000
ANNOTATION_TAGS_MAX = 20
ANNOTATION_TAG_MAX_LENGTH = 50


def _annotation_clean(
    *, dashboard: Dashboard, time: datetime, time_end: datetime | None, text: str, tags: Any, panel_key: str
) -> tuple[str, list[str], str]:
    text = (text or "").strip()
    if not text:
        raise DashboardError("text", "write what happened (at most 1000 characters).")
    if len(text) > ANNOTATION_TEXT_MAX:
        raise DashboardError("text", f"at most {ANNOTATION_TEXT_MAX} characters; this is {len(text)}.")
    if time_end is not None and time_end < time:
        raise DashboardError("time_end", "the end of a range must not be before its start (time).")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise DashboardError("tags", 'a list of words, e.g. ["deploy", "maintenance"].')
    cleaned_tags = list(dict.fromkeys(tag.strip().lower() for tag in tags if tag.strip()))
    if len(cleaned_tags) > ANNOTATION_TAGS_MAX:
        raise DashboardError("tags", f"at most {ANNOTATION_TAGS_MAX} tags.")
    if any(len(tag) > ANNOTATION_TAG_MAX_LENGTH for tag in cleaned_tags):
        raise DashboardError("tags", f"each tag at most {ANNOTATION_TAG_MAX_LENGTH} characters.")
    panel_key = (panel_key or "").strip()
    if panel_key and not dashboard.panels.filter(key=panel_key).exists():
        raise DashboardError("panel", f"this dashboard has no panel {panel_key!r}; leave it empty for every panel.")
    return text, cleaned_tags, panel_key


def annotation_create(
    *,
    dashboard: Dashboard,
    time: datetime,
    text: str,
    time_end: datetime | None = None,
    tags: list[str] | None = None,
    panel_key: str = "",
    kind: str = AnnotationKind.MANUAL,
    source_ref: str = "",
    created_by: AbstractBaseUser | None = None,
) -> Annotation:
    """Add an annotation (an instant, or a range with `time_end`) to one panel or, with no panel key, to all."""
    text, tags, panel_key = _annotation_clean(
        dashboard=dashboard, time=time, time_end=time_end, text=text, tags=tags, panel_key=panel_key
    )
    if kind not in AnnotationKind.values:
        raise DashboardError("kind", f"must be one of {', '.join(AnnotationKind.values)}.")
    return Annotation.objects.create(
        dashboard=dashboard,
        panel_key=panel_key,
        time=time,
        time_end=time_end,
        text=text,
        tags=tags,
        kind=kind,
        source_ref=source_ref[:200],
        created_by=_user_or_none(created_by),
    )


def annotation_update(*, annotation: Annotation, **changes: Any) -> Annotation:
    """Change an annotation's time, end, text, tags or panel (what is not given stays)."""
    merged = {
        "time": changes.get("time", annotation.time),
        "time_end": changes.get("time_end", annotation.time_end),
        "text": changes.get("text", annotation.text),
        "tags": changes.get("tags", annotation.tags),
        "panel_key": changes.get("panel_key", annotation.panel_key),
    }
    text, tags, panel_key = _annotation_clean(dashboard=annotation.dashboard, **merged)
    annotation.time, annotation.time_end = merged["time"], merged["time_end"]
    annotation.text, annotation.tags, annotation.panel_key = text, tags, panel_key
    annotation.save()
    return annotation


def annotation_delete(*, annotation: Annotation) -> None:
    """Delete an annotation."""
    annotation.delete()
