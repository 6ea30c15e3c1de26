"""Control plane benchmarks: starts, failure detection and the kill switch, on real strategy processes.

``python -m benchmarks --suite control [--quick]`` runs them. The supervisor
(``riskcore_services.control.supervisor``) runs in this process on uvloop, as
``riskcore serve control`` runs it; the risk engine is
``python -m riskcore_services.risk`` in a child process, with one account per
strategy; the strategies (``benchmarks/strategies.py``) are the supervisor's
child processes. Every time is ``time.monotonic_ns()`` (CLOCK_MONOTONIC, one
clock for all the processes of the host), taken in the supervisor's event
callback unless said otherwise.

- **Start to RUNNING**: from ``Supervisor.start`` (the account made ACTIVE in
  the risk engine, the process spawned) to the RUNNING event (the child
  imported the SDK, built its risk client, ran ``on_start`` and said ready).
- **Process exit**: from the stamp a strategy writes just before ``os._exit``
  to the FAILED event (the exit seen through the event loop's child watcher,
  the process reaped).
- **Heartbeat loss**: from the supervisor's receipt of the last heartbeat of a
  strategy whose tick hangs to the FAILED event (its group killed and reaped).
- **Kill switch**: with N strategies RUNNING, from the call to the last
  STOPPING event: the supervisor emits them once the firm is HALTED in the
  risk engine (so is every account: HALTED on an account's path rejects its
  orders) and every strategy has been sent SIGTERM; and, for information, to
  every process gone.
"""
from __future__ import annotations

import asyncio
import pathlib
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from benchmarks.processes import REPO, Children, grpc_env
from benchmarks.results import MS, Row, Target, Timing, expect
from benchmarks.service import bench_config

clock_ns = time.monotonic_ns
STRATEGIES = "benchmarks.strategies"


@dataclass(frozen=True)
class ControlScale:
    starts: int             # Start -> RUNNING samples
    exits: int              # process exits detected
    losses: int             # heartbeat losses detected
    kill_runs: int          # kill switches, each with `kill_strategies` running
    kill_strategies: int


FULL = ControlScale(starts=40, exits=40, losses=20, kill_runs=5, kill_strategies=50)
QUICK = ControlScale(starts=3, exits=3, losses=2, kill_runs=1, kill_strategies=5)
HEARTBEAT_TIMEOUT = 0.2


class ControlSuite:
    """The control plane cases, in the order they run; each yields its rows."""

    def __init__(self, scale: ControlScale, directory: pathlib.Path) -> None:
        self.scale = scale
        self.directory = directory
        self.timing = Timing(0.0)

    def cases(self) -> list[tuple[str, Callable[[], Iterator[Row]]]]:
        return [("start to RUNNING", lambda: self._run(self._starts)),
                ("process exit detection", lambda: self._run(self._exits)),
                ("heartbeat loss detection", lambda: self._run(self._losses)),
                ("kill switch", lambda: self._run(self._kill_switch, heartbeat=(0.5, 5.0)))]

    def _run(self, case, heartbeat: tuple[float, float] = (0.02, HEARTBEAT_TIMEOUT)) -> Iterator[Row]:
        """Run ``case(bench)`` on uvloop against a fresh risk engine, with ``heartbeat`` (interval, timeout):
        short for the heartbeat case, the shipped defaults where 50 starting processes share two cores;
        its rows."""
        import uvloop

        accounts = max(self.scale.kill_strategies, 1)
        config = bench_config(self.directory, "control-risk.toml")
        config.write_text(config.read_text() + "".join(
            f'\n[[accounts]]\nname = "s{i:03}"\nparent = "equities"\n' for i in range(accounts)))
        with Children(self.directory) as kids:
            risk = kids.risk_server("control-risk", config, grpc_env(True))
            risk.wait_ready()
            rows = uvloop.run(_with_bench(case, risk.target, heartbeat, self.directory / "control.log"))
            risk.check_running()
        yield from rows

    async def _starts(self, bench: "_Bench") -> list[Row]:
        samples = []
        for i in range(self.scale.starts):
            name = f"start{i}"
            await bench.register(name, "Idle", f"s{i % self.scale.kill_strategies:03}")
            t0 = clock_ns()
            await bench.supervisor.start(name)
            samples.append(await bench.reached(name, "RUNNING") - t0)
            await bench.finish(name)
        return [self.timing.row("Start -> RUNNING, trivial strategy", samples, targets=[],
                                note=_spread(samples) + "; the account made ACTIVE, python started, the SDK "
                                     "imported, on_start run")]

    async def _exits(self, bench: "_Bench") -> list[Row]:
        samples = []
        out = self.directory / "exited-at"
        for i in range(self.scale.exits):
            name = f"exit{i}"
            await bench.register(name, "ExitsOnFirstTick", "s000", out=str(out))
            await bench.supervisor.start(name)
            failed = await bench.reached(name, "FAILED")
            samples.append(failed - int(out.read_text()))
            await bench.finish(name)
        return [self.timing.row("process exit -> FAILED", samples, targets=[Target("p50<=10ms", "median_ns", 10 * MS)],
                                note=_spread(samples) + "; from the child's last stamp before os._exit: includes "
                                     "the kernel's teardown of the process")]

    async def _losses(self, bench: "_Bench") -> list[Row]:
        samples = []
        for i in range(self.scale.losses):
            name = f"hang{i}"
            await bench.register(name, "HangsOnFirstTick", "s000")
            await bench.supervisor.start(name)
            failed = await bench.reached(name, "FAILED")
            samples.append(failed - bench.last_beat_ns[name])
            await bench.finish(name)
        limit = HEARTBEAT_TIMEOUT * 1e9 + 10 * MS
        return [self.timing.row(f"heartbeat loss -> FAILED (timeout {HEARTBEAT_TIMEOUT * 1000:.0f} ms)", samples,
                                targets=[Target("p50<=timeout+10ms", "median_ns", limit)],
                                note=_spread(samples) + "; from the last heartbeat received: includes the kill "
                                     "and reaping of the group")]

    async def _kill_switch(self, bench: "_Bench") -> list[Row]:
        n = self.scale.kill_strategies
        signalled, gone = [], []
        for run in range(self.scale.kill_runs):
            names = [f"k{run}-{i:03}" for i in range(n)]
            for i, name in enumerate(names):
                await bench.register(name, "Idle", f"s{i:03}")
                await bench.supervisor.start(name)
            for name in names:
                await bench.reached(name, "RUNNING")
            await bench.risk("ACTIVE")
            bench.events.clear()
            t0 = clock_ns()
            stopped = await bench.supervisor.kill_switch("benchmark")
            gone.append(clock_ns() - t0)
            expect(sorted(stopped) == names, f"the kill switch stopped {len(stopped)} of {n}")
            stopping = [t for name, state, t in bench.events if state == "STOPPING"]
            expect(len(stopping) == n, f"{len(stopping)} of {n} strategies signalled")
            signalled.append(max(stopping) - t0)
            expect(await bench.firm_state() == "HALTED", "the firm is not HALTED after the kill switch")
            for name in names:
                await bench.supervisor.remove(name)
        return [self.timing.row(f"kill switch, {n} strategies: firm HALTED + all signalled", signalled,
                                targets=[Target("p50<=5ms", "median_ns", 5 * MS)], note=_spread(signalled)),
                self.timing.row(f"kill switch, {n} strategies: every process gone", gone,
                                note=_spread(gone) + "; SIGTERM, on_stop, exit, reaped; each account also set "
                                     "HALTED on the way")]


