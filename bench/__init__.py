"""Reproducible benchmarks: one module per scenario, results in docs/benchmarks.md."""
