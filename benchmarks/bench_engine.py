"""pytest-benchmark runs of the engine's cases (``benchmarks/kernel.py``).

Run with ``python -m pytest benchmarks/bench_engine.py --benchmark-only``.
Each case is prepared as the table prepares it: it first asserts that the
engine does what the case claims to measure (an accepted order is accepted, a
rejection has the expected reason), so a benchmark cannot silently time a
different path.
"""
from __future__ import annotations

from typing import Callable

from benchmarks.kernel import Case, Experiment, GIL_TARGETS
from benchmarks.results import Row

KERNEL_SECTIONS = ("single check", "compiled vs reference model", "order lifecycle", "batches", "GIL release",
                   "price updates", "aggregates")


def test_engine_case(run_case: Callable[[Case], None], case: Case) -> None:
    run_case(case)


def test_engine_experiment(run_experiment: Callable[[Experiment], list[Row]], experiment: Experiment) -> None:
    rows = run_experiment(experiment)
    # Not a speed target: a Python thread keeps ~2% of its speed while a batch holds the GIL.
    assert all(t.met(row) for row in rows for t in row.targets if t in GIL_TARGETS), rows
