"""Sign-in throttling with django-axes: a username is locked out from an address after repeated failures.

Axes counts failures per (username, source address) in the Redis cache, so every web process shares the count;
after SIGN_IN_FAILURE_LIMIT failures the pair is refused for SIGN_IN_LOCKOUT_MINUTES, even with the right
password, with 429 and Retry-After. Only the pair is locked: an attacker elsewhere cannot lock a user out.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class SignInThrottleBackend(AxesStandaloneBackend):
    """Axes' lockout check for web sign-ins; authentication without a request (management commands, the shell)
    is not a sign-in from anywhere, so it is left to the next backend instead of being refused."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs: Any):  # fmt: skip
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def sign_in_locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """429 with Retry-After and a page that says how long to wait (AXES_LOCKOUT_CALLABLE)."""
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else 0
    response = render(
        request,
        "registration/locked_out.html",
        {"minutes": max(1, round(seconds / 60)) if seconds else None},
        status=429,
    )
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
