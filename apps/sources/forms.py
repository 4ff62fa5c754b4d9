"""Forms of the Sources pages: one per source kind (its connection settings as fields, never a raw JSON box),
a write key, and the edit of one dead letter. Rules stay in services; these turn fields into service arguments
and put a service's refusal back on the field it names."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.sources.models import SchemaMode, Source, SourceKind
from apps.sources.serializers import MAX_INTEGER, MAX_RETENTION_DAYS
from apps.sources.services import kafka_topic_prefixes, mqtt_topic_prefixes

PAYLOAD_FORMATS = [("json", "JSON (one object per message)"), ("line", "InfluxDB line protocol")]
PRECISIONS = [("ns", "nanoseconds"), ("us", "microseconds"), ("ms", "milliseconds"), ("s", "seconds")]
LINE_PROTOCOL_METRICS = [
    ("measurement.field", "measurement.field (cpu.usage_idle)"),
    ("field", "field only (usage_idle)"),
]
KIND_HELP = {
    SourceKind.HTTP: "Agents POST JSON or NDJSON to the ingest endpoint, or InfluxDB line protocol to /api/v2/write "
    "(Telegraf and InfluxDB clients work as they are).",
    SourceKind.MQTT: "The connector subscribes to a topic filter on the MQTT broker and stores each message.",
    SourceKind.KAFKA: "The connector reads topics in a consumer group of its own and commits offsets after storing.",
    SourceKind.FILE: "Upload CSV or Parquet files on the source's page to backfill history.",
}
# A service error's field, as the form names it.
SERVICE_FIELDS = {
    "config.topic": "topic",
    "config.topics": "topics",
    "config.format": "format",
    "config.qos": "qos",
    "schema_mode": "schema_mode",
    "slug": "slug",
    "kind": None,
}


def _limit_field(label: str, help_text: str, maximum: int = MAX_INTEGER) -> forms.IntegerField:
    return forms.IntegerField(label=label, required=False, min_value=1, max_value=maximum, help_text=help_text)


class SourceBaseForm(forms.Form):
    """Fields every kind has."""

    kind: str = SourceKind.HTTP
    config_fields: tuple[str, ...] = ()

    name = forms.CharField(max_length=200, help_text="What people call it, e.g. 'Plant 2 sensors'.")
    rate_limit_points_per_second = _limit_field(
        "Rate limit (points per second)", "Empty uses the server's default (INGEST_SOURCE_RATE_LIMIT)."
    )
    max_series = _limit_field("Most series", "Empty uses the server's default (INGEST_MAX_SERIES_PER_SOURCE).")

    def __init__(self, *args: Any, source: Source | None = None, organizations=(), **kwargs: Any) -> None:
        self.source = source
        self._organizations = list(organizations)
        if source is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_from(source)
        super().__init__(*args, **kwargs)
        if source is None:
            self.fields["slug"] = forms.SlugField(
                max_length=100, help_text="Used in URLs and queries, e.g. 'plant-2'. Cannot be changed later."
            )
            self.fields["schema_mode"] = forms.ChoiceField(
                choices=SchemaMode.choices,
                initial=SchemaMode.INFER,
                help_text="Infer: numbers become metrics, text becomes labels. Strict: only declared fields "
                "(declare them as a schema version through the API).",
            )
            organizations = self._organizations
            if len(organizations) > 1:
                self.fields["organization"] = forms.ChoiceField(
                    choices=[(organization.slug, organization.name) for organization in organizations]
                )
            self.order_fields(["name", "slug", "organization", "schema_mode", *self.config_fields])
        else:
            self.fields["enabled"] = forms.BooleanField(
                required=False, help_text="Paused sources refuse writes and stop their connector."
            )
            for tier, label in (("raw", "raw points"), ("rollup_1m", "1-minute rollups"),
                                ("rollup_1h", "hourly rollups"), ("rollup_1d", "daily rollups")):  # fmt: skip
                self.fields[f"{tier}_retention_days"] = _limit_field(
                    f"Keep {label} (days)", "Empty uses the global default.", MAX_RETENTION_DAYS
                )

    @staticmethod
    def initial_from(source: Source) -> dict[str, Any]:
        """The form's values for an existing source."""
        config = dict(source.config or {})
        initial: dict[str, Any] = {
            "name": source.name,
            "enabled": source.enabled,
            "rate_limit_points_per_second": source.rate_limit_points_per_second,
            "max_series": source.max_series,
            "raw_retention_days": source.raw_retention_days,
            "rollup_1m_retention_days": source.rollup_1m_retention_days,
            "rollup_1h_retention_days": source.rollup_1h_retention_days,
            "rollup_1d_retention_days": source.rollup_1d_retention_days,
            **config,
        }
        if isinstance(config.get("topics"), list):
            initial["topics"] = ", ".join(config["topics"])
        return initial

    def config(self) -> dict[str, Any]:
        """The kind's connection settings from the cleaned fields (the existing config's other keys are kept)."""
        config = dict(self.source.config or {}) if self.source is not None else {}
        for name in self.config_fields:
            value = self.cleaned_data.get(name)
            if value in (None, "") and name not in ("topic_label",):
                config.pop(name, None)
            else:
                config[name] = value
        return config

    def service_error(self, field: str, message: str) -> None:
        """Show a service's refusal on the field it names (or above the form)."""
        name = SERVICE_FIELDS.get(field, field if field in self.fields else None)
        self.add_error(name if name in self.fields else None, f"{message}" if name else f"{field}: {message}")


