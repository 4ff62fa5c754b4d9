"""Benchmarks: `make bench` runs them all and writes JSON to bench/results/."""
