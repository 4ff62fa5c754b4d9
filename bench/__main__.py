"""Run every benchmark (or the ones named on the command line) and write JSON results."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import alerting, anomaly, dashboards, http_api, ingest, live, panels_drawn, reports, storage

BENCHMARKS = {
    "alerting": alerting.run,
    "anomaly": anomaly.run,
    "dashboards": dashboards.run,
    "http_api": http_api.run,
    "ingest": ingest.run,
    "live": live.run,
    "panels_drawn": panels_drawn.run,
    "reports": reports.run,
    "storage": storage.run,
}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="Benchmarks to run (default: all).")
    parser.add_argument("--quick", action="store_true", help="Fewer iterations: a rough measurement.")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="Each stage once at the smallest size: shows they run, measures nothing.",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="Where the JSON results go.")
    arguments = parser.parse_args()
    # A SIGTERM (pytest-timeout killing the smoke test, a CI job cancelled) unwinds like Ctrl-C: each benchmark's
    # `finally` then stops the servers and workers it started instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    unknown = [name for name in arguments.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if arguments.smoke:
        os.environ["BENCH_SMOKE"] = "1"  # read by each benchmark and by their child processes
    results_dir: Path = arguments.results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    for name in arguments.names or list(BENCHMARKS):
        started = time.time()
        result = BENCHMARKS[name](quick=arguments.quick or arguments.smoke)
        document = {
            "benchmark": name,
            "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
            "duration_seconds": round(time.time() - started, 1),
            "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": _cpus()},
            "result": result,
        }
        stamp = datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%SZ")
        if arguments.smoke:
            document["smoke"] = True
        for path in (results_dir / f"{name}-{stamp}.json", results_dir / f"{name}-latest.json"):
            path.write_text(json.dumps(document, indent=2) + "\n")
        print(json.dumps(document["result"], indent=2))
        print(f"wrote {results_dir / f'{name}-latest.json'}")
    return 0


def _cpus() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
