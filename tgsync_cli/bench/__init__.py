"""Benchmarks that print numbers (scripts/bench); never imported by the product."""
