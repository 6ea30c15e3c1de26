"""Benchmarks of the riskcore kernel.

Two ways in, measuring the same cases on the same books (``workload.py``):

- ``python -m pytest benchmarks --benchmark-only``: pytest-benchmark cases in
  ``bench_*.py`` (``benchmarks/pytest.ini`` collects them; ``benchmarks/`` is
  outside the project's ``testpaths``).
- ``python -m benchmarks [--quick] [--json PATH]``: per-call percentiles from
  ``perf_counter_ns`` loops, throughput, and a verdict against the targets.
"""
