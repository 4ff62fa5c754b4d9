"""Tenant isolation of connection settings on the shared MQTT broker and Kafka cluster, and bounded retention.

Each test failed before: any topic filter (even `#`) was accepted, client ids and consumer groups came from the
source's config, and retention overrides had no upper bound."""

from __future__ import annotations

import pytest

from apps.ingestion.connectors.kafka import KafkaConnector, kafka_group_id
from apps.ingestion.connectors.mqtt import MqttConnector, mqtt_client_id
from apps.sources.models import Source
from apps.storage.backends import backend_for
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db


def _create(user, **fields):
    body = {"name": "Line", "slug": "line", **fields}
    return api_client_for(user).post("/api/v1/sources/", body, format="json")


@pytest.mark.parametrize("topic", ["#", "+/telemetry", "+/#", "other-org/#", "plant/+/telemetry", "$SYS/#"])
def test_mqtt_filters_outside_the_organisations_prefix_are_refused(editor, topic):
    response = _create(editor, kind="mqtt", config={"topic": topic})
    assert response.status_code in (400, 403), response.json()
    assert response.json()["field"] == "config.topic"
    assert "test-org/" in response.json()["detail"] or "$" in topic
    assert not Source.objects.filter(slug="line").exists()


@pytest.mark.parametrize("topic", ["test-org/#", "test-org/plant/+/telemetry", "test-org/+"])
def test_mqtt_filters_under_the_prefix_are_accepted(editor, topic):
    assert _create(editor, kind="mqtt", config={"topic": topic}).status_code == 201


def test_an_operator_approved_prefix_is_accepted(editor, settings):
    settings.MQTT_TOPIC_ALLOWLIST = {"test-org": ["legacy/line-3/"]}
    assert _create(editor, kind="mqtt", config={"topic": "legacy/line-3/#"}).status_code == 201
    assert _create(editor, slug="l2", kind="mqtt", config={"topic": "legacy/#"}).status_code == 403


def test_an_edit_cannot_move_the_filter_to_the_root(editor):
    _create(editor, kind="mqtt", config={"topic": "test-org/#"})
    response = api_client_for(editor).patch("/api/v1/sources/line/", {"config": {"topic": "#"}}, format="json")
    assert response.status_code == 403
    assert response.json()["field"] == "config.topic"
    assert Source.objects.get(slug="line").config["topic"] == "test-org/#"


@pytest.mark.parametrize(
    "topics",
    [["orders"], ["other-org.orders"], ["test-org.orders", "rival.orders"], ["^test-org\\..*"], ["test-org/orders"],
     ["test-orgorders"]],
)  # fmt: skip
def test_kafka_topics_outside_the_organisations_prefix_are_refused_on_the_field(editor, topics):
    response = _create(editor, kind="kafka", config={"topics": topics})
    assert response.status_code in (400, 403), response.json()
    assert response.json()["field"] == "config.topics"
    assert "test-org." in response.json()["detail"]
    assert not Source.objects.filter(slug="line").exists()


def test_kafka_topics_under_the_prefix_or_an_approved_one_are_accepted(editor, settings):
    created = _create(editor, kind="kafka", config={"topics": ["test-org.orders", "test-org.line-3_raw"]})
    assert created.status_code == 201, created.json()
    assert created.json()["config"]["topics"] == ["test-org.orders", "test-org.line-3_raw"]
    settings.KAFKA_TOPIC_ALLOWLIST = {"test-org": ["legacy-erp."]}
    response = api_client_for(editor).patch(
        "/api/v1/sources/line/", {"config": {"topics": ["legacy-erp.invoices"]}}, format="json"
    )
    assert response.status_code == 200, response.json()
    # An edit cannot move the source onto another organisation's topics either.
    moved = {"config": {"topics": ["beta.orders"]}}
    response = api_client_for(editor).patch("/api/v1/sources/line/", moved, format="json")
    assert response.status_code == 403
    assert response.json()["field"] == "config.topics"
    assert Source.objects.get(slug="line").config["topics"] == ["legacy-erp.invoices"]


