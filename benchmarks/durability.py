"""Durability benchmarks: journaled fills, recovery, snapshots.

``python -m benchmarks --suite durability [--quick]`` runs them.

- **Durable fills** through the service (``python -m riskcore_services.risk`` in a
  child process) on the SQLite journal (``synchronous = FULL``: every group
  commit is fsynced, in the run's scratch folder on the machine's disk) and on
  NATS JetStream (the Debian ``nats-server`` with ``-js``, file storage, one
  replica): ``ReportFills`` batches from several client processes with
  several callers each, so the journal has many records to commit together;
  then ``ReportFill`` one fill at a time from one caller (each answer waits
  for its own commit) and from 64 concurrent callers (one record per fill,
  many per commit). Every fill fills an order the client submitted before the
  timed part; latency is the time to the acknowledgement, which the service
  sends only once the record is durable.
- **Recovery**: a journal of N single-order records (alternating SubmitOrder
  and ReportFill of that order) written through ``RiskService`` and
  ``SqliteJournal`` in this process, then (a) ``RiskService.recover`` in
  process on a copy, and (b) ``python -m riskcore_services.risk`` on another copy, from
  process start to ``/ready`` answering 200.
- **Snapshot** of an engine holding a book of 100k positions
  (``benchmarks.workload.build_book``): ``RiskService.to_state``, the journal's
  snapshot encoding, its size, the SQLite snapshot write, and the restore.
"""
from __future__ import annotations

import asyncio
import gc
import hashlib
import pathlib
import shutil
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from benchmarks.processes import Children, grpc_env, run_clients
from benchmarks.results import Row, Target, Timing, expect
from benchmarks.service import bench_config, cpu_note

clock_ns = time.perf_counter_ns

FILLS_TARGETS = [Target(">=50k fills/s", "throughput", 50e3, at_most=False)]
RECOVERY_TARGETS = [Target("<=5s", "median_ns", 5e9)]


@dataclass(frozen=True)
class DurabilityScale:
    fill_clients: int         # client processes sending ReportFills batches
    fill_tasks: int           # concurrent callers in each
    fill_batch: int           # fills per ReportFills call
    fill_calls: int           # ReportFills calls per caller
    single_calls: int         # ReportFill calls, one caller
    concurrent_callers: int   # ReportFill callers in one process
    concurrent_calls: int     # ReportFill calls per concurrent caller
    recovery_events: int      # journal records to recover
    snapshot_symbols: int     # book of this many symbols x 100 strategies
    snapshot_runs: int
    client_timeout: float


FULL = DurabilityScale(fill_clients=2, fill_tasks=4, fill_batch=1_000, fill_calls=125, single_calls=2_000,
                       concurrent_callers=64, concurrent_calls=100, recovery_events=1_000_000, snapshot_symbols=1_000,
                       snapshot_runs=5, client_timeout=600.0)
QUICK = DurabilityScale(fill_clients=2, fill_tasks=2, fill_batch=1_000, fill_calls=2, single_calls=100,
                        concurrent_callers=16, concurrent_calls=5, recovery_events=20_000, snapshot_symbols=100,
                        snapshot_runs=2, client_timeout=120.0)


