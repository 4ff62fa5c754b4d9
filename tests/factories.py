"""Test data builders shared across apps."""

from __future__ import annotations

from django.contrib.auth import get_user_model


def user_create(*, username: str, password: str = "correct horse battery staple", **extra):
    """A user with a usable password."""
    return get_user_model().objects.create_user(
        username=username, email=f"{username}@example.com", password=password, **extra
    )
