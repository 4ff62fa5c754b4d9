"""Ingestion fixtures: the storage cleanup for tests that commit, and one real Kafka-protocol broker per session."""

from collections.abc import Iterator

import pytest

from tests.kafka_broker import TansuBroker
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (re-exported fixture)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[TansuBroker]:
    """A Tansu broker shared by the session's Kafka tests (each uses its own topics and consumer group)."""
    broker = TansuBroker()
    broker.start()
    yield broker
    broker.close()
