"""pytest-benchmark runs of the ITCH 5.0 decoder and L3 book's cases (``benchmarks/kernel.py``).

Run with ``python -m pytest benchmarks/bench_itch.py --benchmark-only``. The
day file (10M messages over 5,000 symbols by default, the issue's size; set
``RISKCORE_BENCH_ITCH_MESSAGES`` for another) is made once per session by the
simulator in a temporary folder. Each case first checks that the book took
every message cleanly, so a benchmark cannot time a broken decode.
"""
from __future__ import annotations

from typing import Callable

from benchmarks.kernel import Case, Experiment, GIL_TARGETS
from benchmarks.results import Row

KERNEL_SECTIONS = ("ITCH replay",)


def test_itch_case(run_case: Callable[[Case], None], case: Case) -> None:
    run_case(case)


def test_itch_experiment(run_experiment: Callable[[Experiment], list[Row]], experiment: Experiment) -> None:
    rows = run_experiment(experiment)
    # Feeds release the GIL: a Python thread keeps ~2% of its speed while a call holds it.
    assert all(t.met(row) for row in rows for t in row.targets if t in GIL_TARGETS), rows
