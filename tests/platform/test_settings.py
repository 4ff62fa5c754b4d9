"""Settings validation: typed environment readers and the production settings' fail-fast checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from analytics_platform.settings.base import build_logging
from analytics_platform.settings.environment import (
    env_bool,
    env_database,
    env_int,
    env_list,
    env_redis_url,
    env_str,
    parse_database_url,
)
from tests.conftest import REPO_ROOT


def test_required_variable_missing_names_it(monkeypatch):
    monkeypatch.delenv("SOME_REQUIRED", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SOME_REQUIRED is required but not set"):
        env_str("SOME_REQUIRED", help_text="what it is")


def test_default_used_when_missing(monkeypatch):
    monkeypatch.delenv("SOME_OPTIONAL", raising=False)
    assert env_str("SOME_OPTIONAL", "fallback") == "fallback"
    assert env_int("SOME_OPTIONAL", 7) == 7
    assert env_list("SOME_OPTIONAL", ["a"]) == ["a"]


def test_int_parsing_and_bounds(monkeypatch):
    monkeypatch.setenv("PORTISH", "8080")
    assert env_int("PORTISH", minimum=1) == 8080
    monkeypatch.setenv("PORTISH", "eighty")
    with pytest.raises(ImproperlyConfigured, match="PORTISH must be an integer, got 'eighty'"):
        env_int("PORTISH")
    monkeypatch.setenv("PORTISH", "0")
    with pytest.raises(ImproperlyConfigured, match="must be >= 1"):
        env_int("PORTISH", minimum=1)


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("TRUE", True), ("yes", True), ("0", False), ("off", False)]
)
def test_bool_parsing(monkeypatch, raw, expected):
    monkeypatch.setenv("FLAG", raw)
    assert env_bool("FLAG") is expected


def test_bool_rejects_garbage(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG must be a boolean"):
        env_bool("FLAG", False)


def test_list_strips_blanks(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example.com, ,b.example.com ")
    assert env_list("HOSTS") == ["a.example.com", "b.example.com"]
    monkeypatch.setenv("HOSTS", " , ")
    with pytest.raises(ImproperlyConfigured, match="at least one value"):
        env_list("HOSTS")


def test_database_url_parsed():
    parsed = parse_database_url("postgres://user:p%40ss@db.example.com:6543/analytics?sslmode=require")
    assert parsed["NAME"] == "analytics"
    assert parsed["USER"] == "user"
    assert parsed["PASSWORD"] == "p@ss"
    assert parsed["HOST"] == "db.example.com"
    assert parsed["PORT"] == "6543"
    assert parsed["OPTIONS"] == {"sslmode": "require"}


@pytest.mark.parametrize(
    ("url", "message"),
    [("mysql://u@h/db", "must start with postgres://"), ("postgres://u@h:5432/", "must name a database")],
)
def test_database_url_rejected(monkeypatch, url, message):
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ImproperlyConfigured, match=message):
        env_database("DATABASE_URL")


def test_redis_url_scheme_checked(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "http://localhost:6379")
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL must start with redis://"):
        env_redis_url("REDIS_URL")


def test_log_format_validated():
    assert build_logging(level="INFO", log_format="json")["formatters"]["json"]["()"].endswith("JsonFormatter")
    with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT must be 'json' or 'text'"):
        build_logging(level="INFO", log_format="xml")


PROD_ENVIRONMENT = {
    "DJANGO_SETTINGS_MODULE": "analytics_platform.settings.prod",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
    "DJANGO_ALLOWED_HOSTS": "analytics.example.com",
    "DATABASE_URL": "postgres://analytics:secret@db.example.com:5432/analytics",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


def _run_with_prod_settings(environment: dict[str, str], code: str) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items() if key not in PROD_ENVIRONMENT}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**base, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )


LOAD_SETTINGS = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"


def test_prod_settings_load_with_full_environment():
    result = _run_with_prod_settings(PROD_ENVIRONMENT, LOAD_SETTINGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"])
def test_prod_settings_fail_fast_without_required_value(missing):
    environment = {key: value for key, value in PROD_ENVIRONMENT.items() if key != missing}
    result = _run_with_prod_settings(environment, LOAD_SETTINGS)
    assert result.returncode != 0
    assert f"Environment variable {missing} is required but not set" in result.stderr


def test_prod_settings_refuse_weak_secret_key():
    result = _run_with_prod_settings({**PROD_ENVIRONMENT, "DJANGO_SECRET_KEY": "django-insecure-short"}, LOAD_SETTINGS)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is too weak" in result.stderr


def test_prod_settings_pass_deploy_checks():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env={**os.environ, **PROD_ENVIRONMENT},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_prod_logs_are_json():
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('analytics.test').warning('hello %s', 'world', extra={'source': 's1'})"
    )
    result = _run_with_prod_settings(PROD_ENVIRONMENT, code)
    assert result.returncode == 0, result.stderr
    import json

    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["message"] == "hello world"
    assert record["level"] == "WARNING"
    assert record["logger"] == "analytics.test"
    assert record["source"] == "s1"


def test_pub_sub_channels_carry_the_redis_database_so_deployments_on_other_databases_do_not_hear_them(settings):
    """Redis shares pub/sub channels across its databases: two deployments on redis://host/0 and redis://host/1
    with the default prefix heard each other's ingest changes (series ids and points reached the other's live
    panels) and WebSocket closes. Channels now name the database; keys stay per database as Redis keeps them."""
    from analytics_platform.redis_client import redis_channel, redis_key
    from apps.access.websocket_sessions import CLOSE_CHANNEL
    from apps.alerts.alerting.services import RULES_CHANGED_CHANNEL
    from apps.ingestion.events import CHANGES_CHANNEL
    from apps.storage.scope_events import SCOPE_CHANNEL

    database = settings.REDIS_URL.rsplit("/", 1)[-1]
    assert f"{settings.REDIS_KEY_PREFIX}:db{database}:ingest:changes" == CHANGES_CHANNEL
    assert {CLOSE_CHANNEL, SCOPE_CHANNEL, RULES_CHANGED_CHANNEL} == {
        redis_channel("access", "websocket-closes"), redis_channel("access", "scope-changes"),
        redis_channel("alerts", "rules-changed"),
    }  # fmt: skip
    settings.REDIS_KEY_PREFIX = "analytics"
    names = []
    for url in ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1", "redis://127.0.0.1:6379"):
        settings.REDIS_URL = url
        names.append(redis_channel("ingest", "changes"))
    assert names == ["analytics:db0:ingest:changes", "analytics:db1:ingest:changes", "analytics:db0:ingest:changes"]
    assert redis_key("ingest", "rate") == "analytics:ingest:rate"  # keys as before