def _count(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


class DurabilitySuite:
    """The durability cases, in the order they run; each yields its rows."""

    def __init__(self, scale: DurabilityScale, directory: pathlib.Path) -> None:
        self.scale = scale
        self.directory = directory
        self.timing = Timing(0.0)

    def cases(self) -> list[tuple[str, Callable[[], Iterator[Row]]]]:
        return [("durable fills, SQLite", self.sqlite_fills), ("durable fills, JetStream", self.jetstream_fills),
                ("recovery", self.recovery), ("snapshot", self.snapshot)]

    # ------------------------------------------------------------ fills

    def sqlite_fills(self) -> Iterator[Row]:
        journal = self.directory / "fills.db"
        config = bench_config(self.directory, "fills-sqlite.toml", state={"path": str(journal)})
        with Children(self.directory) as kids:
            server = kids.risk_server("risk-sqlite", config, grpc_env(False))
            server.wait_ready()
            yield from self.fills("SQLite", server)
            server.check_running()

    def jetstream_fills(self) -> Iterator[Row]:
        with Children(self.directory) as kids:
            nats = kids.nats_server()
            nats.wait_ready()
            config = bench_config(self.directory, "fills-jetstream.toml",
                                  state={"backend": "jetstream", "nats_servers": [nats.url], "name": "bench"})
            server = kids.risk_server("risk-jetstream", config, grpc_env(False))
            server.wait_ready()
            yield from self.fills("JetStream", server)
            server.check_running()

    def fills(self, backend: str, server) -> Iterator[Row]:
        s = self.scale
        slug = backend.lower()
        specs = [{"case": "fills", "name": f"fills-{slug}-{c}", "target": server.target, "tasks": s.fill_tasks,
                  "calls_per_task": s.fill_calls, "batch": s.fill_batch, "single": False}
                 for c in range(s.fill_clients)]
        callers = s.fill_clients * s.fill_tasks
        yield self._fills_row(f"{backend}: ReportFills {_count(s.fill_batch)}-fill batches, {callers} callers",
                              server, specs, FILLS_TARGETS,
                              f"{s.fill_clients} processes x {s.fill_tasks} callers; latency is per call, the "
                              f"acknowledgement of each of its {s.fill_batch:,} fills")
        spec = {"case": "fills", "name": f"fill-{slug}-one", "target": server.target, "tasks": 1,
                "calls_per_task": s.single_calls, "batch": 1, "single": True}
        yield self._fills_row(f"{backend}: ReportFill, 1 caller", server, [spec], [],
                              "one fill per call, one call at a time: each waits for its own commit")
        spec = {"case": "fills", "name": f"fill-{slug}-many", "target": server.target,
                "tasks": s.concurrent_callers, "calls_per_task": s.concurrent_calls, "batch": 1, "single": True}
        yield self._fills_row(f"{backend}: ReportFill, {s.concurrent_callers} callers", server, [spec], [],
                              f"one fill per call, {s.concurrent_callers} grpc.aio callers in one process: "
                              f"one record per fill, many per commit")

    def _fills_row(self, case: str, server, specs: list[dict], targets: list[Target], note: str) -> Row:
        """Run the fill clients of ``specs`` together; one row: ack latency per call, fills per second."""
        cpu: list[float] = []
        _, results = run_clients(self.directory, specs, grpc_env(False), self.scale.client_timeout,
                                 lambda: cpu.append(server.cpu_seconds()))
        server_cpu = server.cpu_seconds() - cpu[0]
        samples = np.concatenate([np.load(r["samples"]) for r in results])
        fills = sum(r["fills"] for r in results)
        elapsed = max(r["end_ns"] for r in results) - min(r["start_ns"] for r in results)
        return self.timing.row(case, samples, elapsed, fills, unit="fills/s", targets=targets,
                               note=f"{note}; {cpu_note(server_cpu, results, fills, 'fill')}")

    # ---------------------------------------------------------- recovery

    def recovery(self) -> Iterator[Row]:
        s = self.scale
        events = s.recovery_events
        label = _count(events)
        source = self.directory / "recovery.db"
        config_path = bench_config(self.directory, "recovery-build.toml", state={"path": str(source)})
        started = time.perf_counter()
        built = build_journal(config_path, source, events)
        build_seconds = time.perf_counter() - started
        yield Row(f"build: {label} journal records through RiskService", samples=built, median_ns=build_seconds * 1e9,
                  throughput=built / build_seconds, unit="records/s",
                  note=("setup, not a target: SubmitOrder and ReportFill in turn through RiskService and "
                        f"SqliteJournal (synchronous=OFF) in this process; {source.stat().st_size / 1e6:,.0f} MB"))

        copy = self._copy(source, "recovery-inprocess.db")
        timings = asyncio.run(recover_in_process(config_path, copy))
        yield Row(f"recover {label} records in process", samples=1, median_ns=timings["total"] * 1e9,
                  throughput=built / timings["total"], unit="records/s", targets=RECOVERY_TARGETS,
                  note=(f"open + quick_check {timings['open']:.2f} s, RiskService.recover {timings['recover']:.2f} s "
                        f"(read + CRC + replay {timings['replay_seconds']:.2f} s, verify included); "
                        f"{timings['replayed']:,} records replayed"))

        with Children(self.directory) as kids:
            copy = self._copy(source, "recovery-process.db")
            config = bench_config(self.directory, "recovery-process.toml", state={"path": str(copy)})
            server = kids.risk_server("risk-recovery", config, grpc_env(False))
            seconds = server.wait_ready(timeout=max(60.0, events / 10_000)).ready_seconds
            recovered = server.events("state recovered")
            expect(len(recovered) == 1 and recovered[0]["replayed"] == built,
                   f"recovery log line: {recovered!r}")
            server.kill()          # no shutdown snapshot: the copy is thrown away
            empty = bench_config(self.directory, "recovery-empty.toml",
                                 state={"path": str(self.directory / "recovery-empty.db")})
            baseline = kids.risk_server("risk-empty", empty, grpc_env(False))
            base_seconds = baseline.wait_ready().ready_seconds
            baseline.kill()
        yield Row(f"start to /ready, {label}-record journal", samples=1, median_ns=seconds * 1e9,
                  targets=RECOVERY_TARGETS,
                  note=(f"python -m riskcore_services.risk from process start; its log: replay "
                        f"{recovered[0]['replay_seconds']:.2f} s, snapshot load "
                        f"{recovered[0]['snapshot_seconds']:.2f} s"))
        yield Row("start to /ready, empty journal", samples=1, median_ns=base_seconds * 1e9,
                  note="the same start with nothing to recover: interpreter, imports, configuration, listeners")

    def _copy(self, source: pathlib.Path, name: str) -> pathlib.Path:
        target = self.directory / name
        shutil.copyfile(source, target)
        return target

    # ---------------------------------------------------------- snapshot

    def snapshot(self) -> Iterator[Row]:
        from riskcore import ManualClock, RiskEngine
        from riskcore_services.common.metrics import new_registry
        from riskcore_services.common.journal import decode_snapshot, encode_snapshot
        from riskcore_services.risk.metrics import RiskMetrics
        from riskcore_services.risk.service import RiskService

        from benchmarks.workload import build_book

        s = self.scale
        book = build_book(s.snapshot_symbols, engine_factory=lambda: RiskEngine(clock=ManualClock(time.time_ns())))
        engine = book.engine
        service = RiskService(engine, book.check_account, RiskMetrics(new_registry(), engine))
        positions = len(engine.positions())
        expect(positions == book.n_positions, f"{positions} positions in the engine, {book.n_positions} loaded")
        size = f"{positions // 1000}k positions"

        to_state, encode, restore = [], [], []
        blob = b""
        for _ in range(s.snapshot_runs):
            gc.collect()
            t0 = clock_ns()
            state = service.to_state()
            t1 = clock_ns()
            blob = encode_snapshot(state)
            t2 = clock_ns()
            to_state.append(t1 - t0)
            encode.append(t2 - t1)
            del state
            other = RiskService(RiskEngine(clock=ManualClock(0)), book.check_account,
                                RiskMetrics(new_registry(), engine))
            gc.collect()
            t0 = clock_ns()
            other.restore(decode_snapshot(blob))
            restore.append(clock_ns() - t0)
        expect(len(other.engine.positions()) == positions, "restored snapshot lost positions")
        runs = f"median of {s.snapshot_runs} runs"
        yield Row(f"snapshot to_state, {size}", samples=len(to_state), median_ns=statistics.median(to_state),
                  note=f"RiskService.to_state (engine state + order ids + answers); {runs}")
        yield Row(f"snapshot encode, {size}", samples=len(encode), median_ns=statistics.median(encode),
                  note=f"riskcore_services.common.journal.encode_snapshot (pickle protocol 5); {runs}")
        both = statistics.median(a + b for a, b in zip(to_state, encode))
        yield Row(f"snapshot to_state + encode, {size}", samples=len(encode), median_ns=both,
                  note=f"{runs}; the event loop is busy for to_state, the writer thread for the encoding")
        yield Row(f"snapshot size, {size}", value=len(blob), value_text=f"{len(blob) / 1e6:,.1f} MB",
                  note=f"{len(blob) / positions:,.0f} bytes per position; sha256 of it: "
                       f"{_seconds(lambda: hashlib.sha256(blob).digest()) * 1e3:.1f} ms")
        yield Row(f"snapshot restore, {size}", samples=len(restore), median_ns=statistics.median(restore),
                  note=f"decode_snapshot + RiskService.restore (RiskEngine.from_state); {runs}")
        written = asyncio.run(write_snapshot(self.directory / "snapshot.db", service))
        yield Row(f"snapshot written to SQLite, {size}", samples=1, median_ns=written * 1e9,
                  note="SqliteJournal.snapshot then a record, until the record is durable: encode, sha256, "
                       "insert, commit, fsync (synchronous=FULL)")


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -------------------------------------------------------------- in-process helpers

def _service(config_path: pathlib.Path, journal, snapshot_every: int = 10**12):
    from riskcore import ManualClock
    from riskcore_services.common.metrics import new_registry
    from riskcore_services.risk.config import build_engine, load_config
    from riskcore_services.risk.metrics import RiskMetrics
    from riskcore_services.risk.service import RiskService

    config = load_config(config_path)
    engine = build_engine(config, clock=ManualClock(time.time_ns()))
    return RiskService(engine, config.default_account, RiskMetrics(new_registry(), engine), journal, snapshot_every)


def build_journal(config_path: pathlib.Path, path: pathlib.Path, events: int) -> int:
    """Write ``events`` journal records (SubmitOrder, then a ReportFill filling it, in turn); return the count.

    ``synchronous=OFF``: the build is setup, not a measurement; the records are
    the ones the service writes (same tables, CRCs and payloads).
    """
    from riskcore_services.common.journal.sqlite import SqliteJournal

    from benchmarks.service_client import order, single_fill

    journal = SqliteJournal(str(path), "OFF")
    service = _service(config_path, journal)

    async def build() -> None:
        journal.start(asyncio.get_running_loop())
        for i in range(events // 2):
            answer = service.submit_order(order(f"r-{i}", i))
            if not answer.accepted:
                raise AssertionError(f"order {i} of the recovery journal rejected: {answer.reason}")
            service.report_fill(single_fill("r", i))
            if i % 10_000 == 9_999:
                await service.durable()           # bounded queue: the writer keeps up
        await service.durable()

    try:
        asyncio.run(build())
    finally:
        journal.close()
    expect(journal.records_written == events // 2 * 2, f"{journal.records_written} records written")
    return journal.records_written


async def recover_in_process(config_path: pathlib.Path, path: pathlib.Path) -> dict:
    """Open the journal at ``path`` and recover a fresh service from it, as the server does at start."""
    from riskcore_services.common.journal.sqlite import SqliteJournal

    gc.collect()
    t0 = time.perf_counter()
    journal = SqliteJournal(str(path))
    t1 = time.perf_counter()
    try:
        service = _service(config_path, journal)
        result = await service.recover(*journal.load())
    finally:
        journal.close()
    t2 = time.perf_counter()
    return {"open": t1 - t0, "recover": t2 - t1, "total": t2 - t0, **result}


async def write_snapshot(path: pathlib.Path, service) -> float:
    """Seconds to make a snapshot of ``service`` durable in a fresh SQLite journal (synchronous=FULL)."""
    from riskcore_services.common.journal.sqlite import SqliteJournal

    journal = SqliteJournal(str(path))
    try:
        journal.start(asyncio.get_running_loop())
        state = service.to_state()
        t0 = time.perf_counter()
        journal.snapshot(0, state)
        await journal.wait(journal.append(time.time_ns(), 11, b""))   # a ROLL_DAY record after it
        elapsed = time.perf_counter() - t0
    finally:
        await journal.aclose()
    return elapsed
