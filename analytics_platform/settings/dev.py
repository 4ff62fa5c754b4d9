"""Local development and `make demo`: debug on, local services by default."""

from analytics_platform.settings.base import *  # noqa: F403
from analytics_platform.settings.environment import env_bool, env_int, env_str

DEBUG = True
# Development only: a fixed key so sessions survive restarts. Production requires DJANGO_SECRET_KEY.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "django-insecure-development-only-key-do-not-use-in-production")
WHITENOISE_USE_FINDERS = True
# Alert webhooks to receivers on this machine or the local network are fine in development.
ALERTS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("ALERTS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", True)
# The demo's sources keep raw points 35 days (it writes 30 days of history); per-source overrides that long are
# allowed here. Production keeps the bound at the server's own retention unless the operator raises it.
STORAGE_SOURCE_RETENTION_MAX_DAYS = {
    **STORAGE_SOURCE_RETENTION_MAX_DAYS,  # noqa: F405
    "points": env_int("STORAGE_SOURCE_RETENTION_MAX_DAYS_RAW", 35, minimum=0),
}
# `make demo` keeps report and alert mail in a Maildir (its own SMTP server) and shows it at /demo/mail/ to its
# admin; the variable is set by the demo only while it keeps mail, and production settings never read it.
DEMO_MAIL_DIR = env_str("DEMO_MAIL_DIR", "") if env_bool("DEMO_MAIL_KEPT", False) else ""
