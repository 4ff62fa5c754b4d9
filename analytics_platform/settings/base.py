"""Settings shared by every environment; each value comes from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analytics_platform.settings.environment import (
    REQUIRED,
    env_bool,
    env_database,
    env_float,
    env_int,
    env_list,
    env_redis_url,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = False
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "guardian",
    "analytics_platform",
    "apps.access",
    "apps.sources",
    "apps.ingestion",
    "apps.storage",
    "apps.dashboards",
    "apps.alerts",
    "apps.reporting",
    "apps.audit",
]

# Object permissions (dashboards shared with a user or team) come from django-guardian's backend; no anonymous
# user is created because nothing is shared with anonymous visitors.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None

MIDDLEWARE = [
    "analytics_platform.metrics.RequestMetricsMiddleware",
    "analytics_platform.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Outside everything that can answer an error page, so /api/ gets JSON errors (api_errors.py).
    "analytics_platform.api_errors.ApiErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: audit events recorded by any view or service know the request's address and agent.
    "apps.audit.context.AuditRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so the chain runs synchronously in one thread under ASGI (see runtime.py): 6 ms of CPU less a request.
    "analytics_platform.runtime.SyncMiddlewareChain",
]

ROOT_URLCONF = "analytics_platform.urls"
ASGI_APPLICATION = "analytics_platform.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.access.context_processors.organizations",
            ],
        },
    },
]


def database_settings(database_url_default: Any = REQUIRED) -> dict:
    """DATABASES from DATABASE_URL (required unless a default is given) and the connection variables."""
    default = {**env_database("DATABASE_URL", database_url_default), "CONN_HEALTH_CHECKS": True}
    default["OPTIONS"].setdefault("connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1))
    pool_size = env_int("DATABASE_POOL_MAX_SIZE", 20, minimum=0)
    if pool_size:
        # Under ASGI every request runs its sync code in a fresh thread, so per-thread persistent connections
        # (CONN_MAX_AGE) would open a connection per request and leave the old ones behind. A psycopg pool
        # shared by the process's threads hands connections back at the end of each request instead.
        default["CONN_MAX_AGE"] = 0
        default["OPTIONS"]["pool"] = {"min_size": min(2, pool_size), "max_size": pool_size, "timeout": 10}
    else:
        default["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0)
    return {"default": default}


DATABASES = database_settings("postgres://postgres@127.0.0.1:5432/analytics_platform")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_settings(url: str, *, prefix: str) -> tuple[dict, dict]:
    """CACHES and CHANNEL_LAYERS on one Redis URL, keys under `prefix`."""
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": prefix}
    }
    channel_layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # channels_redis blocks up to 5 s on a pop; redis-py's default 5 s socket timeout would cut it off
            # (and daphne closes the consumer with 1011). The live endpoint no longer joins a channel layer.
            "CONFIG": {"hosts": [{"address": url, "socket_timeout": 15}], "prefix": f"{prefix}:channels"},
        }
    }
    return caches, channel_layers


CACHES, CHANNEL_LAYERS = redis_settings(REDIS_URL, prefix="analytics")
# Prefix of the platform's own Redis keys and pub/sub channels (ingest figures, rate limits, change events).
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "analytics")

# Health checks must answer quickly even when a dependency hangs.
HEALTHCHECK_TIMEOUT_SECONDS = env_float("HEALTHCHECK_TIMEOUT_SECONDS", 1.0, minimum=0.05)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "static")))
# Uploaded files (CSV/Parquet backfills): web writes them, the Celery worker reads them, so share this directory.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
MEDIA_URL = "media/"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Browser libraries from package.json (installed by `npm ci`), served as published under static/vendor/.
    ("vendor/gridstack", BASE_DIR / "node_modules" / "gridstack" / "dist"),
    ("vendor/plotly", BASE_DIR / "node_modules" / "plotly.js-dist-min"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.access.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The API speaks JSON (uploads and dashboard imports also read multipart forms, declared on their views).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # One error shape everywhere (analytics_platform/field_errors.py).
    "EXCEPTION_HANDLER": "analytics_platform.api_errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "analytics_platform.openapi.ApiAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "analytics_platform.pagination.StrictLimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Analytics Platform API",
    "DESCRIPTION": (
        "Real-time analytics: sources, ingestion, queries, dashboards, alerts and reports. "
        "Authenticate with a session or `Authorization: Bearer <API token>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "SchemaModeEnum": "apps.sources.models.SchemaMode",
        "PanelTypeEnum": "apps.dashboards.models.PanelType",
        "RefreshEnum": "apps.dashboards.models.Refresh",
    },
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Optional shared secret for GET /metrics; when set, scrapers send "Authorization: Bearer <token>".
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# Time-series storage. STORAGE_BACKEND: "auto" picks TimescaleDB when the database offers the extension.
STORAGE_BACKEND = env_str("STORAGE_BACKEND", "auto")
# Retention in days; per-source overrides live on Source. Raw defaults to 90 days on TimescaleDB
# (compressed after STORAGE_COMPRESS_AFTER_DAYS) and to 7 days on plain PostgreSQL, which cannot compress.
STORAGE_RAW_RETENTION_DAYS = env_int("STORAGE_RAW_RETENTION_DAYS", 0, minimum=0)  # 0 = backend default
STORAGE_COMPRESS_AFTER_DAYS = env_int("STORAGE_COMPRESS_AFTER_DAYS", 7, minimum=1)
STORAGE_ROLLUP_1M_RETENTION_DAYS = env_int("STORAGE_ROLLUP_1M_RETENTION_DAYS", 90, minimum=1)
STORAGE_ROLLUP_1H_RETENTION_DAYS = env_int("STORAGE_ROLLUP_1H_RETENTION_DAYS", 1825, minimum=1)
STORAGE_ROLLUP_1D_RETENTION_DAYS = env_int("STORAGE_ROLLUP_1D_RETENTION_DAYS", 1825, minimum=1)
# Points older than this (seconds) when they arrive are "late": their aggregates go into deltas that queries add to
# the rollups and the refresh folds into them.
STORAGE_ROLLUP_GRACE_SECONDS = env_int("STORAGE_ROLLUP_GRACE_SECONDS", 60, minimum=0)
# Plain PostgreSQL: points older than this (seconds) but inside the grace window are rolled up provisionally
# by each refresh (whole minutes, and the minute in progress so far), so queries read them from the 1-minute
# tier instead of raw points; a write that lands before this bound marks its minute for recomputation (the
# refresh redoes it; queries read it raw meanwhile). A few seconds let stragglers arrive first. At or above
# STORAGE_ROLLUP_GRACE_SECONDS: nothing is provisional.
STORAGE_ROLLUP_PROVISIONAL_GRACE_SECONDS = env_int("STORAGE_ROLLUP_PROVISIONAL_GRACE_SECONDS", 5, minimum=0)
# Plain PostgreSQL: each refresh run folds late points' deltas into the rollups for at most this long (seconds),
# after the live refresh, oldest first; the rest waits for the next run (queries add it meanwhile).
STORAGE_DELTAS_DRAIN_SECONDS = env_float("STORAGE_DELTAS_DRAIN_SECONDS", 5.0, minimum=0.0)
STORAGE_PARTITION_DAYS_AHEAD = env_int("STORAGE_PARTITION_DAYS_AHEAD", 3, minimum=1)
# TimescaleDB: whether its scheduler runs the retention and compression jobs (the TimescaleDB tests create them
# paused and run each one explicitly, so a server's scheduler never runs one in the middle of a test).
STORAGE_TIMESCALEDB_JOBS_SCHEDULED = env_bool("STORAGE_TIMESCALEDB_JOBS_SCHEDULED", True)
# Query guard rails.
# Label rollups (both backends): every label key with at most this many values per (source, metric) also
# gets its tiers pre-aggregated per label value, so "group by facility" reads a few rows per bucket. 0 = off.
STORAGE_LABEL_ROLLUP_MAX_VALUES = env_int("STORAGE_LABEL_ROLLUP_MAX_VALUES", 100, minimum=0)
STORAGE_MAX_SERIES_PER_QUERY = env_int("STORAGE_MAX_SERIES_PER_QUERY", 10_000, minimum=1)
STORAGE_DEFAULT_MAX_POINTS = env_int("STORAGE_DEFAULT_MAX_POINTS", 1_000, minimum=10)
STORAGE_MAX_POINTS_PER_SERIES = env_int("STORAGE_MAX_POINTS_PER_SERIES", 10_000, minimum=10)
# Seconds to keep complete, stable buckets of aggregate queries in Redis (0 turns the cache off).
STORAGE_QUERY_CACHE_SECONDS = env_int("STORAGE_QUERY_CACHE_SECONDS", 600, minimum=0)

# Live dashboards: a live panel's changes are sent at most this often (seconds). 0.1 keeps the ingest-to-screen
# p99 under 250 ms in bench/live.py; 0.2 halves the messages at about 100 ms more latency.
LIVE_FLUSH_INTERVAL_SECONDS = env_float("LIVE_FLUSH_INTERVAL_SECONDS", 0.1, minimum=0.02)

# Anomaly detection (docs/anomaly.md): points one scoring run takes at most (a tenth of that per series, so history
# is scored over several runs), and how often a detector's per-series state is saved to PostgreSQL (after a restart
# the points since are scored again, to the same scores).
ANOMALY_MAX_POINTS_PER_RUN = env_int("ANOMALY_MAX_POINTS_PER_RUN", 100_000, minimum=10)
ANOMALY_CHECKPOINT_SECONDS = env_float("ANOMALY_CHECKPOINT_SECONDS", 60.0, minimum=0.0)

# Ingestion. MQTT_URL is the broker MQTT sources subscribe to (mqtt://user:password@host:1883).
MQTT_URL = env_str("MQTT_URL", "mqtt://127.0.0.1:1883")
KAFKA_BOOTSTRAP_SERVERS = env_str("KAFKA_BOOTSTRAP_SERVERS", "")
# Largest request body (bytes, after gzip decompression too): bigger answers 413.
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 25 * 1024 * 1024, minimum=1024)
# Points per second one source may write (0 = no limit); a source's own limit overrides it.
INGEST_SOURCE_RATE_LIMIT = env_int("INGEST_SOURCE_RATE_LIMIT", 0, minimum=0)
# Ingest requests one web process works on at once; more answer 429 with Retry-After.
INGEST_MAX_IN_FLIGHT = env_int("INGEST_MAX_IN_FLIGHT", 8, minimum=1)
# Guard rails for inferred schemas: distinct series per source (a source's own limit overrides it).
INGEST_MAX_SERIES_PER_SOURCE = env_int("INGEST_MAX_SERIES_PER_SOURCE", 100_000, minimum=1)
# Points stamped further ahead of the server clock than this are refused (a clock or unit error).
INGEST_MAX_FUTURE_SECONDS = env_int("INGEST_MAX_FUTURE_SECONDS", 3600, minimum=0)
# Records per transaction for MQTT/Kafka batches and file-upload chunks.
# Largest CSV/Parquet upload for a backfill.
INGEST_MAX_UPLOAD_BYTES = env_int("INGEST_MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1)
INGEST_CONNECTOR_BATCH_SIZE = env_int("INGEST_CONNECTOR_BATCH_SIZE", 5000, minimum=1)
INGEST_CONNECTOR_FLUSH_SECONDS = env_float("INGEST_CONNECTOR_FLUSH_SECONDS", 0.2, minimum=0.01)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = env_str("LOG_FORMAT", "text")


def build_logging(*, level: str, log_format: str) -> dict:
    """Logging config: 'json' writes one JSON object per line (for log shippers), 'text' is for people."""
    if log_format not in {"json", "text"}:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"LOG_FORMAT must be 'json' or 'text', got {log_format!r}.")
    formatters = {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {log_format: formatters[log_format]},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "daphne.server": {"level": "WARNING" if level == "INFO" else level},
        },
    }


LOGGING = build_logging(level=LOG_LEVEL, log_format=LOG_FORMAT)

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

API_TOKEN_LAST_USED_RESOLUTION_SECONDS = 60

# Audit log (docs/security.md): most events one CSV export holds.
AUDIT_EXPORT_MAX_ROWS = env_int("AUDIT_EXPORT_MAX_ROWS", 100_000, minimum=1)