def test_the_kafka_form_names_the_prefix_and_refuses_other_topics_on_the_field(editor):
    from django.test import Client

    browser = Client()
    browser.force_login(editor)
    assert "test-org." in browser.get("/sources/new/kafka/").content.decode()
    fields = {"name": "Line", "slug": "line", "schema_mode": "infer", "topics": "rival.orders", "format": "json",
              "auto_offset_reset": "latest"}  # fmt: skip
    page = browser.post("/sources/new/kafka/", fields)
    assert page.status_code == 400
    assert "outside this organisation" in page.context["form"].errors["topics"][0]
    assert not Source.objects.filter(slug="line").exists()


@pytest.mark.parametrize(("kind", "config", "field"), [
    ("mqtt", {"topic": "test-org/#", "client_id": "analytics-source-1-deadbeef"}, "config.client_id"),
    ("kafka", {"topics": ["test-org.orders"], "group_id": "analytics-source-1"}, "config.group_id"),
])  # fmt: skip
def test_client_ids_and_consumer_groups_cannot_be_chosen(editor, kind, config, field):
    response = _create(editor, kind=kind, config=config)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert "set by the platform" in response.json()["detail"]


def test_client_ids_and_groups_are_derived_from_the_source_whatever_its_config_says():
    # A config stored before these checks may still carry them: the connectors ignore them.
    mqtt_config = {"topic": "test-org/#", "client_id": "victims-session"}
    mqtt = MqttConnector(source_id=41, slug="line", config=mqtt_config, url="mqtt://127.0.0.1:1883")
    assert mqtt.client_id == mqtt_client_id(source_id=41, config=mqtt_config)
    assert mqtt.client_id.startswith("analytics-source-41-")
    assert mqtt_client_id(source_id=42, config=mqtt_config) != mqtt.client_id
    kafka = KafkaConnector(
        source_id=41, slug="line", config={"topics": ["t"], "group_id": "victims-group"}, bootstrap_servers="k:9092"
    )
    assert kafka.group_id == kafka_group_id(source_id=41) == "analytics-source-41"


@pytest.fixture
def production_retention_bound(settings):
    """The default bound: overrides may only shorten the server's retention (the test settings allow ten years)."""
    settings.STORAGE_SOURCE_RETENTION_MAX_DAYS = dict.fromkeys(settings.STORAGE_SOURCE_RETENTION_MAX_DAYS, 0)


@pytest.mark.usefixtures("production_retention_bound")
def test_retention_overrides_are_bounded_by_the_server(editor, settings):
    limit = backend_for().retention_days()["points"]
    _create(editor)
    client = api_client_for(editor)
    too_long = client.patch("/api/v1/sources/line/", {"raw_retention_days": limit + 1}, format="json")
    assert too_long.status_code == 400
    assert too_long.json()["field"] == "raw_retention_days"
    assert f"at most {limit} days" in too_long.json()["detail"]
    assert Source.objects.get(slug="line").raw_retention_days is None
    assert client.patch("/api/v1/sources/line/", {"raw_retention_days": limit}, format="json").status_code == 200
    edit = client.patch("/api/v1/sources/line/", {"rollup_1d_retention_days": 100_000}, format="json")
    assert edit.status_code == 400
    assert edit.json()["field"] == "rollup_1d_retention_days"
    settings.STORAGE_SOURCE_RETENTION_MAX_DAYS = {**settings.STORAGE_SOURCE_RETENTION_MAX_DAYS, "points": limit + 30}
    assert client.patch("/api/v1/sources/line/", {"raw_retention_days": limit + 30}, format="json").status_code == 200


@pytest.mark.usefixtures("production_retention_bound")
def test_an_old_unbounded_override_cannot_keep_everyones_partitions(editor):
    _create(editor)
    Source.objects.filter(slug="line").update(raw_retention_days=36_500)  # stored before the bound existed
    backend = backend_for()
    assert backend.max_retention_days("points") == backend.retention_days()["points"]
