"""Connector providers: one MQTT or Kafka connector spec per enabled source, registered with the supervisor.

Importing this module registers the providers (the `run_connectors` command does). A spec's fingerprint covers
everything the connector was built from, so editing a source's config, pausing it or moving the broker replaces
the running connector within one supervisor poll.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from apps.ingestion.connectors.kafka import KafkaConnector
from apps.ingestion.connectors.mqtt import MqttConnector
from apps.sources.models import Source, SourceKind
from apps.sources.services import connector_config_problem
from worker.connectors import ConnectorSpec, connector_provider_register

logger = logging.getLogger(__name__)

_kafka_unconfigured_warned = False
_refused_warned: dict[int, str] = {}


def connector_fingerprint(*, source: Source, endpoint: str) -> str:
    """A digest of what a connector is built from: kind, config, enabled and the broker address."""
    material = {"kind": source.kind, "config": source.config, "enabled": source.enabled, "endpoint": endpoint}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _enabled_sources(kind: str) -> list[Source]:
    """Enabled sources of the kind whose settings pass today's rules; one warning per source and reason for the
    others (e.g. Kafka topics saved before they had to lie under the organisation's prefix): no connector
    subscribes outside its organisation's namespace, however old its settings."""
    # The supervisor's thread lives for days: drop a connection the database closed instead of failing forever.
    close_old_connections()
    usable = []
    for source in Source.objects.filter(kind=kind, enabled=True).select_related("organization").order_by("id"):
        problem = connector_config_problem(source=source)
        if problem is None:
            _refused_warned.pop(source.id, None)
            usable.append(source)
        elif _refused_warned.get(source.id) != problem:
            _refused_warned[source.id] = problem
            logger.warning(
                "%s source %s/%s is not consumed until its settings are fixed: %s",
                kind, source.organization.slug, source.slug, problem,
            )  # fmt: skip
    return usable


def _connector_name(source: Source) -> str:
    """A source's name in connector keys, logs and lag metrics: slugs are unique per organisation only."""
    return f"{source.organization.slug}/{source.slug}"


def _connector_key(kind: str, source: Source) -> str:
    """The supervisor's key for a source's connector, equal to the connector's own `key`."""
    return f"{kind}:{_connector_name(source)}"


@connector_provider_register
def mqtt_connector_specs() -> list[ConnectorSpec]:
    """A connector spec per enabled MQTT source."""
    url = settings.MQTT_URL
    return [
        ConnectorSpec(
            key=_connector_key("mqtt", source),
            fingerprint=connector_fingerprint(source=source, endpoint=url),
            build=functools.partial(
                _mqtt_build, source_id=source.id, slug=_connector_name(source), config=source.config, url=url
            ),
        )
        for source in _enabled_sources(SourceKind.MQTT)
    ]


@connector_provider_register
def kafka_connector_specs() -> list[ConnectorSpec]:
    """A connector spec per enabled Kafka source; none (and one warning) while KAFKA_BOOTSTRAP_SERVERS is empty."""
    global _kafka_unconfigured_warned
    servers = settings.KAFKA_BOOTSTRAP_SERVERS
    sources = _enabled_sources(SourceKind.KAFKA)
    if not servers:
        if sources and not _kafka_unconfigured_warned:
            logger.warning(
                "KAFKA_BOOTSTRAP_SERVERS is empty: %d Kafka source(s) (%s) are not consumed until it is set.",
                len(sources),
                ", ".join(source.slug for source in sources),
            )
            _kafka_unconfigured_warned = True
        return []
    _kafka_unconfigured_warned = False
    return [
        ConnectorSpec(
            key=_connector_key("kafka", source),
            fingerprint=connector_fingerprint(source=source, endpoint=servers),
            build=functools.partial(
                _kafka_build, source_id=source.id, slug=_connector_name(source), config=source.config, servers=servers
            ),
        )
        for source in sources
    ]


def _mqtt_build(*, source_id: int, slug: str, config: dict[str, Any], url: str) -> MqttConnector:
    return MqttConnector(source_id=source_id, slug=slug, config=dict(config), url=url)


def _kafka_build(*, source_id: int, slug: str, config: dict[str, Any], servers: str) -> KafkaConnector:
    return KafkaConnector(source_id=source_id, slug=slug, config=dict(config), bootstrap_servers=servers)
