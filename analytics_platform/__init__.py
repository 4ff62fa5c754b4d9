"""The analytics platform Django project."""

from analytics_platform.celery import app as celery_app

__all__ = ["celery_app"]
