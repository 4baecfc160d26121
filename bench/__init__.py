"""Benchmarks of caxton_actors; run each with ``python -m bench.<name>`` from the repo root."""
