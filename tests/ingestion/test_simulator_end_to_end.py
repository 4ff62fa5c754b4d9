"""The demo path end to end: the simulator's HTTP sink writes through the real ingest API into storage."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.db import connection

from analytics_platform.management.commands.demo_data import simulator_write_keys
from apps.sources.models import Source
from tests.conftest import REPO_ROOT
from tests.ingestion.factories import stored_points

pytestmark = pytest.mark.usefixtures("storage_committed_cleanup")


def test_demo_data_and_a_simulator_backfill_land_in_storage(daphne_server):
    from django.core.management import call_command

    call_command("demo_data", verbosity=0)
    keys = simulator_write_keys()
    assert set(keys) == {"demo-factory", "demo-marketing", "demo-business"}
    result = subprocess.run(
        [sys.executable, "manage.py", "simulate", "--scenario", "factory", "--devices", "5", "--no-realtime",
         "--start", "-2m", "--duration", "60", "--sink", "http", "--url", f"http://{daphne_server}",
         "--write-key", f"demo-factory={keys['demo-factory']}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={"DJANGO_SETTINGS_MODULE": "analytics_platform.settings.test", "PATH": "/usr/bin:/bin",
             "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    points = stored_points(source=Source.objects.get(slug="demo-factory"))
    # 5 devices x 60 seconds x 5 measures, every one accepted by the factory's declared ranges.
    assert len(points) == 5 * 60 * 5
    assert {metric for metric, *_ in points} == {"temperature", "vibration", "pressure", "flow", "power"}
    assert {labels["facility"] for _, labels, *_ in points} <= {"f1", "f2", "f3", "f4", "f5"}
