"""Long-running processes besides web: the connector supervisor (Celery's entry point is analytics_platform.celery)."""
