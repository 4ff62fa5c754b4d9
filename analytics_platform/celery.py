"""The Celery application; every periodic schedule is declared here, in one place."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics_platform.settings.dev")

app = Celery("analytics_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["analytics_platform"])
app.autodiscover_tasks()

# Queues: "default" for housekeeping. Later domains add their own queue names here.
app.conf.task_routes = {"platform.*": {"queue": "default"}}

app.conf.beat_schedule = {
    "platform-worker-heartbeat": {
        "task": "platform.worker_heartbeat",
        "schedule": 30.0,
        "options": {"queue": "default", "expires": 25},
    },
}
