"""Run the benchmarks and print them against the targets.

    python -m benchmarks                      every suite, full sizes (several minutes)
    python -m benchmarks --suite kernel       one suite: kernel, service, durability, ingest, control, alerts or all (the default)
    python -m benchmarks --quick              smoke mode for CI: every case at small size, no verdicts
    python -m benchmarks --json PATH          also write every figure to PATH

Suites:

- **kernel**: the compiled engine in this process: 1M single checks,
  1M-order batches, 100k-position books; and a simulated 10M-message,
  5,000-symbol ITCH 5.0 day replayed from a file into an L3 book
  (``benchmarks/kernel.py``, whose cases pytest-benchmark runs too).
- **service**: the risk engine over gRPC on loopback, next to a bare gRPC
  server, with grpcio's defaults and with its event-engine experiments off
  (``benchmarks/service.py``).
- **ingest**: MoldUDP64 over loopback UDP end to end (receive, sequence,
  decode, book, marks) with ~44 messages a packet and with one, and recovery
  of a 10k-message gap over SoupBinTCP (``benchmarks/ingest.py``).
- **durability**: journaled fills per second and their acknowledgement
  latency on SQLite and JetStream, recovery of a large journal, snapshots of a
  100k-position book (``benchmarks/durability.py``).
- **control**: the control plane's Start -> RUNNING, process exit and
  heartbeat loss detection, and the kill switch with 50 strategies, on real
  strategy processes and a real risk engine (``benchmarks/control.py``).
- **alerts**: from a limit crossed in the risk engine to the alert at a
  ``WatchAlerts`` subscriber and at a webhook receiver, and what alerting adds
  to the check path (``benchmarks/alerts.py``).

Servers, clients and nats-server run as child processes on 127.0.0.1 in a
scratch folder that is removed at the end; every child is killed when its
case ends, and every wait is bounded.

In the kernel suite single calls are timed one by one with
``time.perf_counter_ns`` around each call (``kernel.time_calls``, the one
timing helper every kernel case goes through), so the table can give
percentiles. Reading the clock twice costs something; that cost (the median of
back-to-back reads, printed in the header) is subtracted from every per-call
figure, and the raw figures are in the JSON. Throughput comes from a separate
loop of the same calls with no timer inside. The service and durability
suites time each gRPC call in the client the same way (the timer's cost is
nothing next to a call and is not subtracted).

The exit status is 1 when a case raised (a benchmark that no longer runs, or
a service that no longer does what the case measures), never because a speed
target was missed: shared machines are too noisy for that to be a gate. The
verdicts are printed for a person to read, in the full mode only: quick sizes
are too small for the figures to be judged.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from typing import Any, Callable, Iterator

import numpy as np

import riskcore
from benchmarks.kernel import FULL, QUICK, KernelCases, Scale, timer_overhead
from benchmarks.results import Row, Timing, print_table


def host_speed(n: int = 2_000_000) -> float:
    """Nanoseconds per iteration of a fixed pure-Python loop (best of three).

    A shared VM's speed drifts with its neighbours, by up to 2x within an
    hour here; printed at the start and end of a run, it says which runs can
    be compared.
    """
    best = math.inf
    for _ in range(3):
        total, start = 0, time.perf_counter_ns()
        for i in range(n):
            total += i
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def memory_speed(megabytes: int = 64, reads: int = 4_000_000) -> float:
    """Nanoseconds per random 8-byte read from a table of ``megabytes`` (numpy gather, best of three).

    The spread batches live in memory the VM shares with its neighbours: their
    figures follow this one, which the Python loop above does not see.
    """
    rng = np.random.default_rng(0)
    table = np.ones(megabytes * 2**20 // 8, dtype=np.int64)
    index = rng.integers(0, table.size, reads)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter_ns()
        table[index].sum()
        best = min(best, (time.perf_counter_ns() - start) / reads)
    return best


class Suite:
    """The kernel suite: the cases of ``benchmarks/kernel.py`` by section, in the order they run."""

    def __init__(self, scale: Scale, timing: Timing) -> None:
        self.kernel = KernelCases(scale)
        self.timing = timing

    def cases(self) -> list[tuple[str, Callable[[], Iterator[Row]]]]:
        """Each section's name and what yields its rows (a case or experiment at a time)."""
        def section(items: list[Any]) -> Callable[[], Iterator[Row]]:
            def rows() -> Iterator[Row]:
                for item in items:
                    yield from item.rows(self.timing)
            return rows
        return [(name, section(items)) for name, items in self.kernel.sections()]


