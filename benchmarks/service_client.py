"""The load generator of the service benchmarks: runs in its own process, one per client.

    python -m benchmarks.service_client '<json spec>'

``benchmarks.service`` and ``benchmarks.durability`` start this module as a
child process, so the client's interpreter (and its GIL) never shares a core
schedule with the server's: each side is one process, as a strategy and the
risk engine are in production. ``GRPC_EXPERIMENTS`` (when a case sets it) is
in this process's environment before grpc is imported.

Protocol on stdin/stdout, one JSON object per line:

1. the child connects, warms up and builds every request it will send, then
   prints ``{"ready": ...}``;
2. it waits for one line on stdin (the parent releases every client of a case
   at once, so concurrent clients start together);
3. it runs the case and prints ``{"result": ...}``, then exits.

Latency samples (``perf_counter_ns`` around each call, in ns) go to ``.npy``
files in the spec's ``directory``; the result names them. Start and end
instants are ``time.monotonic_ns()`` (CLOCK_MONOTONIC, shared by every
process), so the parent can add up concurrent clients. Garbage collection is
off while a case is timed: the client's own pauses are not the server's.
Every call carries a deadline.
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import grpc                                    # after the parent set GRPC_EXPERIMENTS in our environment
from riskcore_services.proto import risk_pb2, risk_pb2_grpc

clock_ns = time.perf_counter_ns
DEADLINE = 30.0
BUY, SELL = risk_pb2.BUY, risk_pb2.SELL

# The order flow every order case sends: one share of AAPL for the benchmark
# account, buys a tick below the reference and sells a tick above, so orders
# never cross (no self-match) and stay far inside every limit: accepted, the
# path that books a working order.
ORDER_ACCOUNT = "bench"
ORDER_SYMBOL = "AAPL"
BUY_PRICE, SELL_PRICE = 189.99, 190.01


def check_request() -> risk_pb2.PositionRequest:
    """The README's "Calling the risk engine" request: default account, market price."""
    return risk_pb2.PositionRequest(symbol="AAPL", quantity=1000, side=BUY)


def order(cid: str, i: int, quantity: int = 1) -> risk_pb2.OrderRequest:
    side = BUY if i % 2 == 0 else SELL
    return risk_pb2.OrderRequest(client_order_id=cid, account=ORDER_ACCOUNT, symbol=ORDER_SYMBOL, side=side,
                                 quantity=quantity, price=BUY_PRICE if side == BUY else SELL_PRICE)


def order_batch(prefix: str, start: int, n: int, quantity: int = 1) -> risk_pb2.OrderBatch:
    """Orders ``start .. start + n - 1`` of ``prefix`` as one columnar batch."""
    ids = range(start, start + n)
    sides = [BUY if i % 2 == 0 else SELL for i in ids]
    return risk_pb2.OrderBatch(
        client_order_ids=[f"{prefix}-{i}" for i in ids], accounts=[ORDER_ACCOUNT] * n, symbols=[ORDER_SYMBOL] * n,
        sides=sides, quantities=[quantity] * n, prices=[BUY_PRICE if s == BUY else SELL_PRICE for s in sides])


def fill_batch(prefix: str, start: int, n: int, quantity: int = 1) -> risk_pb2.FillBatch:
    """Full fills of orders ``start .. start + n - 1`` of ``prefix``, at their limit prices."""
    ids = range(start, start + n)
    return risk_pb2.FillBatch(
        client_order_ids=[f"{prefix}-{i}" for i in ids], exec_ids=[f"{prefix}-x{i}" for i in ids],
        quantities=[quantity] * n, prices=[BUY_PRICE if i % 2 == 0 else SELL_PRICE for i in ids])


def single_fill(prefix: str, i: int, quantity: int = 1) -> risk_pb2.Fill:
    return risk_pb2.Fill(client_order_id=f"{prefix}-{i}", exec_id=f"{prefix}-x{i}", quantity=quantity,
                         price=BUY_PRICE if i % 2 == 0 else SELL_PRICE)


