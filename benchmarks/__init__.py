"""Benchmarks, run by hand from the repository root as modules: `python -m benchmarks.decode`.
Each writes its figures to benchmarks/results/ when asked (--json, --md)."""
