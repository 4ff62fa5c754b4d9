"""Settings for the test suite: real PostgreSQL and Redis, separate Redis database."""

from analytics_platform.settings.base import *  # noqa: F403
from analytics_platform.settings.base import build_logging, redis_settings
from analytics_platform.settings.environment import env_redis_url

DEBUG = False
SECRET_KEY = "test-only-secret-key-not-used-anywhere-else-0123456789abcdef"  # noqa: S105 (tests only)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; tests only
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None  # tests serve static files from the finders; nothing is collected
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

REDIS_URL = env_redis_url("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CACHES, CHANNEL_LAYERS = redis_settings(REDIS_URL, prefix="analytics-test")
# Pub/sub channels cross Redis databases; tests must not hear a running demo's change events (or vice versa).
REDIS_KEY_PREFIX = f"analytics-test-{REDIS_URL.rsplit('/', 1)[-1]}"
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
LOGGING = build_logging(level="WARNING", log_format="text")
# TimescaleDB tests run every maintenance job explicitly (docs/development.md).
STORAGE_TIMESCALEDB_JOBS_SCHEDULED = False
# Test data is stamped in early 2026 and test sources keep raw points ten years (tests/ingestion/factories.py), and
# retention tests give sources overrides longer than the defaults: the operator's bound on per-source retention
# allows ten years on every tier here; tests of the bound itself set the production default (no longer than global).
STORAGE_SOURCE_RETENTION_MAX_DAYS = dict.fromkeys(STORAGE_SOURCE_RETENTION_MAX_DAYS, 36500)  # noqa: F405
# Tests deliver to receivers on 127.0.0.1.
ALERTS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
