"""The demo's report: the Factory floor dashboard over the last 7 days as PDF and XLSX, to the admin, on demand (the
demo has no mail server; its preview shows the files as the admin would get them).

Idempotent by name: a report the organisation already has is left as it is.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from apps.access.models import Organization
from apps.dashboards.models import Dashboard
from apps.reporting.models import Report
from apps.reporting.services import report_create

DEMO_REPORT = "Factory floor, last 7 days"


def demo_reports_create(*, organization: Organization, owner: AbstractBaseUser) -> list[str]:
    """Create the demo report when missing (and its dashboard exists); returns the names created."""
    dashboard = Dashboard.objects.filter(organization=organization, title="Factory floor").first()
    if dashboard is None or Report.objects.filter(organization=organization, name=DEMO_REPORT).exists():
        return []
    if not owner.email:  # a recipient needs an address (the benchmarks' admin has none): no report then
        return []
    report_create(organization=organization, owner=owner, data={
        "name": DEMO_REPORT, "dashboard": dashboard.uid, "formats": ["pdf", "xlsx"],
        "recipients": {"users": [owner.get_username()]}, "time_range": {"start": "-7d", "end": "now"},
    })  # fmt: skip
    return [DEMO_REPORT]
