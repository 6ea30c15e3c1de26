"""Benchmarks of the portfolio risk math (VaR and expected shortfall), next to plain numpy.

pytest-benchmark runs of the VaR cases of ``benchmarks/kernel.py``
(``python -m pytest benchmarks/bench_riskmath.py --benchmark-only``) time each function alone
and, in the same group, the same figures in plain numpy, with one BLAS thread (through
threadpoolctl; skipped without it) and with numpy's default threads.

The same-run comparison prints medians and ratios::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.bench_riskmath [--rounds N]

For each shape and BLAS thread setting it times riskcore and numpy in alternating blocks of
calls in one process, so that a shared machine's drift hits both alike. One BLAS thread is set
with threadpoolctl when it is installed, else by running this module again in a child process
with ``OPENBLAS_NUM_THREADS=1`` (and the OpenMP and MKL equivalents) in its environment.
Some machines here set OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for old OpenBLAS builds; they
slow a current numpy, so unset both, together, in the benchmark's command alone (never in
tests or CI). The header prints the BLAS kernel that then runs.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from benchmarks.kernel import (
    CONFIDENCE, GIL_TARGETS, Case, Experiment, Work, numpy_historical_var, numpy_parametric_var, time_calls,
)
from benchmarks.results import Row
from benchmarks.workload import returns_matrix
from riskcore import historical_var, parametric_var, scenario_pnl

# (days of history, instruments)
SHAPES = {"250x500": (250, 500), "1000x2000": (1_000, 2_000)}
THREADS = {"1 BLAS thread": 1, "default BLAS threads": None}
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# ------------------------------------------------------------ same-run comparison

def same_run_cases(returns: np.ndarray, exposures: np.ndarray) -> dict[str, tuple[Callable[[], Any],
                                                                                    Callable[[], Any]]]:
    """Each riskcore function and its plain-numpy twin, as calls without arguments."""
    return {
        "historical_var": (lambda: historical_var(returns, exposures, CONFIDENCE),
                           lambda: numpy_historical_var(returns, exposures)),
        "parametric_var": (lambda: parametric_var(returns, exposures, CONFIDENCE),
                           lambda: numpy_parametric_var(returns, exposures)),
        "scenario_pnl": (lambda: scenario_pnl(returns, exposures), lambda: returns @ exposures),
    }


# ------------------------------------------------------------ BLAS threads

def have_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Limit every loaded BLAS to ``threads`` (None: leave the defaults) through threadpoolctl."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def blas_description() -> str:
    """numpy's BLAS and the kernel it runs, as threadpoolctl reports them."""
    if not have_threadpoolctl():
        return f"numpy {np.__version__}; threadpoolctl not installed (no BLAS kernel report)"
    from threadpoolctl import threadpool_info
    pools = [f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')} x{p.get('num_threads')}"
             f" ({os.path.basename(p.get('filepath', ''))})" for p in threadpool_info() if p.get("user_api") == "blas"]
    return f"numpy {np.__version__}; BLAS: " + "; ".join(pools)


# ------------------------------------------------------------ same-run timing

def alternate(pairs: dict[str, tuple[Callable[[], Any], Callable[[], Any]]], rounds: int,
              block: int = 5) -> dict[str, dict[str, float]]:
    """Median ns per call of each riskcore call and its numpy twin, timed in turn.

    Calls run in blocks of ``block``, ``rounds`` blocks each after one warm-up block of each,
    riskcore's first in even rounds and numpy's first in odd ones: a block that follows
    the other side's finds the caches and BLAS threads as that side left them.
    """
    samples: dict[str, dict[str, list[int]]] = {name: {"riskcore": [], "numpy": []} for name in pairs}
    for name, (ours, theirs) in pairs.items():
        for fn in (ours, theirs):
            time_calls(Work(fn), block)
        order = [("riskcore", Work(ours)), ("numpy", Work(theirs))]
        for i in range(rounds):
            for side, work in (order if i % 2 == 0 else order[::-1]):
                samples[name][side].extend(time_calls(work, block).samples)
    return {name: {side: float(statistics.median(values)) for side, values in sides.items()}
            for name, sides in samples.items()}


