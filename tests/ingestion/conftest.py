"""Ingestion fixtures: the storage cleanup for tests that commit, one real Kafka-protocol broker per session, and a
database that refuses one kind of record."""

from collections.abc import Iterator

import pytest
from django.db import connection

from tests.kafka_broker import TansuBroker
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (re-exported fixture)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[TansuBroker]:
    """A Tansu broker shared by the session's Kafka tests (each uses its own topics and consumer group)."""
    broker = TansuBroker()
    broker.start()
    yield broker
    broker.close()


POISON_DEVICE = "poison"


@pytest.fixture
def database_refuses_poison(db) -> Iterator[str]:
    """PostgreSQL refuses (DataError) any new series whose device label is "poison": a record that passes every
    check of ours but that the database cannot store, standing in for the unforeseen. Yields the device name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION test_refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.labels->>'device' = 'poison' THEN "
            "RAISE EXCEPTION 'the database refuses this series' USING ERRCODE = 'data_exception'; END IF; "
            "RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_poison BEFORE INSERT ON storage_series FOR EACH ROW "
            "EXECUTE FUNCTION test_refuse_poison()"
        )
    try:
        yield POISON_DEVICE
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_refuse_poison ON storage_series")
            cursor.execute("DROP FUNCTION IF EXISTS test_refuse_poison()")
