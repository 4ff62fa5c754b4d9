"""The alerts app's models: anomaly detection (anomaly.py), alert rules and routing (rules.py), and the state of
alert instances with their notifications (instances.py)."""

from apps.alerts.models.anomaly import SCORE_METRIC_SUFFIX, AnomalyDetection, AnomalyEvent, AnomalySeriesState
from apps.alerts.models.instances import (
    AlertInstance,
    AlertState,
    DeliveryAttempt,
    Notification,
    NotificationGroup,
    NotificationStatus,
    StateTransition,
)
from apps.alerts.models.rules import (
    AlertRule,
    ContactPoint,
    ContactPointKind,
    MuteTiming,
    NotificationPolicy,
    Severity,
    Silence,
)

__all__ = [
    "SCORE_METRIC_SUFFIX",
    "AlertInstance",
    "AlertRule",
    "AlertState",
    "AnomalyDetection",
    "AnomalyEvent",
    "AnomalySeriesState",
    "ContactPoint",
    "ContactPointKind",
    "DeliveryAttempt",
    "MuteTiming",
    "Notification",
    "NotificationGroup",
    "NotificationPolicy",
    "NotificationStatus",
    "Severity",
    "Silence",
    "StateTransition",
]
