"""Benchmarks of the riskcore kernel, the risk service and its durable state.

Two ways in:

- ``python -m pytest benchmarks --benchmark-only``: pytest-benchmark cases in
  ``bench_*.py`` (``benchmarks/pytest.ini`` collects them; ``benchmarks/`` is
  outside the project's ``testpaths``): the kernel cases of ``kernel.py`` on
  the books of ``workload.py`` (the same cases the kernel table prints), and
  the service over gRPC (``bench_service.py``).
- ``python -m benchmarks [--suite kernel|service|durability|control|all] [--quick] [--json PATH]``:
  per-call percentiles, throughput, and a verdict against the targets; the
  service and durability suites run servers, clients and nats-server as child
  processes (``processes.py``, ``service_client.py``, ``echo_server.py``).
"""