_log_file: list = []


async def _with_bench(case, risk_target: str, heartbeat: tuple[float, float], log: pathlib.Path) -> list[Row]:
    from riskcore_services.common.logging import configure_logging

    # The service's line per transition is paid for as in production (loggers cached), but written to a
    # file, not the table: configured once, the file open until this process ends.
    if not _log_file:
        _log_file.append(open(log, "ab"))
        configure_logging("info", file=_log_file[0])
    bench = _Bench(risk_target, heartbeat)
    await bench.supervisor.open()
    try:
        return await case(bench)
    finally:
        await bench.close()


class _Bench:
    """A supervisor on this loop, its events stamped as they come, and a risk client for the checks."""

    def __init__(self, risk_target: str, heartbeat: tuple[float, float]) -> None:
        from riskcore_services.control.lifecycle import BackoffPolicy
        from riskcore_services.control.supervisor import RiskGate, Supervisor, Timings
        from riskcore_services.risk.client import RiskClient

        self.client = RiskClient(risk_target, deadline=5.0)
        # A failure waits a minute in BACKOFF (the case stops it first); the breaker never opens.
        policy = BackoffPolicy(initial=60.0, maximum=60.0, jitter=0.0, breaker=1_000_000, window=1.0)
        timings = Timings(heartbeat_interval=heartbeat[0], heartbeat_timeout=heartbeat[1], stop_grace=5.0)
        self.supervisor = Supervisor(timings, policy, RiskGate(self.client, "FIRM"), self._record,
                                     risk_target=risk_target)
        self.events: list[tuple[str, str, int]] = []
        self.last_beat_ns: dict[str, int] = {}
        self.env = {"PYTHONPATH": grpc_env(True)["PYTHONPATH"], "PYTHONUNBUFFERED": "1"}
        expect(str(REPO) in self.env["PYTHONPATH"], "strategies must import benchmarks.strategies")

    def _record(self, event) -> None:
        now = clock_ns()
        self.events.append((event.strategy, event.state.name, now))
        if event.state.name == "FAILED":
            managed = self.supervisor.get(event.strategy)
            # last_beat is on the supervisor's clock (time.monotonic, the same CLOCK_MONOTONIC).
            self.last_beat_ns[event.strategy] = int(managed.last_beat * 1e9)

    async def register(self, name: str, cls: str, account: str, **config) -> None:
        from riskcore_services.control.supervisor import StrategySpec

        await self.supervisor.register(StrategySpec(name, f"{STRATEGIES}:{cls}", account, config, self.env))

    async def reached(self, name: str, state: str, timeout: float = 60.0) -> int:
        """When ``name`` reached ``state`` (its event's stamp)."""
        end = time.monotonic() + timeout
        while True:
            for strategy, seen, stamp in self.events:
                if strategy == name and seen == state:
                    return stamp
            expect(time.monotonic() < end, f"{name} never reached {state}")
            await asyncio.sleep(0.001)

    async def finish(self, name: str) -> None:
        await self.supervisor.stop(name)
        await self.supervisor.remove(name)

    async def risk(self, state: str) -> None:
        await asyncio.to_thread(self.client.set_trading_state, state, "FIRM")

    async def firm_state(self) -> str:
        from riskcore_services.proto import risk_pb2

        accounts = await asyncio.to_thread(self.client.get_exposure, "FIRM")
        return risk_pb2.TradingState.Name(next(a for a in accounts if a.account == "FIRM").state)

    async def close(self) -> None:
        await self.supervisor.close()
        self.client.close()


def _spread(samples: list[int]) -> str:
    ordered = sorted(samples)
    return f"{len(ordered)} samples, min {ordered[0] / MS:.2f} ms, max {ordered[-1] / MS:.2f} ms"
