"""MQTT and Kafka sources become connector specs: enabling, pausing and editing a source changes what runs."""

from __future__ import annotations

import logging
import signal

import pytest
from django.core.management import call_command

from apps.ingestion.connectors import providers
from apps.ingestion.connectors.kafka import KafkaConnector
from apps.ingestion.connectors.mqtt import MqttConnector
from apps.sources.services import source_set_enabled, source_update
from tests.ingestion.factories import source_with_key
from worker.connectors import ConnectorSupervisor, connector_providers

# The providers close stale connections (they run for days in the supervisor), which a test transaction forbids.
pytestmark = pytest.mark.django_db(transaction=True)


def _specs(provider) -> dict[str, str]:
    return {spec.key: spec.fingerprint for spec in provider()}


def test_mqtt_specs_follow_enabling_pausing_and_editing(settings):
    settings.MQTT_URL = "mqtt://127.0.0.1:1883"
    source, _ = source_with_key(slug="plant", kind="mqtt", config={"topic": "test-org/plant/+/telemetry"})
    source_with_key(slug="web", kind="http")
    first = _specs(providers.mqtt_connector_specs)
    assert list(first) == ["mqtt:test-org/plant"]
    assert _specs(providers.mqtt_connector_specs) == first  # nothing changed: same fingerprint, keeps running

    source_update(source=source, config={"topic": "test-org/plant/+/telemetry", "format": "line"})
    edited = _specs(providers.mqtt_connector_specs)
    assert edited["mqtt:test-org/plant"] != first["mqtt:test-org/plant"]

    settings.MQTT_URL = "mqtt://broker.internal:1883"
    assert _specs(providers.mqtt_connector_specs)["mqtt:test-org/plant"] != edited["mqtt:test-org/plant"]

    source_set_enabled(source=source, enabled=False)
    assert _specs(providers.mqtt_connector_specs) == {}
    source_set_enabled(source=source, enabled=True)
    assert list(_specs(providers.mqtt_connector_specs)) == ["mqtt:test-org/plant"]


def test_mqtt_spec_builds_a_connector_for_the_source(settings):
    settings.MQTT_URL = "mqtt://user:secret@127.0.0.1:1884"
    source, _ = source_with_key(
        slug="plant", kind="mqtt", config={"topic": "test-org/plant/#", "qos": 0, "topic_label": True}
    )
    (spec,) = providers.mqtt_connector_specs()
    connector = spec.build()
    assert isinstance(connector, MqttConnector)
    assert (connector.source_id, connector.topic, connector.qos, connector.topic_label) == (
        source.id,
        "test-org/plant/#",
        0,
        True,
    )
    assert (connector.broker.host, connector.broker.port, connector.broker.username) == ("127.0.0.1", 1884, "user")
    assert connector.client_id.startswith(f"analytics-source-{source.id}-")


def test_sources_of_two_organisations_with_one_slug_each_get_their_connector(settings):
    """Slugs are unique per organisation: keyed by slug alone, one organisation's connector replaced the other's."""
    settings.KAFKA_BOOTSTRAP_SERVERS = "kafka-1:9092"
    acme, _ = source_with_key(slug="plant", kind="mqtt", organization="acme", config={"topic": "acme/plant/#"})
    beta, _ = source_with_key(slug="plant", kind="mqtt", organization="beta", config={"topic": "beta/plant/#"})
    source_with_key(slug="orders", kind="kafka", organization="acme", config={"topics": ["acme.orders"]})
    source_with_key(slug="orders", kind="kafka", organization="beta", config={"topics": ["beta.orders"]})
    mqtt = {spec.key: spec.build() for spec in providers.mqtt_connector_specs()}
    assert sorted(mqtt) == ["mqtt:acme/plant", "mqtt:beta/plant"]
    assert (mqtt["mqtt:acme/plant"].source_id, mqtt["mqtt:beta/plant"].source_id) == (acme.id, beta.id)
    kafka = {spec.key: spec.build() for spec in providers.kafka_connector_specs()}
    assert sorted(kafka) == ["kafka:acme/orders", "kafka:beta/orders"]
    assert kafka["kafka:beta/orders"].topics == ["beta.orders"]
    # The connectors' own keys (their logs and lag metrics) tell the organisations apart too.
    assert [connector.key for connector in (*mqtt.values(), *kafka.values())] == [*sorted(mqtt), *sorted(kafka)]
    assert kafka["kafka:beta/orders"].consumer_config()["client.id"] == "analytics-beta.orders"