class Output:
    """Where samples go, and the two messages to the parent."""

    def __init__(self, spec: dict):
        self.directory = Path(spec["directory"])
        self.name = spec["name"]

    def samples(self, label: str, values) -> str:
        path = self.directory / f"{self.name}-{label}.npy"
        np.save(path, np.asarray(values, dtype=np.int64))
        return str(path)

    @staticmethod
    def send(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    def ready(self, **info: Any) -> None:
        self.send({"ready": True, "pid": os.getpid(), "grpc_experiments": os.environ.get("GRPC_EXPERIMENTS"),
                   "grpc": grpc.__version__, **info})
        if not sys.stdin.readline():
            raise SystemExit("parent went away before the start signal")
        gc.collect()
        gc.disable()
        self._cpu = self._cpu_seconds()

    @staticmethod
    def _cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def result(self, **result: Any) -> None:
        cpu = self._cpu_seconds() - self._cpu
        gc.enable()
        self.send({"result": {**result, "cpu_seconds": cpu}})


def _expect_accepted(accepted: int, total: int, what: str) -> None:
    # A case that measured rejections would measure the cheap path: fail it instead.
    if accepted < 0.9 * total:
        raise AssertionError(f"{what}: only {accepted} of {total} orders accepted")


# ------------------------------------------------------------------ cases

def unary_latency(spec: dict, out: Output) -> None:
    """CheckPosition, one call at a time, on the sync stub (what the README shows strategies)."""
    request = check_request()
    channels = [grpc.insecure_channel(t["target"]) for t in spec["targets"]]
    calls = [risk_pb2_grpc.RiskEngineStub(c).CheckPosition for c in channels]
    answers = {}
    for t, call in zip(spec["targets"], calls):
        answer = call(request, timeout=DEADLINE)
        if not answer.accepted:
            raise AssertionError(f"{t['name']}: check not accepted: {answer}")
        answers[t["name"]] = answer.SerializeToString().hex()
        for _ in range(spec["warmup"]):
            call(request, timeout=DEADLINE)
    n, chunk = spec["calls"], spec["chunk"]
    samples = {t["name"]: np.empty(n, np.int64) for t in spec["targets"]}
    spent = dict.fromkeys(samples, 0)
    out.ready(answers=answers)
    # Targets take turns in chunks, so load from elsewhere on the machine lands on all of them alike.
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        for t, call in zip(spec["targets"], calls):
            data = samples[t["name"]]
            began = clock_ns()
            for i in range(start, stop):
                t0 = clock_ns()
                call(request, timeout=DEADLINE)
                data[i] = clock_ns() - t0
            spent[t["name"]] += clock_ns() - began
    for c in channels:
        c.close()
    out.result(samples={k: out.samples(k, v) for k, v in samples.items()}, elapsed_ns=spent, calls=n)


async def unary_throughput(spec: dict, out: Output) -> None:
    """CheckPosition from ``callers`` concurrent tasks on one aio channel, for ``seconds``."""
    request = check_request()
    async with grpc.aio.insecure_channel(spec["target"]) as channel:
        call = risk_pb2_grpc.RiskEngineStub(channel).CheckPosition
        for _ in range(spec["warmup"]):
            await call(request, timeout=DEADLINE)
        out.ready()
        per_task: list[list[int]] = [[] for _ in range(spec["callers"])]
        seconds = spec["seconds"]

        async def caller(samples: list[int]) -> None:
            end = clock_ns() + int(seconds * 1e9)
            while True:
                t0 = clock_ns()
                if t0 >= end:
                    return
                await call(request, timeout=DEADLINE)
                samples.append(clock_ns() - t0)

        began = time.monotonic_ns()
        await asyncio.gather(*(caller(s) for s in per_task))
        ended = time.monotonic_ns()
    samples = [x for s in per_task for x in s]
    out.result(samples=out.samples("latency", samples), calls=len(samples), start_ns=began, end_ns=ended)


async def stream_pingpong(spec: dict, out: Output) -> None:
    """SubmitStream: write one order, read its answer, repeat."""
    prefix = f"{spec['name']}-{os.getpid()}"
    n, warmup = spec["messages"], spec["warmup"]
    requests = [order(f"{prefix}-{i}", i) for i in range(n + warmup)]
    async with grpc.aio.insecure_channel(spec["target"]) as channel:
        stream = risk_pb2_grpc.RiskEngineStub(channel).SubmitStream(timeout=DEADLINE * 10)
        for request in requests[:warmup]:
            await stream.write(request)
            await stream.read()
        out.ready()
        samples = np.empty(n, np.int64)
        accepted = 0
        began = time.monotonic_ns()
        for i, request in enumerate(requests[warmup:]):
            t0 = clock_ns()
            await stream.write(request)
            answer = await stream.read()
            samples[i] = clock_ns() - t0
            accepted += answer.accepted
        ended = time.monotonic_ns()
        await stream.done_writing()
        if await stream.read() is not grpc.aio.EOF:
            raise AssertionError("SubmitStream answered more messages than it was sent")
    _expect_accepted(accepted, n, "SubmitStream ping-pong")
    out.result(samples=out.samples("latency", samples), calls=n, start_ns=began, end_ns=ended)


async def stream_pipelined(spec: dict, out: Output) -> None:
    """SubmitStream: one task writes every order without waiting, another reads the answers."""
    prefix = f"{spec['name']}-{os.getpid()}"
    n, warmup = spec["messages"], spec["warmup"]
    requests = [order(f"{prefix}-{i}", i) for i in range(n + warmup)]
    async with grpc.aio.insecure_channel(spec["target"]) as channel:
        stream = risk_pb2_grpc.RiskEngineStub(channel).SubmitStream(timeout=DEADLINE * 10)
        for request in requests[:warmup]:
            await stream.write(request)
            await stream.read()
        out.ready()

        async def writer() -> None:
            for request in requests[warmup:]:
                await stream.write(request)
            await stream.done_writing()

        async def reader() -> int:
            accepted = 0
            for _ in range(n):
                accepted += (await stream.read()).accepted
            if await stream.read() is not grpc.aio.EOF:
                raise AssertionError("SubmitStream answered more messages than it was sent")
            return accepted

        began = time.monotonic_ns()
        _, accepted = await asyncio.gather(writer(), reader())
        ended = time.monotonic_ns()
    _expect_accepted(accepted, n, "SubmitStream pipelined")
    out.result(calls=n, start_ns=began, end_ns=ended)


def submit_orders(spec: dict, out: Output) -> None:
    """SubmitOrders: ``batches`` columnar batches of ``batch`` orders, one after the other (sync stub)."""
    prefix = f"{spec['name']}-{os.getpid()}"
    size = spec["batch"]
    warm = [order_batch(f"{prefix}-w", k * size, size) for k in range(spec["warmup"])]
    timed = [order_batch(prefix, k * size, size) for k in range(spec["batches"])]
    channel = grpc.insecure_channel(spec["target"], options=[("grpc.max_receive_message_length", 64 << 20),
                                                             ("grpc.max_send_message_length", 64 << 20)])
    call = risk_pb2_grpc.RiskEngineStub(channel).SubmitOrders
    for batch in warm:
        call(batch, timeout=DEADLINE)
    out.ready(request_bytes=timed[0].ByteSize())
    samples = np.empty(len(timed), np.int64)
    accepted = 0
    began = time.monotonic_ns()
    for k, batch in enumerate(timed):
        t0 = clock_ns()
        accepted += call(batch, timeout=DEADLINE).accepted
        samples[k] = clock_ns() - t0
    ended = time.monotonic_ns()
    channel.close()
    _expect_accepted(accepted, size * len(timed), "SubmitOrders")
    out.result(samples=out.samples("latency", samples), calls=len(timed), orders=size * len(timed),
               start_ns=began, end_ns=ended)


async def fills(spec: dict, out: Output) -> None:
    """Durable fills: ``tasks`` concurrent callers send ReportFills batches (or single ReportFill calls).

    The orders to be filled are submitted (SubmitOrders, untimed) before the
    ready message; each timed call then fills orders of its own, in full, at
    their limit prices.
    """
    prefix = f"{spec['name']}-{os.getpid()}"
    tasks, per_task, size, single = spec["tasks"], spec["calls_per_task"], spec["batch"], spec["single"]
    fills_per_task = per_task * (1 if single else size)
    total = tasks * fills_per_task
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(spec["target"], options=options) as channel:
        stub = risk_pb2_grpc.RiskEngineStub(channel)
        step = 10_000
        for start in range(0, total, step):
            answer = await stub.SubmitOrders(order_batch(prefix, start, min(step, total - start)), timeout=DEADLINE)
            if answer.accepted != min(step, total - start):
                raise AssertionError(f"orders to fill not all accepted: {answer.accepted} of "
                                     f"{min(step, total - start)}")
        if single:
            work = [[single_fill(prefix, t * fills_per_task + i) for i in range(per_task)] for t in range(tasks)]
            call = stub.ReportFill
        else:
            work = [[fill_batch(prefix, t * fills_per_task + k * size, size) for k in range(per_task)]
                    for t in range(tasks)]
            call = stub.ReportFills
        # Warm the call path (a few fills of orders submitted just for this).
        warm = f"{prefix}-warm"
        await stub.SubmitOrders(order_batch(warm, 0, 4), timeout=DEADLINE)
        for i in range(4):
            await stub.ReportFill(single_fill(warm, i), timeout=DEADLINE)
        out.ready()
        per_task_samples: list[list[int]] = [[] for _ in range(tasks)]

        async def caller(requests: list, samples: list[int]) -> int:
            applied = 0
            for request in requests:
                t0 = clock_ns()
                answer = await call(request, timeout=DEADLINE)
                samples.append(clock_ns() - t0)
                applied += answer.applied if single else sum(answer.applied)
            return applied

        began = time.monotonic_ns()
        applied = await asyncio.gather(*(caller(w, s) for w, s in zip(work, per_task_samples)))
        ended = time.monotonic_ns()
    if sum(applied) != total:
        raise AssertionError(f"{total - sum(applied)} of {total} fills not applied")
    samples = [x for s in per_task_samples for x in s]
    out.result(samples=out.samples("latency", samples), calls=len(samples), fills=total, start_ns=began,
               end_ns=ended)


CASES = {"unary_latency": unary_latency, "unary_throughput": unary_throughput, "stream_pingpong": stream_pingpong,
         "stream_pipelined": stream_pipelined, "submit_orders": submit_orders, "fills": fills}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    case = CASES[spec["case"]]
    out = Output(spec)
    if asyncio.iscoroutinefunction(case):
        import uvloop       # the same loop as the server

        uvloop.run(case(spec, out))
    else:
        case(spec, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