def measure_here(shapes: list[str], rounds: int) -> dict[str, dict[str, dict[str, float]]]:
    out = {}
    for shape in shapes:
        returns, exposures = returns_matrix(*SHAPES[shape])
        out[shape] = alternate(same_run_cases(returns, exposures), rounds)
    return out


def measure_in_child(shapes: list[str], rounds: int, threads: int) -> dict[str, dict[str, dict[str, float]]]:
    """The same measurement in a child process whose BLAS reads ``threads`` from its environment."""
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})
    argv = [sys.executable, "-m", "benchmarks.bench_riskmath", "--json-here", "--rounds", str(rounds),
            "--shapes", *shapes]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(done.stdout)


def compare(shapes: list[str], rounds: int) -> list[dict[str, Any]]:
    """One row per shape, thread setting and function: both medians (ns) and their ratio."""
    rows = []
    for label, threads in THREADS.items():
        if threads is None or have_threadpoolctl():
            with blas_threads(threads):
                figures = measure_here(shapes, rounds)
            how = "threadpoolctl, in process" if threads else "numpy's default, in process"
        else:
            figures = measure_in_child(shapes, rounds, threads)
            how = f"child process with {', '.join(f'{name}={threads}' for name in THREAD_VARIABLES)}"
        for shape, cases in figures.items():
            for name, medians in cases.items():
                rows.append({"shape": shape, "threads": label, "how": how, "case": name, **medians,
                             "ratio": medians["riskcore"] / medians["numpy"]})
    return rows


def print_comparison(rows: list[dict[str, Any]]) -> None:
    for label, how in dict.fromkeys((row["threads"], row["how"]) for row in rows):
        print(f"{label}: {how}")
    print(f"{'shape':<10} {'BLAS':<21} {'case':<15} {'riskcore µs':>12} {'numpy µs':>10} {'ratio':>6}")
    for row in rows:
        print(f"{row['shape']:<10} {row['threads']:<21} {row['case']:<15} {row['riskcore'] / 1e3:>12.1f} "
              f"{row['numpy'] / 1e3:>10.1f} {row['ratio']:>6.2f}")
    print("ratio = riskcore median / numpy median (below 1: riskcore is faster); numpy: returns @ exposures, "
          "then np.partition (historical) or mean and std (parametric)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="blocks of 5 calls per side and case")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--json-here", action="store_true", help=argparse.SUPPRESS)   # the child's mode
    args = parser.parse_args(argv)
    if args.json_here:
        json.dump(measure_here(args.shapes, args.rounds), sys.stdout)
        return 0
    print(blas_description())
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}")
    print_comparison(compare(args.shapes, args.rounds))
    return 0


# ------------------------------------------------------------ pytest-benchmark

KERNEL_SECTIONS = ("VaR",)


@pytest.fixture(params=list(THREADS))
def blas(request: pytest.FixtureRequest, benchmark) -> Iterator[None]:
    """Run the case with one BLAS thread (threadpoolctl) or numpy's default threads."""
    threads = THREADS[request.param]
    if threads is not None and not have_threadpoolctl():
        pytest.skip("threadpoolctl is not installed; python -m benchmarks.bench_riskmath measures one BLAS "
                    "thread in a child process instead")
    benchmark.group = f"{benchmark.group}, {request.param}"
    with blas_threads(threads):
        yield


def test_var_case(run_case: Callable[[Case], None], case: Case, blas: None) -> None:
    run_case(case)


def test_var_experiment(run_experiment: Callable[[Experiment], list[Row]], experiment: Experiment) -> None:
    rows = run_experiment(experiment)
    # The product runs in numpy's BLAS without the GIL, the selection in a nogil loop.
    assert all(t.met(row) for row in rows for t in row.targets if t in GIL_TARGETS), rows


if __name__ == "__main__":
    sys.exit(main())
