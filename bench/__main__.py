"""Run every benchmark (or the ones named on the command line) and write JSON results."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import http_api, ingest, live, storage

BENCHMARKS = {"http_api": http_api.run, "ingest": ingest.run, "live": live.run, "storage": storage.run}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="Benchmarks to run (default: all).")
    parser.add_argument("--quick", action="store_true", help="Fewer iterations, for a smoke run.")
    arguments = parser.parse_args()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for name in arguments.names or list(BENCHMARKS):
        started = time.time()
        result = BENCHMARKS[name](quick=arguments.quick)
        document = {
            "benchmark": name,
            "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
            "duration_seconds": round(time.time() - started, 1),
            "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": _cpus()},
            "result": result,
        }
        stamp = datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%SZ")
        for path in (RESULTS_DIR / f"{name}-{stamp}.json", RESULTS_DIR / f"{name}-latest.json"):
            path.write_text(json.dumps(document, indent=2) + "\n")
        print(json.dumps(document["result"], indent=2))
        print(f"wrote {RESULTS_DIR / f'{name}-latest.json'}")
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
