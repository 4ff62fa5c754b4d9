"""The Celery application; every periodic schedule is declared here, in one place."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics_platform.settings.dev")

app = Celery("analytics_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["analytics_platform"])
app.autodiscover_tasks()
app.autodiscover_tasks(["apps.alerts.alerting"])

# Queues: "default" for housekeeping, "storage" for rollups, partitions and retention, "reports" for rendering
# and mailing reports (each report's cron schedule is a PeriodicTask row kept by apps/reporting/schedules.py).
app.conf.task_routes = {
    "platform.*": {"queue": "default"},
    "storage.*": {"queue": "storage"},
    "ingestion.*": {"queue": "default"},
    "alerts.*": {"queue": "default"},
    "reporting.*": {"queue": "reports"},
}

app.conf.beat_schedule = {
    "platform-worker-heartbeat": {
        "task": "platform.worker_heartbeat",
        "schedule": 30.0,
        "options": {"queue": "default", "expires": 25},
    },
    "storage-rollups-refresh": {
        "task": "storage.rollups_refresh",
        "schedule": 10.0,
        "options": {"queue": "storage", "expires": 30},
    },
    "storage-partitions-prepare": {
        "task": "storage.partitions_prepare",
        "schedule": 3600.0,
        "options": {"queue": "storage", "expires": 3000},
    },
    "alerts-anomaly-scores-update": {
        "task": "alerts.anomaly_scores_update",
        "schedule": 2.0,
        "options": {"queue": "default", "expires": 2},
    },
    "alerts-rules-evaluate-due": {
        "task": "alerts.rules_evaluate_due",
        "schedule": 5.0,
        "options": {"queue": "default", "expires": 10},
    },
    "alerts-notifications-flush": {
        "task": "alerts.notifications_flush",
        "schedule": 1.0,
        "options": {"queue": "default", "expires": 5},
    },
    "reporting-files-prune": {
        "task": "reporting.files_prune",
        "schedule": 3600.0,
        "options": {"queue": "reports", "expires": 3000},
    },
    "storage-retention-apply": {
        "task": "storage.retention_apply",
        "schedule": 3600.0,
        "options": {"queue": "storage", "expires": 3000},
    },
}
