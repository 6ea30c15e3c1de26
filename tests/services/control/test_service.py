"""The ControlPlane gRPC service: a real ControlServer on a real port, real strategy processes, a real risk engine."""
from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest
from prometheus_client import generate_latest

from riskcore_services.common.config import ServerConfig
from riskcore_services.control.config import ControlConfig, StrategyEntry, load_config
from riskcore_services.control.server import ControlServer
from riskcore_services.proto import control_pb2 as pb
from riskcore_services.proto import control_pb2_grpc, risk_pb2
from riskcore_services.risk.client import RiskClient
from riskcore_services.testing import Metrics, free_port

from .conftest import CHILD_ENV, group_members

STRATEGIES = "tests.services.control.strategies"
DEADLINE = 10.0


def config_for(risk_port: int, **changes) -> ControlConfig:
    return dataclasses.replace(
        load_config(None), server=ServerConfig(port=0, http_port=0, grace_seconds=1.0, drain_seconds=0.0),
        risk_target=f"127.0.0.1:{risk_port}", heartbeat_interval=0.05, heartbeat_timeout=1.0, stop_grace=0.5,
        backoff_initial=0.05, backoff_max=0.2, breaker_failures=3, strategies=(), **changes)


@pytest.fixture
def control(serve, monkeypatch):
    """``control(test, risk=True, **config)``: run ``async test(stub, server, risk_client)`` against a started
    ControlServer; every strategy process group is checked gone afterwards."""
    monkeypatch.setenv("PYTHONPATH", CHILD_ENV["PYTHONPATH"])

    def run(test, risk: bool = True, **changes):
        risk_server = serve() if risk else None
        port = risk_server.port if risk_server else free_port()
        client = RiskClient(f"127.0.0.1:{port}", deadline=2.0)
        groups: set[int] = set()

        async def main():
            server = ControlServer(config_for(port, **changes),
                                   RiskClient(f"127.0.0.1:{port}", deadline=0.5, retry_attempts=1))
            server.events.publish = _recording(server.events.publish, groups)
            server.supervisor.on_event = server.events.publish
            await server.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                    await asyncio.wait_for(test(control_pb2_grpc.ControlPlaneStub(channel), server, client), 60)
            finally:
                await server.stop(0.5)
        try:
            asyncio.run(main())
        finally:
            client.close()
        assert not any(group_members(g) for g in groups), "strategy processes outlived the control plane"
    return run


def _recording(publish, groups):
    def record(event):
        if event is not None and event.pid:
            groups.add(event.pid)
        publish(event)
    return record


async def wait_state(stub, name: str, state: int) -> pb.Strategy:
    for _ in range(3000):
        answer = await stub.GetStrategy(pb.StrategyRequest(name=name), timeout=DEADLINE)
        if answer.state == state:
            return answer
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name} never reached {pb.StrategyState.Name(state)}")


def register(name: str, cls: str, account: str = "momentum") -> pb.RegisterStrategyRequest:
    return pb.RegisterStrategyRequest(name=name, entry=f"{STRATEGIES}:{cls}", account=account, config_json="{}")


def account_state(client: RiskClient, account: str) -> int:
    return next(a for a in client.get_exposure(account) if a.account == account).state


