"""Writes for sources: create, edit, pause; write keys (create, revoke, authenticate); schema versions."""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics_platform.field_errors import FieldError
from analytics_platform.json_text import UNSTORABLE_TEXT_MESSAGE, unstorable_text_path
from analytics_platform.keys import key_digest
from apps.access.models import Organization
from apps.audit.services import audit_record
from apps.sources.models import SchemaChange, SchemaMode, Source, SourceKind, SourceSchema, SourceWriteKey
from apps.sources.schemas import SchemaDefinitionError, schema_breaking_changes, schema_definition_clean

WRITE_KEY_PREFIX = "swk_"
_DISPLAY_PREFIX_LENGTH = 12
# Authentication answers from memory for this long, so a revoked key stops working within this many seconds
# while a busy agent's thousands of requests cost one database lookup per interval.
WRITE_KEY_CACHE_SECONDS = 5.0
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class SourceError(FieldError):
    """A source change was refused; `field` names the offending input, `status` the HTTP status to answer with."""


class SchemaBreakingChange(SourceError):
    """A new schema version would break senders and was not declared breaking."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(
            "breaking",
            "This version is not compatible with the current one: "
            + "; ".join(reasons)
            + '. Fix the definition, or send "breaking": true to make it a breaking version on purpose.',
            status=409,
        )
        self.reasons = reasons


@dataclass(frozen=True, slots=True)
class WriteKeyGrant:
    """What an authenticated write key may do: write to one source."""

    key_id: int
    source_id: int


def write_key_create(
    *, source: Source, name: str, created_by: AbstractBaseUser | None = None
) -> tuple[SourceWriteKey, str]:
    """Create a write key; returns it and the raw secret, which is never stored and cannot be shown again."""
    if not name.strip():
        raise SourceError("name", "Give the key a name that says where it is used.")
    raw_key = WRITE_KEY_PREFIX + secrets.token_urlsafe(32)
    key = SourceWriteKey.objects.create(
        source=source,
        name=name.strip(),
        key_prefix=raw_key[:_DISPLAY_PREFIX_LENGTH],
        key_hash=key_digest(raw_key),
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    audit_record(
        action="write_key.created",
        actor=_user_or_none(created_by),
        organization=source.organization_id,
        obj=key,
        details={"source": source.slug, "key_prefix": key.key_prefix},
    )
    return key, raw_key


def write_key_revoke(*, key: SourceWriteKey) -> SourceWriteKey:
    """Revoke a key; agents using it are refused within WRITE_KEY_CACHE_SECONDS."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        source = key.source
        audit_record(
            action="write_key.revoked",
            organization=source.organization_id,
            obj=key,
            details={"source": source.slug, "key_prefix": key.key_prefix},
        )
    _write_key_cache.pop(key.key_hash, None)
    return key


_write_key_cache: dict[str, tuple[float, WriteKeyGrant | None]] = {}
_write_key_cache_lock = threading.Lock()
_last_used_written: dict[int, float] = {}


def write_key_authenticate(*, raw_key: str) -> WriteKeyGrant | None:
    """The grant for a raw key, or None if it is unknown or revoked (answers from a short in-process cache)."""
    if not raw_key.startswith(WRITE_KEY_PREFIX):
        return None
    digest = key_digest(raw_key)
    now = time.monotonic()
    cached = _write_key_cache.get(digest)
    if cached is not None and now - cached[0] < WRITE_KEY_CACHE_SECONDS:
        grant = cached[1]
    else:
        row = (
            SourceWriteKey.objects.filter(key_hash=digest, revoked_at__isnull=True)
            .values_list("id", "source_id")
            .first()
        )
        grant = WriteKeyGrant(key_id=row[0], source_id=row[1]) if row else None
        with _write_key_cache_lock:
            if len(_write_key_cache) > 10_000:
                _write_key_cache.clear()
            _write_key_cache[digest] = (now, grant)
    if grant is not None and now - _last_used_written.get(grant.key_id, -1e9) > _LAST_USED_RESOLUTION.total_seconds():
        _last_used_written[grant.key_id] = now
        SourceWriteKey.objects.filter(id=grant.key_id).update(last_used_at=timezone.now())
    return grant


