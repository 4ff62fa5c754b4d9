"""Every benchmark runs to its end: `python -m bench --smoke` (each stage once, at the smallest size).

`make bench` once stopped at the start of `bench/live.py` for weeks, because nothing ran it after `serve` changed a
helper it used. This runs them all the way `make bench` does (their own databases and servers, InfluxDB included)
and checks each wrote the figures its report is read for. It measures nothing: the sizes are too small.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# Nine benchmarks at their smallest take 3 to 5 minutes on a quiet 2-core machine and more on a loaded one; the
# bounds only stop a hung run (this measures nothing).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_every_benchmark_runs_to_its_end_and_writes_its_figures(tmp_path: Path):
    assert shutil.which("influxd"), "InfluxDB 1.x (Debian package influxdb) is needed: apt-get install -y influxdb"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--results-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=840, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = {name: json.loads((tmp_path / f"{name}-latest.json").read_text()) for name in
               ("alerting", "anomaly", "dashboards", "http_api", "ingest", "live", "panels_drawn", "reports",
                "storage")}  # fmt: skip
    assert all(document["smoke"] for document in results.values())
    for name in ("alerting", "dashboards", "http_api", "ingest", "live", "panels_drawn", "storage"):  # versions
        database = results[name]["result"]["database"]
        assert database["storage_backend"] in ("postgres", "timescaledb"), (name, database)
        assert database["postgres"], (name, database)

    dashboards = results["dashboards"]["result"]["configurations"]["shared"]
    assert dashboards["queries_per_user"] >= 10
    for crowd in ("users_1", "users_2"):
        assert dashboards[crowd]["time_to_all_panels_median_s"] > 0, crowd
        assert dashboards[crowd]["query_p95_s"] > 0, crowd

    http_api = results["http_api"]["result"]
    assert http_api["me_token"]["median_ms"] > 0
    assert http_api["ratio_token_to_session_median"] > 0

    ingest = results["ingest"]["result"]
    assert "error" not in ingest.get("influxdb", {}), ingest.get("influxdb")
    for name in ("ours_line_protocol", "ours_json", "influxdb"):
        assert ingest[name]["points_per_second"] > 0, name
    assert ingest["ratio_line_protocol_to_influxdb"] > 0
    assert ingest["stage_profile"]
    for age in ("live", "1h", "1d", "30d", "300d"):
        assert ingest["backfill"][age]["ratio_to_influxdb"] > 0, age
        assert ingest["backfill"][age]["ratio_to_our_live"] > 0, age

    live = results["live"]["result"]
    assert live["paced"]["probe_latency"]["samples"] > 0
    assert live["paced"]["probe_deliveries_missing"]["deliveries_missing"] == 0
    assert live["saturation"]["delivered_messages_per_second"] > 0

    alerting = results["alerting"]["result"]
    assert alerting["detection"]["missed"] == 0
    assert alerting["detection"]["firing"]["samples"] > 0
    assert alerting["evaluation_cost"]["per_machine_rules"]["instances_per_second"] > 0

    storage = results["storage"]["result"]
    assert set(storage["queries"]) == {
        "a_raw_15m_one_device", "b_avg_1m_24h_by_facility", "c1_avg_1h_30d_one_facility",
        "c2_avg_1h_30d_fleet_by_facility",
    }  # fmt: skip
    assert storage["load"]["ratio_ours_to_influx"]["write_path"] > 0
    # The backfill phase: absorbed, and the query mix timed during the drain and alone before and after it.
    backfill = storage["backfill"]
    assert backfill["seconds_from_first_write_to_drained"] > 0
    assert backfill["redeliveries"] > 0  # batches written twice: the re-aggregating path under a backlog
    assert backfill["redelivery_ms"]["n"] == backfill["redeliveries"]
    assert backfill["live_write_ms"]["n"] > 0  # the live source beside the backfill
    assert backfill["queries_meanwhile_detail"]["all"]["n"] > 0
    for phase in ("queries_reference_before_backfill", "queries_reference_after_drain"):
        assert backfill[phase]["all"]["n"] >= 12, phase  # at least 3 rounds of the 4 queries
    # Data policies: the same answers through 1, 10 and 100 policies as through none (timings are measured by
    # `make bench`, not asserted on a smoke run).
    assert storage["policies"]["same_answers_as_baseline"] is True
    assert set(storage["policies"]["cases"]["b_avg_1m_24h_by_facility"]) == {
        "no policy (superuser)", "1 policies", "10 policies", "100 policies",
    }  # fmt: skip

    panels_drawn = results["panels_drawn"]["result"]["dashboards"]
    assert set(panels_drawn) == {"Executive", "Factory floor", "Marketing"}
    for figures in panels_drawn.values():
        assert 0 < figures["median_panels_drawn_ms"] < 60_000
        assert figures["panel_errors"] == 0

    reports = results["reports"]["result"]
    assert set(reports["formats"]) == {"pdf", "xlsx", "csv", "xlsx+csv"}
    for measured in reports["formats"].values():
        assert measured["seconds"] > 0
        assert measured["bytes"] > 0
        assert measured["peak_rss_mb"] >= 0

    anomaly = results["anomaly"]["result"]
    assert set(anomaly["detectors"]) >= {"novelty", "seasonal", "ensemble"}
    for name, detector in anomaly["detectors"].items():
        assert set(detector["profiles"]) == {"standard", "reward_low_FP", "reward_low_FN"}, name
        for profile in detector["profiles"].values():
            assert isinstance(profile["score"], float)
            assert profile["categories"]
            assert "pooled" in profile["leave_one_category_out"]
        assert detector["speed"]["points_per_second"] > 0
        assert detector["speed"]["memory_bytes_per_series"] > 0
        assert detector["machine_temperature"]["windows"]
