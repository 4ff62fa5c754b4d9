"""Create the demo's objects: an organisation, the simulator's three sources, three dashboards, an alert rule with
its contact point and a mute timing, and a report."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from apps.access.models import Membership, MembershipRole, Organization

DEMO_ORGANIZATION = ("demo", "Demo Manufacturing")
# slug -> (name, schema definition). The factory declares sensor ranges so out-of-range readings show up as dead
# letters; the event sources infer their fields.
DEMO_SOURCES: dict[str, tuple[str, dict]] = {
    "demo-factory": (
        "Factory sensors",
        {
            "measures": {
                "temperature": {"type": "number", "min": -40, "max": 250},
                "vibration": {"type": "number", "min": 0, "max": 100},
                "pressure": {"type": "number", "min": 0, "max": 1000},
            },
            "labels": {"device": {"required": True}, "facility": {"required": True}},
        },
    ),
    "demo-marketing": ("Web and app events", {}),
    "demo-business": ("ERP and finance events", {}),
}
SIMULATOR_KEY_NAME = "demo simulator"
# The demo writes this many days of history (DEMO_HISTORY_DAYS); its sources keep raw points a little longer, or
# ingest would refuse the oldest as already past retention.
DEMO_RAW_RETENTION_DAYS = 35


class Command(BaseCommand):
    help = "Create demo objects (idempotent)."

    def handle(self, *args, **options) -> None:
        from apps.sources.models import Source
        from apps.sources.services import source_create

        slug, name = DEMO_ORGANIZATION
        organization, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": name})
        admin = get_user_model().objects.filter(username="admin").first()
        if admin is not None:
            Membership.objects.get_or_create(
                organization=organization, user=admin, defaults={"role": MembershipRole.ADMIN}
            )
        created = []
        for source_slug, (source_name, schema) in DEMO_SOURCES.items():
            if Source.objects.filter(slug=source_slug).exists():
                Source.objects.filter(slug=source_slug, raw_retention_days__isnull=True).update(
                    raw_retention_days=DEMO_RAW_RETENTION_DAYS
                )
                continue
            source_create(
                organization=organization,
                name=source_name,
                slug=source_slug,
                schema_definition=schema,
                created_by=admin,
                raw_retention_days=DEMO_RAW_RETENTION_DAYS,
            )
            created.append(source_slug)
        dashboards, extras = [], []
        if admin is not None:
            from apps.alerts.demo import demo_alerting_create
            from apps.dashboards.demo import demo_dashboards_create
            from apps.reporting.demo import demo_reports_create

            dashboards = demo_dashboards_create(organization=organization, owner=admin)
            extras = demo_alerting_create(organization=organization, owner=admin)
            extras += demo_reports_create(organization=organization, owner=admin)
        self.stdout.write(
            f"Demo data is up to date (new sources: {', '.join(created) or 'none'}; "
            f"dashboards: {', '.join(dashboard.title for dashboard in dashboards) or 'none'}; "
            f"new alerting and reports: {', '.join(extras) or 'none'})."
        )


def simulator_write_keys() -> dict[str, str]:
    """Fresh write keys for the demo simulator, one per demo source; the previous run's keys are revoked."""
    from apps.sources.models import Source, SourceWriteKey
    from apps.sources.services import write_key_create, write_key_revoke

    for key in SourceWriteKey.objects.filter(name=SIMULATOR_KEY_NAME, revoked_at__isnull=True):
        write_key_revoke(key=key)
    keys = {}
    for source in Source.objects.filter(slug__in=list(DEMO_SOURCES)):
        _, raw_key = write_key_create(source=source, name=SIMULATOR_KEY_NAME)
        keys[source.slug] = raw_key
    return keys
