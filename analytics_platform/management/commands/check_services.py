"""Say clearly whether PostgreSQL and Redis are reachable, and how to start the one that is not."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from analytics_platform.service_checks import postgres_problem, redis_problem


class Command(BaseCommand):
    help = "Check that PostgreSQL and Redis are reachable; optionally create the database if it is missing."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--create-database", action="store_true", help="Create the configured database if missing.")

    def handle(self, *args, create_database: bool, **options) -> None:
        problems = [
            problem
            for problem in (
                postgres_problem(database=settings.DATABASES["default"], create_database=create_database),
                redis_problem(url=settings.REDIS_URL),
            )
            if problem
        ]
        if problems:
            raise CommandError("\n".join(str(problem) for problem in problems))
        self.stdout.write("PostgreSQL and Redis are reachable.")