def test_register_start_stop_over_grpc_with_the_events_streamed(control):
    async def scenario(stub, server, client):
        events = stub.WatchEvents(pb.WatchEventsRequest(), timeout=60)
        for _ in range(1000):           # the stream is live once the server holds its queue
            if server.events.subscribers:
                break
            await asyncio.sleep(0.01)
        assert server.events.subscribers == 1
        registered = await stub.RegisterStrategy(register("good", "Behaves"), timeout=DEADLINE)
        assert registered.state == pb.STRATEGY_STATE_REGISTERED
        started = await stub.Start(pb.StrategyRequest(name="good"), timeout=DEADLINE)
        assert started.state in (pb.STRATEGY_STATE_STARTING, pb.STRATEGY_STATE_RUNNING) and started.pid
        running = await wait_state(stub, "good", pb.STRATEGY_STATE_RUNNING)
        assert running.account == "momentum" and running.restarts == 0
        listed = await stub.ListStrategies(pb.ListStrategiesRequest(), timeout=DEADLINE)
        assert [s.name for s in listed.strategies] == ["good"]
        stopped = await stub.Stop(pb.StrategyRequest(name="good"), timeout=DEADLINE)
        assert stopped.state == pb.STRATEGY_STATE_STOPPED and stopped.pid == 0
        assert not group_members(running.pid)
        assert account_state(client, "momentum") == risk_pb2.HALTED
        seen = []
        async for event in events:
            seen.append(pb.StrategyState.Name(event.state))
            if event.state == pb.STRATEGY_STATE_STOPPED:
                break
        events.cancel()
        assert seen == ["STRATEGY_STATE_REGISTERED", "STRATEGY_STATE_STARTING", "STRATEGY_STATE_RUNNING", "STRATEGY_STATE_STOPPING",
                        "STRATEGY_STATE_STOPPED"]
        await stub.Remove(pb.StrategyRequest(name="good"), timeout=DEADLINE)
        assert not (await stub.ListStrategies(pb.ListStrategiesRequest(), timeout=DEADLINE)).strategies
    control(scenario)


def test_illegal_moves_unknown_names_and_bad_fields_get_their_status_codes(control):
    async def scenario(stub, server, client):
        await stub.RegisterStrategy(register("x", "Behaves"), timeout=DEADLINE)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Pause(pb.StrategyRequest(name="x"), timeout=DEADLINE)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "is REGISTERED: cannot pause" in refused.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Reset(pb.StrategyRequest(name="x"), timeout=DEADLINE)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.Start(pb.StrategyRequest(name="nobody"), timeout=DEADLINE)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        bad = register("y", "Behaves")
        bad.config_json = "[1]"
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.RegisterStrategy(bad, timeout=DEADLINE)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "config_json" in invalid.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.RegisterStrategy(pb.RegisterStrategyRequest(name="z", entry="nocolon", account="a"),
                                        timeout=DEADLINE)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "entry" in invalid.value.details()
    control(scenario)


def test_a_crashing_strategy_faults_over_grpc_and_reset_lets_it_start_again(control):
    async def scenario(stub, server, client):
        await stub.RegisterStrategy(register("crash", "CrashesAtStart"), timeout=DEADLINE)
        await stub.Start(pb.StrategyRequest(name="crash"), timeout=DEADLINE)
        faulted = await wait_state(stub, "crash", pb.STRATEGY_STATE_FAULTED)
        assert faulted.restarts == 2 and faulted.last_error == "exited with code 1"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Restart(pb.StrategyRequest(name="crash"), timeout=DEADLINE)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "FAULTED" in refused.value.details()
        metrics = Metrics(generate_latest(server.registry).decode())
        assert metrics.value("riskcore_control_restarts_total") == 2
        assert metrics.value("riskcore_control_breaker_trips_total") == 1
        assert metrics.value("riskcore_control_failures_total", kind="exit") == 3
        assert metrics.value("riskcore_control_strategies", state="FAULTED") == 1
        reset = await stub.Reset(pb.StrategyRequest(name="crash"), timeout=DEADLINE)
        assert reset.state == pb.STRATEGY_STATE_STOPPED and reset.last_error == ""
    control(scenario)


def test_kill_switch_halts_the_firm_in_the_risk_engine_and_stops_every_strategy(control):
    async def scenario(stub, server, client):
        for name, account in (("a", "momentum"), ("b", "default")):
            await stub.RegisterStrategy(register(name, "Behaves", account), timeout=DEADLINE)
            await stub.Start(pb.StrategyRequest(name=name), timeout=DEADLINE)
        await stub.RegisterStrategy(register("stubborn", "IgnoresSigterm"), timeout=DEADLINE)
        await stub.Start(pb.StrategyRequest(name="stubborn"), timeout=DEADLINE)
        pids = [(await wait_state(stub, n, pb.STRATEGY_STATE_RUNNING)).pid for n in ("a", "b", "stubborn")]
        answer = await stub.KillSwitch(pb.KillSwitchRequest(reason="test"), timeout=DEADLINE)
        assert sorted(answer.stopped) == ["a", "b", "stubborn"]
        assert account_state(client, "FIRM") == risk_pb2.HALTED
        listed = await stub.ListStrategies(pb.ListStrategiesRequest(), timeout=DEADLINE)
        assert {s.name: s.state for s in listed.strategies} == dict.fromkeys(("a", "b", "stubborn"),
                                                                            pb.STRATEGY_STATE_STOPPED)
        assert not any(group_members(pid) for pid in pids)
    control(scenario)


