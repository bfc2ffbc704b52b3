"""Benchmarks: `python bench/run.py [--quick]` (README "Benchmarks"). Not run in CI."""
