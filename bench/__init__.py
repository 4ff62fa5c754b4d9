"""Benchmarks: `make bench` runs them all and writes JSON to bench/results/."""

from __future__ import annotations

import os


def smoke() -> bool:
    """Whether this is a smoke run (`python -m bench --smoke`): every stage once at the smallest size, to show
    the benchmarks still run to their end (the test suite runs it), not to measure anything."""
    return os.environ.get("BENCH_SMOKE") == "1"