def test_kafka_specs_need_bootstrap_servers_and_warn_once(settings, caplog, monkeypatch):
    monkeypatch.setattr(providers, "_kafka_unconfigured_warned", False)
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    source, _ = source_with_key(slug="orders", kind="kafka", config={"topics": ["test-org.orders"]})
    with caplog.at_level(logging.WARNING, logger=providers.__name__):
        assert providers.kafka_connector_specs() == []
        assert providers.kafka_connector_specs() == []
    warnings = [record for record in caplog.records if "KAFKA_BOOTSTRAP_SERVERS" in record.getMessage()]
    assert len(warnings) == 1
    assert "orders" in warnings[0].getMessage()

    settings.KAFKA_BOOTSTRAP_SERVERS = "kafka-1:9092"
    first = _specs(providers.kafka_connector_specs)
    assert list(first) == ["kafka:test-org/orders"]
    (spec,) = providers.kafka_connector_specs()
    connector = spec.build()
    assert isinstance(connector, KafkaConnector)
    assert connector.consumer_config()["group.id"] == f"analytics-source-{source.id}"
    assert connector.consumer_config()["bootstrap.servers"] == "kafka-1:9092"

    settings.KAFKA_BOOTSTRAP_SERVERS = "kafka-1:9092,kafka-2:9092"
    assert _specs(providers.kafka_connector_specs)["kafka:test-org/orders"] != first["kafka:test-org/orders"]
    source_update(source=source, config={"topics": ["test-org.orders", "test-org.refunds"]})
    assert _specs(providers.kafka_connector_specs)["kafka:test-org/orders"] != first["kafka:test-org/orders"]
    source_set_enabled(source=source, enabled=False)
    assert providers.kafka_connector_specs() == []


def test_run_connectors_supervises_the_mqtt_and_kafka_providers(monkeypatch):
    seen: list[list] = []
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's own SIGINT handling
    monkeypatch.setattr(ConnectorSupervisor, "serve", lambda self, *, stop: seen.append(self.providers))
    call_command("run_connectors", poll_seconds=0.1)
    assert providers.mqtt_connector_specs in seen[0]
    assert providers.kafka_connector_specs in seen[0]
    assert providers.mqtt_connector_specs in connector_providers()


def test_a_source_whose_saved_topics_break_todays_rules_gets_no_connector(settings, caplog):
    """Settings saved before topics had to lie under the organisation's prefix (or before an operator narrowed an
    allow-list) are checked again before a connector subscribes: no connector reads another namespace."""
    settings.KAFKA_BOOTSTRAP_SERVERS = "kafka-1:9092"
    settings.MQTT_URL = "mqtt://127.0.0.1:1883"
    orders, _ = source_with_key(slug="orders", kind="kafka", config={"topics": ["test-org.orders"]})
    plant, _ = source_with_key(slug="plant", kind="mqtt", config={"topic": "test-org/plant/#"})
    assert list(_specs(providers.kafka_connector_specs)) == ["kafka:test-org/orders"]
    # A group id stored before the platform derived it is ignored, as the connector ignores it.
    type(orders).objects.filter(pk=orders.pk).update(config={"topics": ["test-org.orders"], "group_id": "old"})
    assert list(_specs(providers.kafka_connector_specs)) == ["kafka:test-org/orders"]
    # As an older release saved them (the API refuses these now): written past the service.
    type(orders).objects.filter(pk=orders.pk).update(config={"topics": ["orders"]})
    type(plant).objects.filter(pk=plant.pk).update(config={"topic": "other-org/plant/#"})
    with caplog.at_level(logging.WARNING, logger=providers.logger.name):
        assert _specs(providers.kafka_connector_specs) == {}
        assert _specs(providers.mqtt_connector_specs) == {}
        assert _specs(providers.kafka_connector_specs) == {}  # warned once per source and reason
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2, warnings
    assert "test-org/orders is not consumed" in warnings[0]
    assert "config.topics" in warnings[0]
    assert "test-org/plant is not consumed" in warnings[1]
    assert "config.topic:" in warnings[1]
    # Fixed through the service: consumed again.
    source_update(source=orders, config={"topics": ["test-org.orders"]})
    assert list(_specs(providers.kafka_connector_specs)) == ["kafka:test-org/orders"]
