"""The Celery app: tasks are named, queued, and every periodic schedule points at a registered task."""

from __future__ import annotations

from analytics_platform.celery import app


def test_beat_schedule_targets_registered_tasks():
    app.loader.import_default_modules()
    assert app.conf.beat_schedule, "no periodic tasks declared"
    for name, entry in app.conf.beat_schedule.items():
        assert entry["task"] in app.tasks, f"{name} schedules unknown task {entry['task']}"
        routed = app.amqp.router.route({}, entry["task"])["queue"].name
        assert entry["options"]["queue"] == routed, f"{name} sends to a queue its route does not name"


def test_platform_tasks_are_late_acked_with_expiry():
    app.loader.import_default_modules()
    task = app.tasks["platform.worker_heartbeat"]
    assert task.acks_late is True
    assert task.expires == 25
    assert app.amqp.router.route({}, task.name)["queue"].name == "default"
