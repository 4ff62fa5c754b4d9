"""Time to every panel drawn, for each demo dashboard, in a real browser.

Production settings (`manage.py serve`, collected and compressed static files) on a database of its own holding
the demo (its sources and dashboards) with a day of its history written through the HTTP ingest API, as `make demo`
writes it. Headless Chromium (Debian's chromium and chromium-driver, through Selenium) at 1440x900 opens each demo
dashboard at "Last 24 hours" several times (a warm-up load first, then LOADS measured loads, each a fresh
navigation with the browser cache on, as a person reloading it) and reads, from the page itself:
- the navigation timing (`performance.getEntriesByType("navigation")`): response end, DOMContentLoaded, load;
- the "dashboard-panels-drawn" mark the dashboard sets when every panel has drawn (or shown its error), in ms
  since the navigation started.
The figure is the median of the loads. Target: under 1 s for a 10-panel dashboard at "Last 24 hours".
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import smoke
from bench.django_server import database_drop, database_versions, manage, prod_environment
from bench.ingest import _start_web

BENCH_DATABASE = "analytics_bench_panels_drawn"
PASSWORD = "bench-panels-drawn-password"  # noqa: S105 (a throw-away user of a throw-away database)
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CHROMEDRIVER = "/usr/bin/chromedriver"
RANGE = "now-24h"
TARGET_MS = 1000


def _log(message: str) -> None:
    print(f"[bench panels_drawn] {message}", file=sys.stderr, flush=True)


def _prepare(environment: dict[str, str]) -> dict[str, str]:
    """A fresh database with the demo's admin, sources and dashboards; returns the simulator's write keys."""
    database_drop(environment["DATABASE_URL"])
    manage(environment, "check_services", "--create-database")
    manage(environment, "migrate", "--noinput")
    manage(environment, "collectstatic", "--noinput")
    script = (
        "from django.contrib.auth import get_user_model; "
        "u, _ = get_user_model().objects.get_or_create(username='admin', defaults={'is_staff': True, "
        "'is_superuser': True}); "
        f"u.set_password({PASSWORD!r}); u.save(); "
        "from django.core.management import call_command; call_command('demo_data', verbosity=0); "
        "from analytics_platform.management.commands.demo_data import simulator_write_keys; import json; "
        "print(json.dumps(simulator_write_keys()))"
    )
    return json.loads(manage(environment, "shell", "-c", script).strip().splitlines()[-1])


def _dashboards(environment: dict[str, str]) -> list[dict[str, Any]]:
    script = (
        "import json; from apps.dashboards.models import Dashboard; "
        "print(json.dumps([{'uid': d.uid, 'title': d.title, 'panels': d.panels.count()} "
        "for d in Dashboard.objects.order_by('title')]))"
    )
    return json.loads(manage(environment, "shell", "-c", script).strip().splitlines()[-1])


def _browser(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = next((path for path in CHROMIUM_CANDIDATES if Path(path).exists()), None)
    if binary is None or not Path(CHROMEDRIVER).exists():
        raise RuntimeError("headless Chromium is missing: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run",
                 f"--user-data-dir={profile}", "--window-size=1440,900"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


_READ = """
const mark = performance.getEntriesByName("dashboard-panels-drawn")[0];
if (!mark) return null;
const nav = performance.getEntriesByType("navigation")[0];
return {
  panels_drawn_ms: mark.startTime,
  response_end_ms: nav.responseEnd,
  dom_content_loaded_ms: nav.domContentLoadedEventEnd,
  load_ms: nav.loadEventEnd,
  panels: document.querySelectorAll("#grid .panel").length,
  panel_errors: document.querySelectorAll("#grid .panel-message.error").length,
  transfer_bytes: performance.getEntriesByType("resource").reduce((total, entry) => total + entry.transferSize, 0)
    + nav.transferSize,
};
"""


_DRAIN_ROLLUPS = (
    "from apps.storage.selectors import rollup_backlog; from apps.storage.services import rollups_refresh\n"
    "for _ in range(200):\n"
    "    rollups_refresh()\n"
    "    if not any(count for count, _ in rollup_backlog().values()):\n"
    "        break\n"
)


def _load(driver: Any, url: str) -> dict[str, float]:
    driver.get(url)
    deadline = time.monotonic() + 60
    from selenium.common.exceptions import TimeoutException

    while time.monotonic() < deadline:
        try:
            figures = driver.execute_script(_READ)
        except TimeoutException:  # the page's main thread is busy drawing; ask again
            continue
        if figures:
            return figures
        time.sleep(0.05)
    raise RuntimeError(f"{url}: the dashboard did not mark every panel drawn within 60 s")


def _median(loads: list[dict[str, float]], name: str) -> float:
    return round(statistics.median(load[name] for load in loads), 1)


def _reuse_wanted() -> bool:
    """BENCH_PANELS_DRAWN_REUSE=1: measure on the database the previous run prepared, skipping its preparation and
    history (minutes), to compare two checkouts back to back. Its history ends when that run wrote it, so compare
    only runs that reuse the same database, close together."""
    return os.environ.get("BENCH_PANELS_DRAWN_REUSE") == "1"


def run(*, quick: bool = False) -> dict:
    """Median time to every panel drawn per demo dashboard (see the module docstring)."""
    loads_per_dashboard = 1 if smoke() else 3 if quick else 7
    history_days = "0.02" if smoke() else "1"
    # The demo's sources keep raw points longer than the server's default, which the operator must allow.
    environment = prod_environment(database=BENCH_DATABASE, redis_db=10, STORAGE_SOURCE_RETENTION_MAX_DAYS_RAW="35")
    reuse = _reuse_wanted()
    if reuse:
        _log("reusing the database a previous run prepared (BENCH_PANELS_DRAWN_REUSE=1)")
        manage(environment, "collectstatic", "--noinput")  # this checkout's scripts and styles
    else:
        _log("preparing the database and the demo")
        keys = _prepare(environment)
    launcher, port, _ = _start_web(environment, None)
    profile = Path(tempfile.mkdtemp(prefix="bench-panels-drawn-"))
    driver = None
    history_seconds = refresh_seconds = None
    try:
        base = f"http://127.0.0.1:{port}"
        if not reuse:
            history_started = time.monotonic()
            _log(f"writing {history_days} day(s) of demo history through the ingest API")
            manage(
                {**environment, "SIMULATE_WRITE_KEYS": ",".join(f"{slug}={key}" for slug, key in keys.items())},
                "demo_history", "--url", base, "--days", history_days,
            )  # fmt: skip
            history_seconds = round(time.monotonic() - history_started, 1)
            # The demo's beat refreshes the rollups every 10 s; here nothing runs it, so drain them as it would.
            refresh_started = time.monotonic()
            manage(environment, "shell", "-c", _DRAIN_ROLLUPS)
            refresh_seconds = round(time.monotonic() - refresh_started, 1)
        driver = _browser(profile)
        driver.get(f"{base}/accounts/login/")
        driver.find_element("name", "username").send_keys("admin")
        driver.find_element("name", "password").send_keys(PASSWORD)
        driver.find_element("css selector", "form [type=submit]").click()
        time.sleep(1)
        results = {}
        for dashboard in _dashboards(environment):
            url = f"{base}/dashboards/{dashboard['uid']}/?from={RANGE}&to=now"
            _load(driver, url)  # warm-up: the browser caches static files, as it would for a person
            loads = [_load(driver, url) for _ in range(loads_per_dashboard)]
            results[dashboard["title"]] = {
                "panels": dashboard["panels"],
                "loads": loads_per_dashboard,
                "median_panels_drawn_ms": _median(loads, "panels_drawn_ms"),
                "median_dom_content_loaded_ms": _median(loads, "dom_content_loaded_ms"),
                "median_load_ms": _median(loads, "load_ms"),
                "median_response_end_ms": _median(loads, "response_end_ms"),
                "max_panels_drawn_ms": round(max(load["panels_drawn_ms"] for load in loads), 1),
                "panel_errors": max(load["panel_errors"] for load in loads),
                "transfer_bytes_median": int(statistics.median(load["transfer_bytes"] for load in loads)),
            }
            _log(f"{dashboard['title']}: {results[dashboard['title']]}")
        ten_panel = [name for name, figures in results.items() if figures["panels"] >= 10]
        return {
            "database": database_versions(environment["DATABASE_URL"]),
            "range": RANGE,
            "window": "1440x900",
            "history_days": float(history_days),
            "history_seconds": history_seconds,
            "reused_database": reuse,
            "rollup_refresh_seconds": refresh_seconds,
            "target_ms_for_10_panels": TARGET_MS,
            "dashboards": results,
            "target_met": all(results[name]["median_panels_drawn_ms"] < TARGET_MS for name in ten_panel)
            if ten_panel
            else None,
            "cpus": os.cpu_count(),
        }
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        launcher.terminate()
        launcher.wait(timeout=30)