def write_key_cache_clear() -> None:
    """Forget cached key lookups (tests, and after bulk revocation)."""
    _write_key_cache.clear()
    _last_used_written.clear()


# Connection settings the platform derives itself (apps/ingestion/connectors): on a shared broker or cluster, a
# chosen client id or consumer group could take over another tenant's session or partitions.
_DERIVED_SETTINGS = {
    SourceKind.MQTT: {"client_id": "the MQTT client id"},
    SourceKind.KAFKA: {"group_id": "the Kafka consumer group"},
}


def mqtt_topic_prefixes(*, organization: Organization) -> list[str]:
    """The topic prefixes an organisation's MQTT sources may subscribe under: its own, and any the operator
    approved for it in MQTT_TOPIC_ALLOWLIST."""
    own = settings.MQTT_TOPIC_PREFIX.format(organization=organization.slug)
    return [own, *settings.MQTT_TOPIC_ALLOWLIST.get(organization.slug, [])]


def _mqtt_topic_clean(*, topic: Any, organization: Organization) -> str:
    if not isinstance(topic, str) or not topic.strip():
        raise SourceError("config.topic", 'An MQTT source needs a topic filter, e.g. "plant/+/telemetry".')
    topic = topic.strip()
    if "#" in topic[:-1] or any(("+" in part and part != "+") for part in topic.split("/")):
        raise SourceError(
            "config.topic", f"{topic!r} is not a valid MQTT topic filter (+ and # fill whole levels, # only last)."
        )
    prefixes = mqtt_topic_prefixes(organization=organization)
    allowed = " or ".join(repr(prefix) for prefix in prefixes)
    if topic.split("/")[0] in ("#", "+", ""):
        raise SourceError(
            "config.topic",
            f"{topic!r} would subscribe at the root of the shared broker, to every organisation's messages; "
            f"start the filter with {allowed}.",
            status=403,
        )
    if topic.startswith("$"):
        raise SourceError("config.topic", "topics starting with '$' are the broker's own; subscribe to your devices'.")
    if not any(topic.startswith(prefix) for prefix in prefixes):
        raise SourceError(
            "config.topic",
            f"{topic!r} is outside this organisation's topics on the shared broker: start the filter with {allowed} "
            "(an operator can approve other prefixes with MQTT_TOPIC_ALLOWLIST).",
            status=403,
        )
    return topic


def kafka_topic_prefixes(*, organization: Organization) -> list[str]:
    """The prefixes an organisation's Kafka topic names start with: its own, and any the operator approved for it
    in KAFKA_TOPIC_ALLOWLIST."""
    own = settings.KAFKA_TOPIC_PREFIX.format(organization=organization.slug)
    return [own, *settings.KAFKA_TOPIC_ALLOWLIST.get(organization.slug, [])]


# Kafka's own rule for topic names; a leading '^' would make the consumer subscribe to a regular expression.
_KAFKA_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def _kafka_topics_clean(*, topics: Any, organization: Organization) -> list[str]:
    if not isinstance(topics, list) or not topics or not all(isinstance(topic, str) and topic for topic in topics):
        raise SourceError("config.topics", 'A Kafka source needs "topics": ["name", ...].')
    prefixes = kafka_topic_prefixes(organization=organization)
    allowed = " or ".join(repr(prefix) for prefix in prefixes)
    cleaned = []
    for topic in (topic.strip() for topic in topics):
        if not _KAFKA_TOPIC_NAME.match(topic) or topic in (".", ".."):
            raise SourceError(
                "config.topics",
                f"{topic!r} is not a Kafka topic name (letters, digits, '.', '_' and '-'; no patterns), e.g. "
                f"{prefixes[0]}orders.",
            )
        if not any(topic.startswith(prefix) for prefix in prefixes):
            raise SourceError(
                "config.topics",
                f"{topic!r} is outside this organisation's topics on the shared cluster: start the name with "
                f"{allowed} (an operator can approve other prefixes with KAFKA_TOPIC_ALLOWLIST).",
                status=403,
            )
        cleaned.append(topic)
    return cleaned


