"""Typed readers for environment variables that fail fast with a clear message."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


class _Required:
    """Marker for a variable without a default."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, default: Any, help_text: str) -> str | None:
    value = os.environ.get(name)
    if value is not None:
        return value
    if default is REQUIRED:
        hint = f" ({help_text})" if help_text else ""
        raise ImproperlyConfigured(f"Environment variable {name} is required but not set{hint}.")
    return None


def env_str(name: str, default: Any = REQUIRED, *, help_text: str = "") -> str:
    """Read a string; raise ImproperlyConfigured when required and missing or empty."""
    value = _raw(name, default, help_text)
    if value is None:
        return default
    if value == "" and default is REQUIRED:
        raise ImproperlyConfigured(f"Environment variable {name} is set but empty ({help_text}).")
    return value


def env_int(
    name: str,
    default: Any = REQUIRED,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    help_text: str = "",
) -> int:
    """Read an integer within optional bounds."""
    value = _raw(name, default, help_text)
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"Environment variable {name} must be an integer, got {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"Environment variable {name} must be >= {minimum}, got {number}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"Environment variable {name} must be <= {maximum}, got {number}.")
    return number


def env_float(name: str, default: Any = REQUIRED, *, minimum: float | None = None) -> float:
    """Read a floating-point number."""
    value = _raw(name, default, "")
    if value is None:
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"Environment variable {name} must be a number, got {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"Environment variable {name} must be >= {minimum}, got {number}.")
    return number


def env_bool(name: str, default: Any = REQUIRED) -> bool:
    """Read a boolean written as 1/0, true/false, yes/no or on/off."""
    value = _raw(name, default, "")
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"Environment variable {name} must be a boolean (true/false, 1/0, yes/no), got {value!r}."
    )


def env_list(name: str, default: Any = REQUIRED, *, help_text: str = "") -> list[str]:
    """Read a comma-separated list, dropping blanks."""
    value = _raw(name, default, help_text)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items and default is REQUIRED:
        raise ImproperlyConfigured(f"Environment variable {name} must list at least one value ({help_text}).")
    return items


def env_json_object(name: str, default: Any = REQUIRED) -> dict[str, list[str]]:
    """Read a JSON object of lists of strings, e.g. {"acme": ["plant/", "line-3/"]}."""
    value = _raw(name, default, "")
    if value is None:
        return default
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise ImproperlyConfigured(f"Environment variable {name} must be a JSON object: {error}.") from None
    if not isinstance(parsed, dict) or not all(
        isinstance(items, list) and all(isinstance(item, str) for item in items) for items in parsed.values()
    ):
        raise ImproperlyConfigured(
            f'Environment variable {name} must map names to lists of text, e.g. {{"a": ["b/"]}}.'
        )
    return parsed


def parse_database_url(url: str, *, name: str = "DATABASE_URL") -> dict[str, Any]:
    """Turn postgres://user:password@host:port/dbname?option=value into Django's DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(f"{name} must start with postgres:// or postgresql://, got scheme {parts.scheme!r}.")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ImproperlyConfigured(f"{name} must name a database, e.g. postgres://user@host:5432/analytics.")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has an invalid port.") from None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "OPTIONS": dict(parse_qsl(parts.query)),
    }


def env_database(name: str, default: Any = REQUIRED) -> dict[str, Any]:
    """Read a PostgreSQL URL into a DATABASES entry."""
    return parse_database_url(
        env_str(name, default, help_text="PostgreSQL URL, e.g. postgres://user:password@host:5432/analytics"),
        name=name,
    )


def env_redis_url(name: str, default: Any = REQUIRED) -> str:
    """Read a Redis URL (redis:// or rediss://)."""
    value = env_str(name, default, help_text="Redis URL, e.g. redis://host:6379/0")
    if urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"{name} must start with redis://, rediss:// or unix://, got {value!r}.")
    return value
