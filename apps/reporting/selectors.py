"""Reads for reports: what a user may see and change, runs, and the recipients one may preview as."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import OuterRef, QuerySet, Subquery

from apps.access.models import MembershipRole
from apps.access.selectors import organization_ids_for_user
from apps.access.sharing import EDIT, object_share_level
from apps.reporting.models import Report, ReportRun

EDITOR_ROLES = (MembershipRole.ADMIN, MembershipRole.EDITOR)


def report_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Report]:
    """Reports of the user's organisations (all for superusers), by name, with their last run's status and time."""
    last_run = ReportRun.objects.filter(report=OuterRef("pk")).order_by("-created_at", "-id")
    reports = (
        Report.objects.select_related("organization", "owner", "dashboard")
        .annotate(
            last_run_id=Subquery(last_run.values("id")[:1]),
            last_run_status=Subquery(last_run.values("status")[:1]),
            last_run_at=Subquery(last_run.values("created_at")[:1]),
        )
        .order_by("name", "id")
    )
    if not user.is_superuser:
        reports = reports.filter(organization_id__in=organization_ids_for_user(user=user))
    return reports


def report_get_for_user(*, user: AbstractBaseUser, report_id: int) -> Report | None:
    """The report if the user may see it, else None (so other tenants' reports look like missing ones)."""
    return report_list_for_user(user=user).filter(pk=report_id).first()


def report_can_manage(*, user: AbstractBaseUser, report: Report) -> bool:
    """Whether the user may change, send, delete and share the report by their role (organisation admin or editor,
    or superuser)."""
    if user.is_superuser:
        return True
    return report.organization_id in organization_ids_for_user(user=user, roles=EDITOR_ROLES)


def report_can_edit(*, user: AbstractBaseUser, report: Report) -> bool:
    """Whether the user may change and send the report: by their role, or because it was shared with them (or a team
    of theirs) to edit, while they are a member of its organisation (apps/access/sharing.py)."""
    if report_can_manage(user=user, report=report):
        return True
    if report.organization_id not in organization_ids_for_user(user=user):
        return False
    return object_share_level(user=user, obj=report) == EDIT


def report_is_admin(*, user: AbstractBaseUser, report: Report) -> bool:
    """Organisation admins (and superusers) may preview a report as any recipient."""
    if user.is_superuser:
        return True
    return report.organization_id in organization_ids_for_user(user=user, roles=(MembershipRole.ADMIN,))


def report_run_list(*, report: Report) -> QuerySet[ReportRun]:
    """A report's runs, newest first, with their deliveries."""
    return report.runs.select_related("requested_by").prefetch_related("deliveries").order_by("-created_at", "-id")


def report_preview_choices(*, user: AbstractBaseUser, report: Report) -> list[tuple[str, str]]:
    """The recipients the user may preview as: themselves always; others and externals per role.

    Previewing as someone shows that person's data, so it is for organisation admins (who manage policies);
    the owner may preview the external addresses' view, which is their own.
    """
    choices = [(f"user:{user.get_username()}", f"{user.get_username()} (you)")]
    admin = report_is_admin(user=user, report=report)
    if admin:
        from apps.reporting.runs import report_recipients

        for recipient in report_recipients(report):
            if recipient.user is not None and recipient.user.pk != user.pk:
                choices.append((f"user:{recipient.user.get_username()}", recipient.user.get_username()))
    if report.recipient_emails and report.send_emails_as_owner and (admin or report.owner_id == user.pk):
        for email in report.recipient_emails:
            choices.append((f"email:{email}", f"{email} (sees what {report.owner.get_username()} sees)"))
    return choices


def preview_principal(*, user: AbstractBaseUser, report: Report, recipient: str) -> AbstractBaseUser | None:
    """The user whose data scope renders `recipient` ("user:<name>" or "email:<address>"), if `user` may preview it."""
    if recipient not in dict(report_preview_choices(user=user, report=report)):
        return None
    kind, _, value = recipient.partition(":")
    if kind == "email":
        return report.owner
    return get_user_model().objects.filter(username=value, is_active=True).first()
