"""Create a personal API token for a user and print it once."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.access.services import api_token_create, api_token_expiry_from_days


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print the secret (it is stored hashed and never shown again)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="What the token is for (default: cli).")
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="Lifetime in days; default: never expires."
        )

    def handle(self, *args, username: str, name: str, expires_in_days: int | None, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}. Create one with: python manage.py createsuperuser")
        try:
            _, raw_key = api_token_create(user=user, name=name, expires_at=api_token_expiry_from_days(expires_in_days))
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(raw_key)
        self.stderr.write(f"Token '{name}' created for {username}. Send it as 'Authorization: Bearer <token>'.")
