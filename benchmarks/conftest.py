"""pytest-benchmark runs of the kernel cases of ``benchmarks/kernel.py``, at the full scale.

A ``bench_*.py`` module names the table's sections it runs in
``KERNEL_SECTIONS``; its test taking ``case`` runs once per case of those
sections, its test taking ``experiment`` once per experiment. Books are built
once a session and shared by the cases that leave them as they found them;
cases that change a book build their own (``KernelCases``).
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any, Callable

import pytest

from benchmarks.kernel import FULL, Case, Experiment, KernelCases, timer_overhead
from benchmarks.results import Row, Timing, fmt_ns
from benchmarks.workload import ReferenceMissing

# RISKCORE_BENCH_ITCH_MESSAGES makes the ITCH day (10M messages by default) smaller.
SCALE = dataclasses.replace(FULL, itch_messages=int(os.environ.get("RISKCORE_BENCH_ITCH_MESSAGES",
                                                                   FULL.itch_messages)))
KERNEL = KernelCases(SCALE)
_notes: list[str] = []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    sections = getattr(metafunc.module, "KERNEL_SECTIONS", ())
    for argument, kind in (("case", Case), ("experiment", Experiment)):
        if argument in metafunc.fixturenames:
            metafunc.parametrize(argument, [
                pytest.param(item, id=item.row if isinstance(item, Case) else item.name,
                             marks=pytest.mark.benchmark(group=section))
                for section, items in KERNEL.sections() if section in sections
                for item in items if isinstance(item, kind)])


@pytest.fixture
def run_case(benchmark: Any, notes: list[str]) -> Callable[[Case], None]:
    """Prepare (and check) a case as the table does, then time its call under pytest-benchmark.

    A call with one set of arguments is timed in calibrated rounds; one that
    takes its arguments in turn, or fresh ones, one call a round (the
    arguments made by pytest-benchmark's untimed setup).
    """
    def run(case: Case) -> None:
        try:
            work = case.prepare()
        except ReferenceMissing as missing:
            pytest.skip(f"reference model comparison skipped: {missing}")
        if work.fresh is None and len(work.arguments) == 1:
            benchmark(work.call, *work.arguments[0])
        else:
            turn = itertools.cycle(work.arguments)
            fresh = work.fresh or (lambda: next(turn))
            benchmark.pedantic(work.call, setup=lambda: (fresh(), {}), rounds=case.calls, iterations=1)
        if work.after is not None:
            work.after()
        stats = getattr(benchmark, "stats", None)          # None under --benchmark-disable
        if case.per_call and stats is not None:
            rate = case.per_call / stats.stats.median
            benchmark.extra_info["throughput"] = rate
            notes.append(f"{case.row}: {rate / 1e6:.2f} M {case.unit} (median)")
    return run


@pytest.fixture
def run_experiment(benchmark: Any, notes: list[str]) -> Callable[[Experiment], list[Row]]:
    """Run an experiment once under pytest-benchmark; its rows go to the notes, and are returned."""
    def run(experiment: Experiment) -> list[Row]:
        timing = Timing(timer_overhead()["median"])
        rows: list[Row] = benchmark.pedantic(experiment.rows, args=(timing,), rounds=1, iterations=1)
        for row in rows:
            figure = row.value_text or fmt_ns(row.median_ns)
            notes.append(f"{row.case}: {figure}" + (f" ({row.note})" if row.note else ""))
        return rows
    return run


@pytest.fixture(scope="session")
def notes() -> list[str]:
    """Lines printed after the benchmark tables (throughput, ratios)."""
    return _notes


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _notes:
        terminalreporter.section("riskcore: throughput and ratios from this run")
        for line in _notes:
            terminalreporter.write_line(line)
