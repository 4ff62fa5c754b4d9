"""The change-driven evaluator: one process subscribed to the ingest change messages evaluates the rules whose
input series changed, right after the ingest commit (`manage.py alerts_evaluator`).

One Redis subscription per process; messages are drained in small batches, the rules they touch (rule_index.py)
evaluated one after another, each in its own transaction (rule_evaluation.py). A rules-changed message (published
by the rule services) or 30 seconds reload the index. The scheduled tick (scheduling.py) covers everything this
process might miss (a restart, a dropped connection): it is a latency path, not the only path.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import redis
from django.db import close_old_connections
from django.db.utils import InterfaceError, OperationalError

from analytics_platform.redis_client import redis_client
from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate
from apps.alerts.alerting.rule_index import RuleIndex
from apps.alerts.alerting.services import RULES_CHANGED_CHANNEL
from apps.ingestion.events import CHANGES_CHANNEL

logger = logging.getLogger(__name__)

RELOAD_SECONDS = 30.0
DRAIN_SECONDS = 0.02  # read messages for at most this long before evaluating what they touched


class ChangeEvaluator:
    """Holds the subscription and the index; `run` until `stop` is set."""

    def __init__(self, *, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self.index = RuleIndex()
        self.pending: set[int] = set()  # rules waiting for their minimum interval
        self.evaluations = 0
        self.reload_wanted = True

    def handle(self, channel: str, data: bytes | str) -> set[int]:
        """Take one message; the rules to evaluate now."""
        if channel == RULES_CHANGED_CHANNEL:
            self.reload_wanted = True
            return set()
        try:
            message = json.loads(data)
        except ValueError:
            logger.warning("unreadable change message ignored")
            return set()
        started = time.perf_counter()
        now_rules, later_rules = self.index.rules_touched(message)
        self.pending |= later_rules
        logger.debug(
            "change of %s series: %d rules now, %d later (%.1f ms)",
            len(message.get("series") or ()), len(now_rules), len(later_rules), (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        return now_rules

    def evaluate(self, rule_ids: set[int]) -> None:
        """Evaluate rules one by one (the lowest id first), remembering the states they leave."""
        for rule_id in sorted(rule_ids):
            started = time.perf_counter()
            try:
                summary = alert_rule_evaluate(rule_id=rule_id, trigger="change")
            except (OperationalError, InterfaceError):
                logger.warning("rule %s not evaluated: database unavailable", rule_id, exc_info=True)
                close_old_connections()
                continue
            self.evaluations += 1
            self.index.states_update(rule_id, summary.states)
            logger.debug("rule %s evaluated in %.1f ms", rule_id, (time.perf_counter() - started) * 1000)

    def run(self) -> None:
        """Subscribe and evaluate until stopped; reconnects when Redis goes away."""
        while not self.stop.is_set():
            try:
                self._run_once()
            except (redis.ConnectionError, redis.TimeoutError):
                logger.warning("change subscription lost; resubscribing", exc_info=True)
                self.reload_wanted = True
                time.sleep(1.0)

    def _run_once(self) -> None:
        pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(CHANGES_CHANNEL, RULES_CHANGED_CHANNEL)
        try:
            while not self.stop.is_set():
                if self.reload_wanted or time.monotonic() - self.index.loaded_at > RELOAD_SECONDS:
                    self.reload_wanted = False
                    close_old_connections()
                    self.index.load()
                message = pubsub.get_message(timeout=0.2)
                now_rules: set[int] = set()
                drain_until = time.monotonic() + DRAIN_SECONDS
                while message is not None:
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    now_rules |= self.handle(channel, message["data"])
                    if time.monotonic() > drain_until:
                        break
                    message = pubsub.get_message(timeout=0)
                if self.pending:
                    ready, self.pending = self.index.due(self.pending)
                    now_rules |= ready
                if now_rules:
                    self.evaluate(now_rules)
        finally:
            pubsub.close()