# ------------------------------------------------------------------- output

def environment(args: argparse.Namespace, overhead: dict[str, float]) -> dict[str, Any]:
    import grpc

    return {
        "mode": "quick" if args.quick else "full",
        "suites": SUITES[args.suite],
        "python": platform.python_version(),
        "riskcore": riskcore.__version__,
        "numpy": np.__version__,
        "grpcio": grpc.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.platform(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "host_speed_ns_at_start": round(host_speed(), 1),
        "memory_speed_ns_at_start": round(memory_speed(), 1),
        "timer_overhead_ns": overhead,
    }


SUITES = {"kernel": ["kernel"], "service": ["service"], "durability": ["durability"], "ingest": ["ingest"],
          "control": ["control"], "alerts": ["alerts"],
          "all": ["kernel", "service", "durability", "ingest", "control", "alerts"]}
TITLES = {
    "kernel": "Kernel (in process)",
    "service": "Service: gRPC on loopback, server and each client in its own process, state in memory",
    "durability": "Durability: journaled fills, recovery, snapshots",
    "control": "Control plane: strategy processes, failure detection, kill switch",
    "ingest": "Market data: MoldUDP64 on loopback UDP end to end, gap recovery over SoupBinTCP",
    "alerts": "Alerts: WatchAlerts on the risk engine and via the monitor, webhooks; the check path's cost",
}


def suite_cases(name: str, quick: bool, overhead: dict[str, float], scratch: pathlib.Path
                ) -> list[tuple[str, Callable[[], Iterator[Row]]]]:
    if name == "kernel":
        return Suite(QUICK if quick else FULL, Timing(overhead["median"])).cases()
    if name == "service":
        from benchmarks import service

        return service.ServiceSuite(service.QUICK if quick else service.FULL, scratch).cases()
    if name == "control":
        from benchmarks import control

        return control.ControlSuite(control.QUICK if quick else control.FULL, scratch).cases()
    if name == "ingest":
        from benchmarks import ingest

        return ingest.IngestSuite(ingest.QUICK if quick else ingest.FULL, scratch).cases()
    if name == "alerts":
        from benchmarks import alerts

        return alerts.AlertSuite(alerts.QUICK if quick else alerts.FULL, scratch).cases()
    from benchmarks import durability

    return durability.DurabilitySuite(durability.QUICK if quick else durability.FULL, scratch).cases()


def preamble(name: str, overhead: dict[str, float]) -> list[str]:
    if name == "kernel":
        return [f"Per-call figures are net of the timer: {overhead['median']:.0f} ns (median of back-to-back "
                f"perf_counter_ns reads) subtracted; throughput is from loops with no timer inside.",
                "Targets: published (pub) risk check < 100 µs, aggregation < 1 ms; the rest are our goals."]
    if name == "service":
        from riskcore_services.common.grpc_io import LEGACY_IO_EXPERIMENTS

        return ["Rows marked 'defaults' run with grpcio's defaults (GRPC_EXPERIMENTS=\"\"); 'EE off' with "
                f"GRPC_EXPERIMENTS={LEGACY_IO_EXPERIMENTS}",
                "set in the servers' and the clients' environment. 'EE off' is the risk server's own default when "
                "GRPC_EXPERIMENTS is unset;",
                "a client process chooses for itself.",
                "Latency is per call in the client (perf_counter_ns around the call), from call to answer."]
    if name == "control":
        return ["The supervisor on uvloop in this process, the risk engine and every strategy in child processes; "
                "times on CLOCK_MONOTONIC.",
                "Goals: exit detected <= 10 ms, heartbeat loss <= timeout + 10 ms, kill switch <= 5 ms with 50 "
                "strategies. Too few samples for a p99: each row's note has its max."]
    if name == "ingest":
        return ["Sender and receiver are processes on this machine, sharing its cores with whatever else runs; "
                "'lost' is what never arrived (no re-request server in these runs).",
                "Goals on 2 cores: >= 1M msg/s with ~44 messages a packet and >= 300k packets/s with one, both "
                "with nothing lost; a 10k-message gap recovered in <= 100 ms."]
    if name == "alerts":
        return ["Latency on the machine's wall clock (time.time_ns) across processes: event stamp in the risk "
                "engine, receipt in the subscriber's process (benchmarks.alert_watcher) or, for the webhook, in "
                "this one.",
                "Goals: WatchAlerts p99 <= 1 ms, webhook p99 <= 5 ms on loopback; check path <= 5% slower with "
                "alerting on."]
    return ["SQLite with synchronous=FULL on this machine's disk; JetStream on a local nats-server (file storage, "
            "1 replica).",
            "Goals on 2 cores: >= 50k durable fills/s with group commit; recovery of 1M events <= 5 s."]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: every case at small size, for CI")
    parser.add_argument("--suite", choices=list(SUITES), default="all", help="which benchmarks to run (default: all)")
    parser.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")

    overhead = timer_overhead()
    env = environment(args, overhead)
    results: dict[str, list[Row]] = {}
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="riskcore-bench-") as scratch:
        for suite in SUITES[args.suite]:
            rows = results[suite] = []
            suite_started = time.perf_counter()
            for name, case in suite_cases(suite, args.quick, overhead, pathlib.Path(scratch)):
                print(f"running {suite}: {name} ...", file=sys.stderr, flush=True)
                try:
                    rows.extend(case())
                except Exception as exc:            # noqa: BLE001 - every case runs; the failure is reported
                    traceback.print_exc()
                    rows.append(Row(name, error=f"{type(exc).__name__}: {exc}"))
            seconds[suite] = round(time.perf_counter() - suite_started, 1)
    env["seconds"] = round(time.perf_counter() - started, 1)
    env["suite_seconds"] = seconds
    env["load_average_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    env["host_speed_ns_at_end"] = round(host_speed(), 1)
    env["memory_speed_ns_at_end"] = round(memory_speed(), 1)

    load = env["load_average_at_start"]
    print(f"riskcore {env['riskcore']} benchmarks, {env['mode']} mode: Python {env['python']}, numpy {env['numpy']}, "
          f"grpcio {env['grpcio']}, {env['cpus_usable']} usable CPUs, {env['seconds']} s")
    if load:
        end = env["load_average_at_end"]
        print(f"1-minute load average {load[0]:.2f} at start, {end[0]:.2f} at end (other work on the machine "
              f"shows up in the tails and the thread ratio)")
    print(f"Host speed: {env['host_speed_ns_at_start']} ns per pure-Python loop iteration at start, "
          f"{env['host_speed_ns_at_end']} at end; memory: {env['memory_speed_ns_at_start']} ns per random read "
          f"at start, {env['memory_speed_ns_at_end']} at end (lower is faster; compare runs only at similar speeds)")
    print("Missed targets do not change the exit status." if not args.quick else
          "Quick mode: every case at small size; sizes too small to judge, so no verdicts; only errors fail.")
    for suite, rows in results.items():
        print(f"\n== {TITLES[suite]} ({seconds[suite]} s)")
        for line in preamble(suite, overhead):
            print(line)
        print()
        print_table(rows, verdicts=not args.quick)

    if args.json:
        with open(args.json, "w") as out:
            json.dump({"environment": env,
                       "rows": [{**asdict(r), "suite": suite, "verdict": r.verdict}
                                for suite, rows in results.items() for r in rows]}, out, indent=2)
    return 1 if any(r.error for rows in results.values() for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
