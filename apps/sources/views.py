"""The Sources pages (outside /admin/): list, create and edit a source with a form per kind, its live figures,
schema versions, write keys, uploads with progress, and its dead letters to read, correct and replay.

Everyone in an organisation may look; organisation admins and editors change things (403 otherwise). Another
organisation's source is a 404, as in the API.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as ModelValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from analytics_platform.pagination import page_links
from apps.access.models import Organization
from apps.access.organization_views import ACTIVE_ORGANIZATION_SESSION_KEY
from apps.access.selectors import organization_ids_for_user
from apps.ingestion.api import source_stats
from apps.ingestion.models import DeadLetter, DeadLetterStatus, FileUpload
from apps.ingestion.services import (
    DeadLetterError,
    dead_letter_edit_replay,
    dead_letters_discard,
    dead_letters_replay,
    ingest_targets_forget,
)
from apps.ingestion.stats import stats_get
from apps.ingestion.uploads import upload_max_bytes
from apps.sources.forms import KIND_HELP, SOURCE_FORMS, DeadLetterEditForm, WriteKeyForm
from apps.sources.models import Source, SourceKind, SourceSchema
from apps.sources.selectors import MANAGER_ROLES, source_can_manage, source_list_for_user
from apps.sources.services import SourceError, source_create, source_update, write_key_create, write_key_revoke

SOURCES_PER_PAGE = 25
DEAD_LETTERS_PER_PAGE = 20


def _source(request: HttpRequest, slug: str, *, manage: bool = False) -> Source:
    """The source the page names. Slugs are unique per organisation: the pages' links carry `?organization=`; a
    bare slug the user sees in several organisations opens the active organisation's (the switcher's) source."""
    candidates = source_list_for_user(user=request.user).filter(slug=slug)
    organization = request.GET.get("organization")
    if organization:
        candidates = candidates.filter(organization__slug=organization)
    matches = list(candidates.order_by("organization__slug")[:20])
    active = request.session.get(ACTIVE_ORGANIZATION_SESSION_KEY)
    source = next((item for item in matches if item.organization.slug == active), matches[0] if matches else None)
    if source is None:
        raise Http404("No such source, or you cannot see it.")
    if manage and not source_can_manage(user=request.user, source=source):
        raise PermissionDenied("Only organisation admins and editors may change this source.")
    return source


def source_page_url(source: Source, name: str = "source-page") -> str:
    """A page of this source, naming its organisation (its slug alone may name sources of other organisations)."""
    return f"{reverse(name, kwargs={'slug': source.slug})}?{urlencode({'organization': source.organization.slug})}"


def _manager_organizations(user) -> list[Organization]:
    organizations = Organization.objects.order_by("name")
    if not user.is_superuser:
        organizations = organizations.filter(pk__in=organization_ids_for_user(user=user, roles=MANAGER_ROLES))
    return list(organizations)


def _forget(source: Source) -> None:
    ingest_targets_forget(source_id=source.id)


@login_required
def source_list(request: HttpRequest) -> HttpResponse:
    """Sources of the user's organisations with their live rate, last data and pending dead letters."""
    q = request.GET.get("q", "").strip()
    sources = source_list_for_user(user=request.user).annotate(
        pending_dead_letters=Count("dead_letters", filter=Q(dead_letters__status=DeadLetterStatus.PENDING))
    )
    if q:
        sources = sources.filter(Q(name__icontains=q) | Q(slug__icontains=q))
    page = Paginator(sources, SOURCES_PER_PAGE).get_page(request.GET.get("page"))
    stats = stats_get(source_ids=[source.id for source in page]) if page.object_list else {}
    rows = [{"source": source, "stats": stats.get(source.id)} for source in page]
    context = {
        "page": page,
        "rows": rows,
        "q": q,
        "links": page_links(page, {"q": q}),
        "can_create": bool(_manager_organizations(request.user)),
        "kinds": [(value, label, KIND_HELP[value]) for value, label in SourceKind.choices],
    }
    return render(request, "sources/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def source_new(request: HttpRequest, kind: str) -> HttpResponse:
    """Create a source of one kind with that kind's form; its first write key is shown once."""
    form_class = SOURCE_FORMS.get(kind)
    if form_class is None:
        raise Http404("No such source kind.")
    organizations = _manager_organizations(request.user)
    if not organizations:
        raise PermissionDenied("Only organisation admins and editors may create sources.")
    form = form_class(request.POST or None, organizations=organizations)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        organization = next((item for item in organizations if item.slug == data.get("organization")), organizations[0])
        schema = {}
        if data.get("line_protocol_metric"):
            schema["line_protocol_metric"] = data["line_protocol_metric"]
        try:
            source, raw_key = source_create(
                organization=organization,
                name=data["name"],
                slug=data["slug"],
                kind=form.kind,
                schema_mode=data["schema_mode"],
                schema_definition=schema or None,
                config=form.config(),
                created_by=request.user,
                rate_limit_points_per_second=data.get("rate_limit_points_per_second"),
                max_series=data.get("max_series"),
            )
        except SourceError as error:
            form.service_error(error.field, error.message)
        else:
            messages.success(request, f"Source '{source.name}' created. Copy its write key now: it is shown once.")
            return _detail(request, source, created_secret=raw_key, status=201)
    context = {"form": form, "kind": kind, "kind_label": SourceKind(kind).label, "kind_help": KIND_HELP[kind]}
    return render(request, "sources/form.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def source_edit(request: HttpRequest, slug: str) -> HttpResponse:
    """Edit a source's name, connection settings, limits, retention, or pause it."""
    source = _source(request, slug, manage=True)
    form = SOURCE_FORMS[source.kind](request.POST or None, source=source)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        changes = {name: data.get(name) for name in (
            "name", "enabled", "rate_limit_points_per_second", "max_series", "raw_retention_days",
            "rollup_1m_retention_days", "rollup_1h_retention_days", "rollup_1d_retention_days",
        )}  # fmt: skip
        if form.config_fields:
            changes["config"] = form.config()
        try:
            source_update(source=source, **changes)
        except SourceError as error:
            form.service_error(error.field, error.message)
        except ModelValidationError as error:
            for field, problems in error.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            _forget(source)
            messages.success(request, f"Source '{source.name}' saved.")
            return redirect(source_page_url(source))
    context = {"form": form, "source": source, "kind": source.kind, "kind_label": source.get_kind_display(),
               "kind_help": KIND_HELP[source.kind]}  # fmt: skip
    return render(request, "sources/form.html", context, status=400 if form.errors else 200)


def _detail(
    request: HttpRequest, source: Source, *, created_secret: str | None = None, key_form=None, status: int = 200
) -> HttpResponse:
    can_manage = source_can_manage(user=request.user, source=source)
    context = {
        "source": source,
        "can_manage": can_manage,
        "stats": source_stats(source),
        "config": sorted((source.config or {}).items()),
        "schemas": list(source.schemas.order_by("-version")[:20]),
        "write_keys": list(source.write_keys.order_by("revoked_at", "-created_at")) if can_manage else [],
        "key_form": key_form or WriteKeyForm(),
        "created_secret": created_secret,
        "uploads": list(FileUpload.objects.filter(source=source).order_by("-created_at", "-id")[:10]),
        "upload_max_mb": upload_max_bytes() // (1024 * 1024),
        "api_base": reverse("api:source-detail", kwargs={"slug": source.slug}),
    }
    return render(request, "sources/detail.html", context, status=status)


@login_required
def source_page(request: HttpRequest, slug: str) -> HttpResponse:
    """One source: live figures, settings, schema versions, write keys, uploads."""
    source = _source(request, slug)
    source = (
        Source.objects.select_related("organization")
        .prefetch_related(Prefetch("schemas", queryset=SourceSchema.objects.order_by("-version")))
        .get(pk=source.pk)
    )
    return _detail(request, source)


@login_required
@require_POST
def write_key_new(request: HttpRequest, slug: str) -> HttpResponse:
    """Create a write key; its secret is on this response only."""
    source = _source(request, slug, manage=True)
    form = WriteKeyForm(request.POST)
    if not form.is_valid():
        return _detail(request, source, key_form=form, status=400)
    try:
        key, raw_key = write_key_create(source=source, name=form.cleaned_data["name"], created_by=request.user)
    except SourceError as error:
        form.add_error("name", error.message)
        return _detail(request, source, key_form=form, status=400)
    messages.success(request, f"Write key '{key.name}' created. Copy it now: it is shown once.")
    return _detail(request, source, created_secret=raw_key)


@login_required
@require_POST
def write_key_revoke_page(request: HttpRequest, slug: str, key_id: int) -> HttpResponse:
    """Revoke a write key."""
    source = _source(request, slug, manage=True)
    key = source.write_keys.filter(pk=key_id).first()
    if key is None:
        raise Http404("No such write key on this source.")
    write_key_revoke(key=key)
    messages.success(request, f"Write key '{key.name}' revoked; agents using it are refused from now on.")
    return redirect(source_page_url(source))


def _pretty(raw: str) -> str:
    """A JSON record indented for reading and editing; anything else as it came."""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return raw


@login_required
def dead_letter_list(request: HttpRequest, slug: str) -> HttpResponse:
    """A source's refused records, newest first, with the reason, the record, and a form to correct and replay."""
    source = _source(request, slug)
    status = request.GET.get("status") or DeadLetterStatus.PENDING
    if status not in DeadLetterStatus.values:
        status = DeadLetterStatus.PENDING
    code = request.GET.get("code", "").strip()
    letters = DeadLetter.objects.filter(source=source, status=status)
    if code:
        letters = letters.filter(error_code=code)
    page = Paginator(letters.order_by("-last_received_at", "-id"), DEAD_LETTERS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    codes = (
        DeadLetter.objects.filter(source=source, status=status)
        .values_list("error_code")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    context = {
        "source": source,
        "page": page,
        "items": [
            {
                "letter": letter,
                "form": DeadLetterEditForm(initial={"raw": _pretty(letter.raw)}),
                "original": (letter.context or {}).get("original_raw"),
            }
            for letter in page
        ],
        "status": status,
        "statuses": DeadLetterStatus.choices,
        "code": code,
        "codes": list(codes),
        "can_manage": source_can_manage(user=request.user, source=source),
        "links": page_links(page, {"status": status, "code": code}),
    }
    return render(request, "sources/dead_letters.html", context)


def _back_to_letters(request: HttpRequest, source: Source) -> HttpResponse:
    target = request.POST.get("next") or ""
    if not target.startswith(reverse("source-dead-letters", kwargs={"slug": source.slug})):
        target = source_page_url(source, "source-dead-letters")
    return redirect(target)


@login_required
@require_POST
def dead_letter_replay_page(request: HttpRequest, slug: str, letter_id: int) -> HttpResponse:
    """Replay one letter, corrected in the form; say whether it was stored or why it is still refused."""
    source = _source(request, slug, manage=True)
    form = DeadLetterEditForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Record: write the record to replay (or discard the letter).")
        return _back_to_letters(request, source)
    raw = form.cleaned_data["raw"]
    letter = DeadLetter.objects.filter(source=source, id=letter_id).first()
    if letter is not None and _pretty(letter.raw) == raw:
        raw = letter.raw  # unchanged: replay the record exactly as it came
    try:
        letter = dead_letter_edit_replay(source=source, letter_id=letter_id, raw=raw, user=request.user)
    except DeadLetterError as error:
        messages.error(request, f"{error.field}: {error.message}")
        return _back_to_letters(request, source)
    if letter.status == DeadLetterStatus.REPLAYED:
        messages.success(request, f"Record {letter.id} stored.")
    else:
        field = f" ({letter.error_field})" if letter.error_field else ""
        messages.error(request, f"Record {letter.id} is still refused{field}: {letter.error_message} It stays here.")
    return _back_to_letters(request, source)


@login_required
@require_POST
def dead_letters_bulk_page(request: HttpRequest, slug: str, action: str) -> HttpResponse:
    """Replay every pending letter, or discard one (`id`) or all."""
    source = _source(request, slug, manage=True)
    ids: list[int] | None = None
    if request.POST.get("id", "").isdigit():
        ids = [int(request.POST["id"])]
    if action == "replay":
        outcome = dead_letters_replay(source=source, ids=ids, user=request.user)
        messages.success(request, f"Replayed: {outcome.replayed} stored, {outcome.still_failing} still refused.")
    elif action == "discard":
        count = dead_letters_discard(source=source, ids=ids, user=request.user)
        messages.success(request, f"Discarded {count} dead letter{'s' if count != 1 else ''}.")
    else:
        raise Http404("No such action.")
    return _back_to_letters(request, source)
