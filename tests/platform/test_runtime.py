"""Start-up tuning of server processes."""

from __future__ import annotations

import gc
import sys

from analytics_platform.runtime import startup_objects_freeze


def test_startup_objects_are_frozen_out_of_full_collections():
    gc.unfreeze()
    try:
        startup_objects_freeze()
        assert gc.get_freeze_count() > 10_000  # Django, the apps and every view module
        assert "apps.ingestion.views" in sys.modules  # views are imported before freezing, not on first request
    finally:
        gc.unfreeze()
