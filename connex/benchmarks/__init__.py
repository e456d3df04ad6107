"""Benchmarks: commands that print figures (``python -m connex.benchmarks``). Never run as tests."""