def test_pause_mode_halted_halts_the_account_on_pause(control):
    async def scenario(stub, server, client):
        await stub.RegisterStrategy(register("p", "Behaves"), timeout=DEADLINE)
        await stub.Start(pb.StrategyRequest(name="p"), timeout=DEADLINE)
        await wait_state(stub, "p", pb.STRATEGY_STATE_RUNNING)
        paused = await stub.Pause(pb.StrategyRequest(name="p"))     # no deadline: the client's own applies
        assert paused.state == pb.STRATEGY_STATE_PAUSED
        assert account_state(client, "momentum") == risk_pb2.HALTED
        resumed = await stub.Resume(pb.StrategyRequest(name="p"), timeout=DEADLINE)
        assert resumed.state == pb.STRATEGY_STATE_RUNNING
        assert account_state(client, "momentum") == risk_pb2.ACTIVE
    control(scenario, pause_mode="HALTED")


def test_start_is_unavailable_when_the_risk_engine_cannot_be_reached(control):
    async def scenario(stub, server, client):
        await stub.RegisterStrategy(register("x", "Behaves"), timeout=DEADLINE)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Start(pb.StrategyRequest(name="x"), timeout=DEADLINE)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "risk engine unreachable" in refused.value.details()
        state = await stub.GetStrategy(pb.StrategyRequest(name="x"), timeout=DEADLINE)
        assert state.state == pb.STRATEGY_STATE_REGISTERED and state.pid == 0
    control(scenario, risk=False)


def test_start_is_refused_when_the_risk_engine_does_not_know_the_account(control):
    async def scenario(stub, server, client):
        await stub.RegisterStrategy(register("x", "Behaves", account="nobody"), timeout=DEADLINE)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Start(pb.StrategyRequest(name="x"), timeout=DEADLINE)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "risk engine refused ACTIVE on account 'nobody'" in refused.value.details()
        assert (await stub.GetStrategy(pb.StrategyRequest(name="x"), timeout=DEADLINE)).pid == 0
    control(scenario)


def test_the_shipped_sample_loads_with_the_control_planes_ports():
    config = load_config(None)
    assert (config.server.port, config.server.http_port) == (50052, 8082)
    assert config.strategies == (StrategyEntry("watcher", "riskcore_services.control.example:PositionWatcher",
                                               "momentum", {"symbol": "AAPL", "quantity": 1, "interval": 1.0}),)


def test_the_example_strategy_runs_against_the_risk_engine_and_keeps_running(control):
    async def scenario(stub, server, client):
        await stub.RegisterStrategy(pb.RegisterStrategyRequest(
            name="watcher", entry="riskcore_services.control.example:PositionWatcher", account="momentum",
            config_json='{"symbol": "AAPL", "interval": 0.05}'), timeout=DEADLINE)
        await stub.Start(pb.StrategyRequest(name="watcher"), timeout=DEADLINE)
        running = await wait_state(stub, "watcher", pb.STRATEGY_STATE_RUNNING)
        await asyncio.sleep(0.3)
        after = await stub.GetStrategy(pb.StrategyRequest(name="watcher"), timeout=DEADLINE)
        assert (after.state, after.pid, after.restarts) == (pb.STRATEGY_STATE_RUNNING, running.pid, 0)
        assert after.heartbeat_age_seconds < 1.0
    control(scenario)


def test_an_account_token_file_that_cannot_be_read_or_is_empty_is_a_config_error(tmp_path):
    from riskcore_services.control.config import ConfigError

    (tmp_path / "empty.token").write_text("\n")
    for path, message in ((tmp_path / "missing.token", "control.account_tokens.momentum: cannot read"),
                          (tmp_path / "empty.token", "control.account_tokens.momentum: ")):
        with pytest.raises(ConfigError, match=message) as error:
            ControlServer(config_for(free_port(), account_tokens={"momentum": path}))
        assert str(error.value).endswith("is empty") == (path.name == "empty.token")
