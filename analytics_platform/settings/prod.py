"""Production: every secret and host comes from the environment; nothing insecure by default."""

from django.core.exceptions import ImproperlyConfigured

from analytics_platform.settings.base import *  # noqa: F403
from analytics_platform.settings.base import build_logging, database_settings, redis_settings
from analytics_platform.settings.environment import (
    env_bool,
    env_int,
    env_list,
    env_redis_url,
    env_str,
)

DEBUG = False

SECRET_KEY = env_str(
    "DJANGO_SECRET_KEY",
    help_text=("a long random string; generate one with python -c 'import secrets; print(secrets.token_urlsafe(50))'"),
)
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is too weak: use at least 50 random characters "
        "(python -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )
ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", help_text="comma-separated host names this site is served under, e.g. analytics.example.com"
)
DATABASES = database_settings()
REDIS_URL = env_redis_url("REDIS_URL")
CACHES, CHANNEL_LAYERS = redis_settings(REDIS_URL, prefix="analytics")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)

# /metrics is labelled with source slugs: production serves it only to scrapers that send METRICS_TOKEN (without
# one set, /metrics answers 401 to everyone). METRICS_REQUIRE_TOKEN=false serves it to anyone who can reach it.
METRICS_REQUIRE_TOKEN = env_bool("METRICS_REQUIRE_TOKEN", True)

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # Preloading is an opt-in commitment for a whole domain (SECURE_HSTS_PRELOAD=true), not a default.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)

LOG_FORMAT = env_str("LOG_FORMAT", "json")
LOGGING = build_logging(level=LOG_LEVEL, log_format=LOG_FORMAT)  # noqa: F405
