"""Benchmarks whose numbers land in docs/benchmarks.md; ``python -m bench --quick --json`` runs them all."""