def connector_config_problem(*, source: Source) -> str | None:
    """Why a source's saved connection settings may not be used as they are (topics outside its organisation's
    prefix, saved before that rule or before an operator narrowed an allow-list), as '<field>: <reason>', or None.
    Connectors check it before they subscribe, not only the API on save. A client or group id stored before the
    platform derived them is left out of the check: the connectors ignore it (docs/security.md)."""
    derived = _DERIVED_SETTINGS.get(source.kind, {})
    config = source.config
    if isinstance(config, dict):
        config = {key: value for key, value in config.items() if key not in derived}
    try:
        _config_clean(kind=source.kind, config=config, organization=source.organization)
    except SourceError as error:
        return f"{error.field}: {error.message}"
    return None


def _config_clean(*, kind: str, config: Any, organization: Organization) -> dict[str, Any]:
    """Check connection settings for the kind; MQTT topic filters and Kafka topics lie under the organisation's
    prefix (docs/security.md, "Tenant isolation of connector settings")."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise SourceError("config", "must be a JSON object.")
    at = unstorable_text_path(config, "config")
    if at is not None:
        raise SourceError(at, UNSTORABLE_TEXT_MESSAGE)
    for key, what in _DERIVED_SETTINGS.get(kind, {}).items():
        if key in config:
            raise SourceError(
                f"config.{key}",
                f"{what} is set by the platform (one per source, so no source can join another's); remove it.",
            )
    if kind == SourceKind.MQTT:
        topic = _mqtt_topic_clean(topic=config.get("topic"), organization=organization)
        payload_format = config.get("format", "json")
        if payload_format not in ("json", "line"):
            raise SourceError("config.format", 'must be "json" or "line".')
        qos = config.get("qos", 1)
        if qos not in (0, 1):
            raise SourceError("config.qos", "must be 0 or 1 (1 is the default: at least once).")
        return {**config, "topic": topic, "format": payload_format, "qos": qos}
    if kind == SourceKind.KAFKA:
        topics = config.get("topics") or ([config["topic"]] if isinstance(config.get("topic"), str) else None)
        topics = _kafka_topics_clean(topics=topics, organization=organization)
        payload_format = config.get("format", "json")
        if payload_format not in ("json", "line"):
            raise SourceError("config.format", 'must be "json" or "line".')
        return {**config, "topics": list(topics), "format": payload_format}
    return config


def _retention_clean(changes: dict[str, Any]) -> None:
    """Refuse a per-source retention longer than the server allows: on shared partitions and chunks, one
    source's long retention would keep everyone's old data from being dropped."""
    from apps.storage.selectors import retention_override_limits

    limits = retention_override_limits()
    for field_name, limit in limits.items():
        days = changes.get(field_name)
        if days is not None and isinstance(days, int) and days > limit:
            raise SourceError(
                field_name,
                f"at most {limit} days on this server (its retention for this tier, or the operator's "
                "STORAGE_SOURCE_RETENTION_MAX_DAYS_* setting); leave it empty for the server's default.",
            )


_SLUG_TAKEN = "A source with slug {slug!r} already exists in this organisation; pick another."


@transaction.atomic
def source_create(
    *,
    organization: Organization,
    name: str,
    slug: str,
    kind: str = SourceKind.HTTP,
    schema_mode: str = SchemaMode.INFER,
    schema_definition: dict | None = None,
    config: dict | None = None,
    created_by: AbstractBaseUser | None = None,
    **options: Any,
) -> tuple[Source, str]:
    """Create a source with schema version 1 and a first write key; returns the source and the raw key."""
    if kind not in SourceKind.values:
        raise SourceError("kind", f"must be one of {', '.join(SourceKind.values)}.")
    if schema_mode not in SchemaMode.values:
        raise SourceError("schema_mode", f"must be one of {', '.join(SchemaMode.values)}.")
    # Only the organisation's own sources count: another tenant's slug must be no business (and no oracle) of ours.
    if Source.objects.filter(organization=organization, slug=slug).exists():
        raise SourceError("slug", _SLUG_TAKEN.format(slug=slug), status=409)
    cleaned_config = _config_clean(kind=kind, config=config, organization=organization)
    _retention_clean(options)
    try:
        definition = schema_definition_clean(schema_definition, mode=schema_mode)
    except SchemaDefinitionError as error:
        raise SourceError(error.field, error.message) from error
    try:
        with transaction.atomic():
            source = Source.objects.create(
                organization=organization, name=name, slug=slug, kind=kind, config=cleaned_config, **options
            )
    except IntegrityError as error:
        raise SourceError("slug", _SLUG_TAKEN.format(slug=slug), status=409) from error
    SourceSchema.objects.create(
        source=source,
        version=1,
        mode=schema_mode,
        definition=definition,
        change=SchemaChange.INITIAL,
        created_by=_user_or_none(created_by),
    )
    audit_record(
        action="source.created",
        actor=_user_or_none(created_by),
        obj=source,
        details={"kind": kind, "config": cleaned_config, "schema_mode": schema_mode},
    )
    _, raw_key = write_key_create(source=source, name="default", created_by=created_by)
    return source, raw_key


def _user_or_none(user: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return user if user is not None and user.is_authenticated else None


def source_update(*, source: Source, **changes: Any) -> Source:
    """Edit name, config, enabled, retention and limits; the slug and kind are fixed once data exists."""
    editable = {
        "name", "enabled", "config", "raw_retention_days", "rollup_1m_retention_days", "rollup_1h_retention_days",
        "rollup_1d_retention_days", "rate_limit_points_per_second", "max_series",
    }  # fmt: skip
    for field_name in changes:
        if field_name not in editable:
            raise SourceError(field_name, f"cannot be changed here; editable: {', '.join(sorted(editable))}.")
    if "config" in changes:
        changes["config"] = _config_clean(kind=source.kind, config=changes["config"], organization=source.organization)
    _retention_clean(changes)
    before = {field_name: getattr(source, field_name) for field_name in changes}
    for field_name, value in changes.items():
        setattr(source, field_name, value)
    source.full_clean(exclude=["organization", "slug"])
    source.save()
    changed = {name: {"from": before[name], "to": value} for name, value in changes.items() if before[name] != value}
    if changed:
        audit_record(action="source.changed", obj=source, details={"changes": changed})
    return source


def source_set_enabled(*, source: Source, enabled: bool) -> Source:
    """Pause (writes refused with 409, connectors stop) or resume a source."""
    if source.enabled != enabled:
        source.enabled = enabled
        source.save(update_fields=["enabled", "updated_at"])
        audit_record(action="source.resumed" if enabled else "source.paused", obj=source)
    return source


@transaction.atomic
def schema_version_create(
    *,
    source: Source,
    mode: str,
    definition: dict | None,
    breaking: bool = False,
    note: str = "",
    created_by: AbstractBaseUser | None = None,
) -> SourceSchema:
    """Add a schema version. Compatible changes go through; a breaking one must say `breaking=True` (else 409)."""
    if mode not in SchemaMode.values:
        raise SourceError("mode", f"must be one of {', '.join(SchemaMode.values)}.")
    try:
        cleaned = schema_definition_clean(definition, mode=mode)
    except SchemaDefinitionError as error:
        raise SourceError(error.field, error.message) from error
    current = SourceSchema.objects.select_for_update().filter(source=source).order_by("-version").first()
    if current is None:
        version, change = 1, SchemaChange.INITIAL
    else:
        reasons = schema_breaking_changes(old_mode=current.mode, old=current.definition, new_mode=mode, new=cleaned)
        if reasons and not breaking:
            raise SchemaBreakingChange(reasons)
        version, change = current.version + 1, (SchemaChange.BREAKING if reasons else SchemaChange.COMPATIBLE)
    return SourceSchema.objects.create(
        source=source, version=version, mode=mode, definition=cleaned, change=change, note=note,
        created_by=_user_or_none(created_by),
    )  # fmt: skip