class HttpSourceForm(SourceBaseForm):
    kind = SourceKind.HTTP
    line_protocol_metric = forms.ChoiceField(
        choices=LINE_PROTOCOL_METRICS,
        required=False,
        initial="measurement.field",
        label="Line protocol metric names",
        help_text="How a line-protocol field becomes a metric name.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.source is not None:
            del self.fields["line_protocol_metric"]  # part of the schema, which changes by new versions


class MqttSourceForm(SourceBaseForm):
    kind = SourceKind.MQTT
    config_fields = ("topic", "format", "qos", "precision", "topic_label")
    topic = forms.CharField(
        max_length=500, help_text="A topic filter, e.g. plant/+/telemetry (+ one level, # the rest)."
    )
    format = forms.ChoiceField(choices=PAYLOAD_FORMATS, initial="json", label="Message format")
    qos = forms.TypedChoiceField(
        choices=[(1, "1: at least once (recommended)"), (0, "0: at most once")], coerce=int, initial=1, label="QoS"
    )
    precision = forms.ChoiceField(
        choices=PRECISIONS, initial="ns", required=False, help_text="Timestamp unit of line-protocol messages."
    )
    topic_label = forms.BooleanField(required=False, label="Add the topic as a label")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        organization = self.source.organization if self.source is not None else next(iter(self._organizations), None)
        if organization is not None:
            prefixes = " or ".join(mqtt_topic_prefixes(organization=organization))
            self.fields["topic"].help_text = (
                f"A topic filter under your organisation's topics on the shared broker: it starts with {prefixes}, "
                f"e.g. {mqtt_topic_prefixes(organization=organization)[0]}plant/+/telemetry (+ one level, # the rest)."
            )


class KafkaSourceForm(SourceBaseForm):
    kind = SourceKind.KAFKA
    config_fields = ("topics", "format", "auto_offset_reset", "precision", "topic_label")
    topics = forms.CharField(
        max_length=1000, help_text="Comma-separated topic names, e.g. plant-telemetry, erp-orders."
    )
    format = forms.ChoiceField(choices=PAYLOAD_FORMATS, initial="json", label="Message format")
    auto_offset_reset = forms.ChoiceField(
        choices=[("earliest", "earliest (read the backlog)"), ("latest", "latest (new messages only)")],
        initial="earliest",
        label="Start a new group at",
    )
    precision = forms.ChoiceField(
        choices=PRECISIONS, initial="ns", required=False, help_text="Timestamp unit of line-protocol messages."
    )
    topic_label = forms.BooleanField(required=False, label="Add the topic as a label")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        organization = self.source.organization if self.source is not None else next(iter(self._organizations), None)
        if organization is not None:
            prefixes = kafka_topic_prefixes(organization=organization)
            self.fields["topics"].help_text = (
                f"Comma-separated topic names under your organisation's topics on the shared cluster: each starts "
                f"with {' or '.join(prefixes)}, e.g. {prefixes[0]}telemetry, {prefixes[0]}orders."
            )

    def clean_topics(self) -> list[str]:
        topics = [topic.strip() for topic in self.cleaned_data["topics"].split(",") if topic.strip()]
        if not topics:
            raise forms.ValidationError("Name at least one topic.")
        return topics


class FileSourceForm(SourceBaseForm):
    kind = SourceKind.FILE


SOURCE_FORMS: dict[str, type[SourceBaseForm]] = {
    SourceKind.HTTP: HttpSourceForm,
    SourceKind.MQTT: MqttSourceForm,
    SourceKind.KAFKA: KafkaSourceForm,
    SourceKind.FILE: FileSourceForm,
}


class WriteKeyForm(forms.Form):
    name = forms.CharField(max_length=100, label="Key name", help_text="Where it is used, e.g. 'telegraf-plant-2'.")


class DeadLetterEditForm(forms.Form):
    raw = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        strip=False,
        label="Record",
        help_text="Correct the record, then replay it. It is stored, or kept here with the new reason.",
    )
