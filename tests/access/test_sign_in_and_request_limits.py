"""Sign-in throttling (django-axes), the Content Security Policy, and query-API rate limits per token or user."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.access.services import api_token_create
from apps.audit.models import AuditEvent
from tests.factories import user_create

PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.django_db


def test_twenty_wrong_passwords_are_throttled(user):
    client = Client(REMOTE_ADDR="203.0.113.9")
    statuses = [
        client.post("/accounts/login/", {"username": "alice", "password": f"guess-{n}"}).status_code for n in range(20)
    ]
    assert statuses[:4] == [200] * 4  # the form again, with its error
    assert set(statuses[4:]) == {429}  # the fifth failure locks the pair
    locked = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429  # even the right password, until the lockout ends
    assert int(locked["Retry-After"]) == 15 * 60
    assert b"Too many sign-in attempts" in locked.content
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="auth.sign_in_failed").count() >= 5
    locked_out = AuditEvent.objects.filter(action="auth.locked_out").first()
    assert locked_out is not None
    assert (locked_out.source_ip, locked_out.details["username"]) == ("203.0.113.9", "alice")


def test_the_lockout_is_per_username_and_address(user, other_user):
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for n in range(6):
        attacker.post("/accounts/login/", {"username": "alice", "password": f"guess-{n}"})
    # The same user from another address, and another user from the attacker's address, still sign in.
    elsewhere = Client(REMOTE_ADDR="198.51.100.20")
    assert elsewhere.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    assert attacker.post("/accounts/login/", {"username": "bob", "password": PASSWORD}).status_code == 302


def test_a_success_before_the_limit_resets_the_count(user):
    client = Client(REMOTE_ADDR="203.0.113.10")
    for _ in range(3):
        for n in range(4):
            client.post("/accounts/login/", {"username": "alice", "password": f"guess-{n}"})
        assert client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
        client.post("/accounts/logout/")


def test_management_code_can_still_authenticate_without_a_request(user):
    from django.contrib.auth import authenticate

    assert authenticate(username="alice", password=PASSWORD) == user


@pytest.mark.parametrize("path", ["/accounts/login/", "/", "/dashboards/", "/api/docs/", "/api/redoc/"])
def test_pages_carry_a_content_security_policy(path, user):
    client = Client()
    if path != "/accounts/login/":
        client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"].startswith("'self'")
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in directives["script-src"]
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"


def test_redoc_runs_its_inline_start_up_with_the_responses_nonce(user):
    client = Client()
    client.force_login(user)
    response = client.get("/api/redoc/")
    nonce = response["Content-Security-Policy"].split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}">'.encode() in response.content
    assert b"fonts.googleapis.com" not in response.content


@pytest.fixture
def query_rate(monkeypatch):
    """Set the query rate for one test (DRF reads the rates into the throttle class at import)."""
    from rest_framework.throttling import SimpleRateThrottle

    def set_rate(rate: str) -> None:
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"query": rate})

    return set_rate


def test_the_query_api_is_throttled_per_token_with_retry_after(query_rate, editor):
    query_rate("3/min")
    _, first_key = api_token_create(user=editor, name="one")
    _, second_key = api_token_create(user=editor, name="two")
    first, second = APIClient(), APIClient()
    first.credentials(HTTP_AUTHORIZATION=f"Bearer {first_key}")
    second.credentials(HTTP_AUTHORIZATION=f"Bearer {second_key}")
    statuses = [first.get("/api/v1/series/metrics").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = first.post("/api/v1/query", {"metric": "m"}, format="json")
    assert throttled.status_code == 429
    assert 1 <= int(throttled["Retry-After"]) <= 60
    assert throttled.json()["code"] == "throttled"
    assert second.get("/api/v1/series/metrics").status_code == 200  # another token has its own budget
    assert first.get("/api/v1/sources/").status_code == 200  # only the query API is limited


def test_a_session_user_is_throttled_by_user(query_rate):
    query_rate("2/min")
    client = APIClient()
    client.force_authenticate(user_create(username="sam"))
    assert [client.get("/api/v1/series/metrics").status_code for _ in range(3)] == [200, 200, 429]


def test_the_query_budget_comes_back_as_the_window_slides(query_rate):
    """A sliding window (a log of the last second's requests in Redis): refused requests do not count, and each
    allowed one leaves the window a second after it was made."""
    import time

    query_rate("2/s")
    client = APIClient()
    client.force_authenticate(user_create(username="sam"))
    assert [client.get("/api/v1/series/metrics").status_code for _ in range(2)] == [200, 200]
    allowed_by = time.monotonic()  # both allowed requests are in the log by now
    refused = client.get("/api/v1/series/metrics")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "1"
    time.sleep(max(0.0, 1.05 - (time.monotonic() - allowed_by)))
    assert [client.get("/api/v1/series/metrics").status_code for _ in range(3)] == [200, 200, 429]


def test_the_default_query_rate_is_set():
    from django.conf import settings

    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["query"] == "600/min"
