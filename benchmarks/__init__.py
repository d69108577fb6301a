"""Benchmarks for the policy pipeline, the compiled evaluator and the gRPC service.

Run ``python -m pytest benchmarks --quick`` for the gated CI run; see
``docs/performance.md`` for the full run and the report.
"""
