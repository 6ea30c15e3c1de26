"""pytest-benchmark cases of the risk service over gRPC on loopback.

Run with ``python -m pytest benchmarks/bench_service.py --benchmark-only``.
The servers are child processes (``python -m riskcore_services.risk`` with state in
memory, and ``benchmarks.echo_server`` answering the engine's exact
CheckPosition answer); the client is this pytest process, on the sync stub
the README shows. grpcio's defaults only: ``GRPC_EXPERIMENTS`` has to be set
before grpc is imported, which ``python -m benchmarks --suite service`` does
for its own child clients.
"""
from __future__ import annotations

import itertools
import pathlib
from typing import Iterator

import grpc
import pytest

from benchmarks.processes import Children, grpc_env
from benchmarks.service import bench_config, engine_answer
from benchmarks.service_client import check_request, order, order_batch
from riskcore_services.proto import risk_pb2_grpc

DEADLINE = 10.0
_ids = itertools.count()


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[dict[str, str]]:
    """Targets of a bare echo server and of the engine (as shipped), both started here."""
    directory: pathlib.Path = tmp_path_factory.mktemp("service-bench")
    config = bench_config(directory, "bench.toml")
    env = grpc_env(False)
    with Children(directory) as kids:
        echo = kids.echo_server("echo", env, engine_answer(config, check_request()).hex())
        engine = kids.risk_server("risk", config, env)
        echo.wait_ready()
        engine.wait_ready()
        yield {"echo": echo.target, "engine": engine.target}


@pytest.fixture(scope="module")
def stubs(servers) -> Iterator[dict[str, risk_pb2_grpc.RiskEngineStub]]:
    channels = {name: grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
                for name, target in servers.items()}
    yield {name: risk_pb2_grpc.RiskEngineStub(channel) for name, channel in channels.items()}
    for channel in channels.values():
        channel.close()


@pytest.mark.benchmark(group="CheckPosition, one unary call (sync stub)")
@pytest.mark.parametrize("server", ["echo", "engine"])
def test_check_position_on_the_bare_echo_server_and_the_engine(benchmark, stubs, server: str) -> None:
    call, request = stubs[server].CheckPosition, check_request()
    answer = benchmark(call, request, timeout=DEADLINE)
    assert answer.accepted and answer.reason == "OK", answer


@pytest.mark.benchmark(group="SubmitOrder, one unary call (sync stub)")
def test_submit_order_of_an_accepted_order(benchmark, stubs) -> None:
    call = stubs["engine"].SubmitOrder

    def fresh_order():
        i = next(_ids)
        return (order(f"bench-single-{i}", i),), {"timeout": DEADLINE}

    answer = benchmark.pedantic(call, setup=fresh_order, rounds=2_000, warmup_rounds=100)
    assert answer.accepted, answer


@pytest.mark.benchmark(group="SubmitOrders, one 10k-order batch")
def test_submit_orders_of_a_10k_batch(benchmark, stubs) -> None:
    call = stubs["engine"].SubmitOrders

    def fresh_batch():
        return (order_batch(f"bench-batch-{next(_ids)}", 0, 10_000),), {"timeout": DEADLINE}

    answer = benchmark.pedantic(call, setup=fresh_batch, rounds=10, warmup_rounds=1)
    assert answer.accepted == 10_000, answer.accepted
