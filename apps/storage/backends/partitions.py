"""Daily range partitions of `points` (plain PostgreSQL): created by the write that needs them, remembered only
once it commits, and forgotten when retention drops them in any process.

A write creates its partitions after taking the watermark row FOR SHARE (see PostgresBackend._write_begin): the one
lock order of every transaction that touches points, which keeps writes, the refresh and retention free of
deadlocks (docs/storage.md, "Partitions and the lock order"). Retention bumps `partition_epoch` on the watermark row
when it drops partitions; a process that reads a new epoch forgets the partitions it remembered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from psycopg import sql
from psycopg.errors import CheckViolation

logger = logging.getLogger(__name__)

PARTITION_NAME = re.compile(r"^points_p(\d{8})$")
# A write whose points span at most this many days gets every partition in its range; wider ones only their days.
_PARTITION_RANGE_DAYS = 7


def partition_name(day: date) -> str:
    return f"points_p{day:%Y%m%d}"


class DailyPartitions:
    """The partition half of PostgresBackend (a mixin: it uses the backend's `alias` and `connection`)."""

    def __init__(self, alias: str = "default") -> None:
        super().__init__(alias)
        # Days whose partition this process saw committed, valid while the partition epoch (bumped by every retention
        # run that drops partitions, in any process) is the one read with them.
        self._known_partitions: set[date] = set()
        self._partition_epoch: int | None = None

    def partition_epoch_install(self) -> None:
        """The partition epoch beside the watermark (idempotent; databases installed before it get it too)."""
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE storage_rollup_watermark "
                "ADD COLUMN IF NOT EXISTS partition_epoch bigint NOT NULL DEFAULT 0"
            )

    def partitions_ensure(self, *, start: date, end: date | None = None) -> list[str]:
        """Create daily partitions from `start` through `end` (default: STORAGE_PARTITION_DAYS_AHEAD ahead).

        Takes the watermark row FOR SHARE first, as every write does (see `_write_begin`), so it keeps the one lock
        order that cannot deadlock with the refresh and retention.
        """
        end = end or timezone.now().date() + timedelta(days=settings.STORAGE_PARTITION_DAYS_AHEAD)
        days = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            self._partition_epoch_read(cursor)
            return self._partitions_create(cursor, days)

    def _partition_epoch_read(self, cursor) -> tuple[datetime, datetime]:
        """(watermark, provisional bound), read FOR SHARE; forgets the known partitions if retention dropped some."""
        cursor.execute(
            "SELECT watermark, greatest(watermark, provisional), partition_epoch FROM storage_rollup_watermark "
            "FOR SHARE"
        )
        watermark, provisional, epoch = cursor.fetchone()
        if epoch != self._partition_epoch:
            self._known_partitions = set()
            self._partition_epoch = epoch
        return watermark, provisional

    def _partitions_create(self, cursor, days: Sequence[date]) -> list[str]:
        """Create the partitions of `days` that do not exist, in the caller's transaction (which holds the watermark
        row FOR SHARE); they are remembered only once it commits, so a rolled-back write never leaves a day
        remembered whose partition went with it.

        Each is created as a table of its own and then attached: ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on
        `points`, which lets writes and queries go on, where CREATE TABLE ... PARTITION OF takes ACCESS EXCLUSIVE
        until the write commits (that lock, taken inside a write, once deadlocked with the rollup refresh).
        """
        known = self._known_partitions
        missing = [day for day in days if day not in known]
        if not missing:
            return []
        # Serialise partition creation between processes; IF NOT EXISTS alone races.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('storage.points.partitions'))")
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'points'::regclass"
        )
        existing = {row[0] for row in cursor.fetchall()}
        created = []
        for day in missing:
            name = partition_name(day)
            if name in existing:
                continue
            lower = datetime(day.year, day.month, day.day, tzinfo=UTC)
            cursor.execute(
                sql.SQL("CREATE TABLE {} (LIKE points INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
                    sql.Identifier(name)
                )
            )
            cursor.execute(
                sql.SQL("ALTER TABLE points ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(name), sql.Literal(lower), sql.Literal(lower + timedelta(days=1))
                )
            )
            created.append(name)
        epoch = self._partition_epoch

        def remember() -> None:
            if self._partition_epoch == epoch:  # a retention run seen meanwhile may have dropped some of them
                self._known_partitions.update(missing)

        transaction.on_commit(remember, using=self.alias)
        return created

    def partitions_list(self) -> list[str]:
        """Names of the daily partitions, oldest first."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'points'::regclass ORDER BY c.relname"
            )
            return [row[0] for row in cursor.fetchall()]

    @staticmethod
    def _partition_days(moments: set[datetime]) -> list[date]:
        """The days a write needs partitions for: every day of its range, or only its own days when it spans more
        than a week (a backfill over years must not create a partition for every day in between)."""
        earliest = min(moments).astimezone(UTC).date()
        latest = max(moments).astimezone(UTC).date()
        if (latest - earliest).days <= _PARTITION_RANGE_DAYS:
            return [earliest + timedelta(days=offset) for offset in range((latest - earliest).days + 1)]
        return sorted({moment.astimezone(UTC).date() for moment in moments})

    def _write(self, points, schema_id, moments, store) -> tuple[int, int]:
        """As the base class, once more after forgetting the known partitions if one of them turned out missing
        (dropped behind the epoch's back, say by hand): a write never fails for a stale memory of partitions."""
        try:
            return super()._write(points, schema_id, moments, store)
        except IntegrityError as error:
            if not isinstance(error.__cause__, CheckViolation) or "no partition" not in str(error):
                raise
            logger.warning("a partition this process knew of is gone; creating it again")
            self._known_partitions = set()
            return super()._write(points, schema_id, moments, store)

    def partitions_drop_before(self, cursor, cutoff: date) -> list[str]:
        """Drop the partitions of days before `cutoff` and bump the epoch, in the caller's transaction (which holds
        the watermark row FOR UPDATE); the names dropped."""
        dropped = []
        for name in self.partitions_list():
            match = PARTITION_NAME.match(name)
            # A partition holds one day; it goes when its whole day is older than the cutoff.
            if match and datetime.strptime(match.group(1), "%Y%m%d").date() < cutoff:
                cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                dropped.append(name)
        if dropped:
            # Every process forgets the partitions it knew of at its next write, which reads the epoch.
            cursor.execute("UPDATE storage_rollup_watermark SET partition_epoch = partition_epoch + 1")
            self._known_partitions = set()
        return dropped
