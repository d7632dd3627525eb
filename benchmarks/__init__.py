"""Benchmark and diagnostic scripts, run with `python -m benchmarks.<name> --help`."""
