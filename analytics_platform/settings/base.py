"""Settings shared by every environment; each value comes from the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from csp.constants import NONCE, NONE, SELF

from analytics_platform.settings.environment import (
    REQUIRED,
    env_bool,
    env_database,
    env_float,
    env_int,
    env_json_object,
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
    "django.contrib.humanize",
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
    "axes",
    "csp",
    "apps.sso",
]

# Object permissions (dashboards shared with a user or team) come from django-guardian's backend; no anonymous
# user is created because nothing is shared with anonymous visitors.
ANONYMOUS_USER_NAME = None

MIDDLEWARE = [
    "analytics_platform.metrics.RequestMetricsMiddleware",
    "analytics_platform.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Outside everything that can answer an error page, so /api/ gets JSON errors (api_errors.py).
    "analytics_platform.api_errors.ApiErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Before CommonMiddleware's APPEND_SLASH redirect, which turns a POST into a GET (api_paths.py).
    "analytics_platform.api_paths.ApiTrailingSlashMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: audit events recorded by any view or service know the request's address and agent.
    "apps.audit.context.AuditRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Ends single sign-on sessions whose provider tokens can no longer be refreshed (a no-op without OIDC_ISSUER).
    "apps.sso.middleware.SsoSessionMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Sign-in throttling (apps/access/sign_in.py): answers a locked-out sign-in with 429.
    "axes.middleware.AxesMiddleware",
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
                "apps.sso.context_processors.single_sign_on",
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
AUTHENTICATION_BACKENDS = [
    "apps.access.sign_in.SignInThrottleBackend",  # first: refuses locked-out sign-ins before a password check
    # Username + password; only OIDC_BREAK_GLASS_USERS when OIDC_LOCAL_PASSWORDS is off.
    "apps.sso.backend.LocalPasswordBackend",
    # The OpenID Connect provider's authorization code flow (inactive without OIDC_ISSUER).
    "apps.sso.backend.OidcBackend",
    # Object permissions (dashboards, alert rules, reports shared with a user or team).
    "guardian.backends.ObjectPermissionBackend",
]
# Sign-in throttling (django-axes): failures per (username, address) before a lockout, and its length.
AXES_FAILURE_LIMIT = env_int("SIGN_IN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("SIGN_IN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "apps.access.sign_in.sign_in_locked_out"
AXES_VERBOSE = False
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
    # WhiteNoise's compressed manifest storage, compressing incrementally (see the module).
    "staticfiles": {"BACKEND": "analytics_platform.static_storage.StaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # JWT access tokens from the OpenID Connect provider (only with OIDC_API_AUDIENCE); other bearer values
        # go on to the API-token class.
        "apps.sso.authentication.ProviderTokenAuthentication",
        "apps.access.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # API tokens carry scopes (read, write, admin): apps/access/permissions.py.
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "apps.access.permissions.TokenScopePermission",
    ],
    # The API speaks JSON (uploads and dashboard imports also read multipart forms, declared on their views).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # One error shape everywhere (analytics_platform/field_errors.py).
    "EXCEPTION_HANDLER": "analytics_platform.api_errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "analytics_platform.openapi.ApiAutoSchema",
    # Views opt in with `throttle_scope`; counted per API token or user in the Redis cache (apps/access/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": ["apps.access.throttling.PrincipalRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"query": env_str("API_QUERY_RATE", "600/min")},
    "DEFAULT_PAGINATION_CLASS": "analytics_platform.pagination.StrictLimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Analytics Platform API",
    "DESCRIPTION": (
        "Real-time analytics: sources, ingestion, queries, dashboards, alerts and reports. "
        "Authenticate with a session, `Authorization: Bearer <API token>`, or `Authorization: Bearer <JWT>` with an "
        "access token from the configured OpenID Connect provider (docs/sso.md)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # System fonts: the ReDoc page (templates/drf_spectacular/redoc.html) loads nothing from other hosts.
    "REDOC_UI_SETTINGS": {
        "theme": {
            "typography": {
                "fontFamily": "system-ui, -apple-system, 'Segoe UI', sans-serif",
                "headings": {"fontFamily": "system-ui, -apple-system, 'Segoe UI', sans-serif"},
                "code": {"fontFamily": "ui-monospace, monospace"},
            }
        }
    },
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.sources.schema.source_organization_parameter",
    ],
    "ENUM_NAME_OVERRIDES": {
        "SchemaModeEnum": "apps.sources.models.SchemaMode",
        "PanelTypeEnum": "apps.dashboards.models.PanelType",
        "RefreshEnum": "apps.dashboards.models.Refresh",
        "AnnotationKindEnum": "apps.dashboards.models.AnnotationKind",
        "AlertStateEnum": "apps.alerts.models.instances.AlertState",
        "NotificationStateEnum": "apps.alerts.models.instances.NotificationStatus",
        "ContactPointKindEnum": "apps.alerts.models.rules.ContactPointKind",
        "SourceKindEnum": "apps.sources.models.SourceKind",
        "ReportRunStatusEnum": "apps.reporting.models.RunStatus",
        "ReportDeliveryStatusEnum": "apps.reporting.models.DeliveryStatus",
        "DeadLetterStatusEnum": "apps.ingestion.models.DeadLetterStatus",
        "UploadStatusEnum": "apps.ingestion.models.UploadStatus",
        "ReportRunTriggerEnum": "apps.reporting.models.RunTrigger",
        "ReportFormatEnum": "apps.reporting.models.ReportFormat",
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
# Refuse /metrics without METRICS_TOKEN (its labels name sources): on by default in production settings.
METRICS_REQUIRE_TOKEN = env_bool("METRICS_REQUIRE_TOKEN", False)

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
# Plain PostgreSQL: each refresh run then builds the history of newly registered label keys (see Label rollups in
# docs/storage.md) for at most this long (seconds; none while the drain is behind), a chunk per transaction;
# queries use a key once it is built.
STORAGE_LABEL_HISTORY_BUILD_SECONDS = env_float("STORAGE_LABEL_HISTORY_BUILD_SECONDS", 5.0, minimum=0.0)
# The most days a source's retention override may keep, per table (0: the table's global retention, so overrides
# can only shorten it). Partitions and chunks are shared by every source: one source's long retention keeps
# everyone's old data, so only the operator may allow longer.
STORAGE_SOURCE_RETENTION_MAX_DAYS = {
    "points": env_int("STORAGE_SOURCE_RETENTION_MAX_DAYS_RAW", 0, minimum=0),
    "points_1m": env_int("STORAGE_SOURCE_RETENTION_MAX_DAYS_1M", 0, minimum=0),
    "points_1h": env_int("STORAGE_SOURCE_RETENTION_MAX_DAYS_1H", 0, minimum=0),
    "points_1d": env_int("STORAGE_SOURCE_RETENTION_MAX_DAYS_1D", 0, minimum=0),
}
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
# Seconds to keep whole answers of POST /api/v1/query in Redis for identical queries (writes invalidate them at
# once: see apps/storage/query/shared.py). 0 turns sharing off (every request computes its own answer).
STORAGE_RESULT_CACHE_SECONDS = env_int("STORAGE_RESULT_CACHE_SECONDS", 10, minimum=0)

# Live dashboards: a live panel's changes are sent at most this often (seconds). 0.1 keeps the ingest-to-screen
# p99 under 250 ms in bench/live.py; 0.2 halves the messages at about 100 ms more latency.
LIVE_FLUSH_INTERVAL_SECONDS = env_float("LIVE_FLUSH_INTERVAL_SECONDS", 0.1, minimum=0.02)

# Anomaly detection (docs/anomaly.md): points one scoring run takes at most (a tenth of that per series, so history
# is scored over several runs), and how often a detector's per-series state is saved to PostgreSQL (after a restart
# the points since are scored again, to the same scores).
ANOMALY_MAX_POINTS_PER_RUN = env_int("ANOMALY_MAX_POINTS_PER_RUN", 100_000, minimum=10)
ANOMALY_CHECKPOINT_SECONDS = env_float("ANOMALY_CHECKPOINT_SECONDS", 60.0, minimum=0.0)

# Alerting (docs/alerting.md). Webhook URLs are user-supplied: loopback, private and link-local destinations are
# refused unless allowed here (development and test settings allow them). Links in notifications start with
# ALERTS_LINK_BASE_URL. Failed deliveries are retried after base * 2^(n-1) seconds (capped) up to max attempts.
ALERTS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("ALERTS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)
ALERTS_WEBHOOK_TIMEOUT_SECONDS = env_float("ALERTS_WEBHOOK_TIMEOUT_SECONDS", 5.0, minimum=0.1)
ALERTS_LINK_BASE_URL = env_str("ALERTS_LINK_BASE_URL", "http://localhost:8000")
ALERTS_EMAIL_FROM = env_str("ALERTS_EMAIL_FROM", "alerts@localhost")
ALERTS_DELIVERY_BACKOFF_SECONDS = env_float("ALERTS_DELIVERY_BACKOFF_SECONDS", 2.0, minimum=0.01)
ALERTS_DELIVERY_BACKOFF_MAX_SECONDS = env_float("ALERTS_DELIVERY_BACKOFF_MAX_SECONDS", 300.0, minimum=0.01)
ALERTS_DELIVERY_MAX_ATTEMPTS = env_int("ALERTS_DELIVERY_MAX_ATTEMPTS", 8, minimum=1)
ALERTS_FLUSH_MAX_NOTIFICATIONS = env_int("ALERTS_FLUSH_MAX_NOTIFICATIONS", 200, minimum=1)
# Rules the scheduled tick evaluates at most per run (the most overdue first); the rest wait for the next tick.
ALERTS_MAX_RULES_PER_TICK = env_int("ALERTS_MAX_RULES_PER_TICK", 200, minimum=1)
# The change-driven evaluator evaluates a window or expression rule at most this often after changes (seconds).
ALERTS_CHANGE_MIN_INTERVAL_SECONDS = env_float("ALERTS_CHANGE_MIN_INTERVAL_SECONDS", 1.0, minimum=0.0)

# Ingestion. MQTT_URL is the broker MQTT sources subscribe to (mqtt://user:password@host:1883).
MQTT_URL = env_str("MQTT_URL", "mqtt://127.0.0.1:1883")
KAFKA_BOOTSTRAP_SERVERS = env_str("KAFKA_BOOTSTRAP_SERVERS", "")
# Tenant isolation on the shared broker (docs/security.md): an organisation's MQTT topic filters start with this
# prefix ({organization} is its slug), or with a prefix the operator approved for it in MQTT_TOPIC_ALLOWLIST, a JSON
# object like {"acme": ["plant/", "legacy/line-3/"]}. Client ids and consumer groups are "<CONNECTOR_ID_PREFIX>-
# source-<id>", derived by the platform, never taken from a source's settings.
MQTT_TOPIC_PREFIX = env_str("MQTT_TOPIC_PREFIX", "{organization}/")
MQTT_TOPIC_ALLOWLIST = env_json_object("MQTT_TOPIC_ALLOWLIST", {})
# The same for Kafka topics on a shared cluster: names start with KAFKA_TOPIC_PREFIX (Kafka topic names allow
# letters, digits, '.', '_' and '-', so the default separator is a dot) or a prefix in KAFKA_TOPIC_ALLOWLIST.
KAFKA_TOPIC_PREFIX = env_str("KAFKA_TOPIC_PREFIX", "{organization}.")
KAFKA_TOPIC_ALLOWLIST = env_json_object("KAFKA_TOPIC_ALLOWLIST", {})
CONNECTOR_ID_PREFIX = env_str("CONNECTOR_ID_PREFIX", "analytics")
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
            # WeasyPrint logs every rendering step at INFO (a line per stylesheet parsed).
            "weasyprint": {"level": "WARNING"},
            "fontTools": {"level": "WARNING"},
        },
    }


LOGGING = build_logging(level=LOG_LEVEL, log_format=LOG_FORMAT)

# Content Security Policy (django-csp): scripts only from this site (or an inline one carrying the response's
# nonce: the ReDoc page), no plugins, no framing, forms post only here. Styles may be inline: Plotly, Gridstack
# and Swagger UI set style attributes and elements at run time. Images and workers may be data:/blob: URLs
# (chart downloads, ReDoc's search worker). connect-src 'self' covers this site's ws:// and wss:// URLs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

API_TOKEN_LAST_USED_RESOLUTION_SECONDS = 60
# A token minted by another token expires at the latest this many days from its creation (and never after its
# parent): a token can never mint a token that never expires.
API_TOKEN_MINTED_MAX_DAYS = env_int("API_TOKEN_MINTED_MAX_DAYS", 90, minimum=1)

# WebSockets: open sockets per user across all web processes (0 = no cap); more are closed with code 4008.
WEBSOCKET_MAX_CONNECTIONS_PER_USER = env_int("WEBSOCKET_MAX_CONNECTIONS_PER_USER", 20, minimum=0)
# A socket's place under the cap is a lease its process renews; a crashed process's sockets free it this late.
WEBSOCKET_CONNECTION_LEASE_SECONDS = env_int("WEBSOCKET_CONNECTION_LEASE_SECONDS", 60, minimum=3)

# Mail (scheduled reports, alert emails): SMTP with these settings; DEFAULT_FROM_EMAIL is the sender of every
# report, ALERTS_EMAIL_FROM of alert emails.
# The demo's mail viewer (/demo/mail/): off here and in production; the development settings turn it on for
# `make demo` (analytics_platform/demo_mail.py).
DEMO_MAIL_DIR = ""
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "reports@localhost")

# Reports (docs/reports.md): rendered files live here until their download links expire; web and worker share it.
REPORT_FILES_ROOT = Path(env_str("REPORT_FILES_ROOT", str(BASE_DIR / "var" / "reports")))
# Above this total attachment size a report mail carries signed download links instead of the files.
REPORT_EMAIL_MAX_BYTES = env_int("REPORT_EMAIL_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
REPORT_LINK_MAX_AGE_SECONDS = env_int("REPORT_LINK_MAX_AGE_SECONDS", 7 * 86_400, minimum=60)
# The address links in report mails start with, e.g. https://analytics.example.com
REPORT_SITE_URL = env_str("REPORT_SITE_URL", "http://localhost:8000").rstrip("/")
REPORT_SEND_MAX_RETRIES = env_int("REPORT_SEND_MAX_RETRIES", 5, minimum=0)

# Audit log (docs/security.md): most events one CSV export holds.
AUDIT_EXPORT_MAX_ROWS = env_int("AUDIT_EXPORT_MAX_ROWS", 100_000, minimum=1)

# Single sign-on with OpenID Connect (docs/sso.md). Without OIDC_ISSUER none of it is active.
OIDC_ISSUER = env_str("OIDC_ISSUER", "")
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID", "")
OIDC_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET", "")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")
OIDC_SCOPES = env_str("OIDC_SCOPES", "openid email profile")
# How the client authenticates at the token endpoint: client_secret_basic or client_secret_post.
OIDC_TOKEN_AUTH_METHOD = env_str("OIDC_TOKEN_AUTH_METHOD", "client_secret_basic")
OIDC_SIGN_ALGORITHMS = env_list("OIDC_SIGN_ALGORITHMS", ["RS256"])
OIDC_CLAIM_EMAIL = env_str("OIDC_CLAIM_EMAIL", "email")
OIDC_CLAIM_NAME = env_str("OIDC_CLAIM_NAME", "name")
OIDC_CLAIM_USERNAME = env_str("OIDC_CLAIM_USERNAME", "preferred_username")
OIDC_CLAIM_GROUPS = env_str("OIDC_CLAIM_GROUPS", "groups")
# Also read claims from the userinfo endpoint (the ID token's are always read).
OIDC_CLAIMS_FROM_USERINFO = env_bool("OIDC_CLAIMS_FROM_USERINFO", False)
# group=organization/role or group=organization/team/role, separated by ';' (or a JSON list); see docs/sso.md.
OIDC_GROUP_RULES = env_str("OIDC_GROUP_RULES", "")
# Apply the group rules at every sign-in (adding, changing and removing SSO-managed memberships).
OIDC_SYNC_MEMBERSHIPS = env_bool("OIDC_SYNC_MEMBERSHIPS", True)
# Create users on their first sign-in (just in time); off: only users linked beforehand may sign in.
OIDC_CREATE_USERS = env_bool("OIDC_CREATE_USERS", True)
# Local passwords: off leaves them to OIDC_BREAK_GLASS_USERS (usernames) only.
OIDC_LOCAL_PASSWORDS = env_bool("OIDC_LOCAL_PASSWORDS", True)
OIDC_BREAK_GLASS_USERS = env_list("OIDC_BREAK_GLASS_USERS", [])
# Bearer JWTs from the provider on the API: the audience they must carry (empty: not accepted).
OIDC_API_AUDIENCE = env_str("OIDC_API_AUDIENCE", "")
# Token scopes `<prefix>read`, `<prefix>write`, `<prefix>admin` grant the platform's read, write and admin scopes.
OIDC_API_SCOPE_PREFIX = env_str("OIDC_API_SCOPE_PREFIX", "api:")
OIDC_CLIENT_ID_CLAIMS = env_list("OIDC_CLIENT_ID_CLAIMS", ["client_id", "azp", "appid", "cid"])
# A claim naming the organisation (slug) a person's bearer token acts in, as a personal API token acts in one; set,
# a person's token without it is refused. Empty: a person's token acts in all of their organisations.
OIDC_API_ORGANIZATION_CLAIM = env_str("OIDC_API_ORGANIZATION_CLAIM", "")
# An SSO session renews the provider's tokens at least this often (seconds); a refused renewal ends it.
OIDC_SESSION_CHECK_SECONDS = env_int("OIDC_SESSION_CHECK_SECONDS", 300, minimum=1)
OIDC_CLOCK_SKEW_SECONDS = env_int("OIDC_CLOCK_SKEW_SECONDS", 30, minimum=0)
OIDC_HTTP_TIMEOUT = env_float("OIDC_HTTP_TIMEOUT", 5.0, minimum=0.1)
OIDC_VERIFY_TLS = env_bool("OIDC_VERIFY_TLS", True)
OIDC_DISCOVERY_CACHE_SECONDS = env_int("OIDC_DISCOVERY_CACHE_SECONDS", 3600, minimum=0)
OIDC_JWKS_CACHE_SECONDS = env_int("OIDC_JWKS_CACHE_SECONDS", 3600, minimum=0)
OIDC_JWKS_MIN_REFETCH_SECONDS = env_int("OIDC_JWKS_MIN_REFETCH_SECONDS", 10, minimum=0)
if OIDC_ISSUER:
    # Sign-out posts a form here that redirects to the provider's end_session_endpoint: browsers apply form-action
    # to the redirect too, so the provider's origin must be allowed (it serves that endpoint at the issuer's origin
    # for Keycloak, Entra ID, Okta and Google).
    _issuer_parts = urlsplit(OIDC_ISSUER)
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"] = [SELF, f"{_issuer_parts.scheme}://{_issuer_parts.netloc}"]
