"""The supervisor on real child processes and a real risk engine (in process)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from riskcore_services.common.auth import TokenEntry, token_digest
from riskcore_services.common.errors import FailedPrecondition, Unavailable
from riskcore_services.control.lifecycle import State
from riskcore_services.control.supervisor import RiskGate, Supervisor
from riskcore_services.proto import risk_pb2
from riskcore_services.risk.client import RiskClient
from riskcore_services.risk.config import load_config
from riskcore_services.testing import free_port

from .conftest import POLICY, TIMINGS, group_members, reach, spec, until


def trading_state(h, account: str) -> int:
    return next(a for a in h.client.get_exposure(account) if a.account == account).state


def test_a_strategy_that_behaves_runs_then_stops_and_its_account_is_halted(harness):
    async def scenario(h):
        s = h.supervisor
        await s.register(spec("good", "Behaves"))
        await s.start("good")
        await reach(s, "good", State.RUNNING)
        pid = s.info("good")["pid"]
        assert pid and group_members(pid)
        assert trading_state(h, "momentum") == risk_pb2.ACTIVE
        await s.stop("good")
        assert s.get("good").life.state is State.STOPPED
        assert not group_members(pid)
        assert trading_state(h, "momentum") == risk_pb2.HALTED
        assert h.states("good") == ["REGISTERED", "STARTING", "RUNNING", "STOPPING", "STOPPED"]
    harness(scenario)


def test_pause_sets_the_account_reducing_and_resume_active(harness):
    async def scenario(h):
        s = h.supervisor
        await s.register(spec("good", "Behaves"))
        await s.start("good")
        await reach(s, "good", State.RUNNING)
        await s.pause("good")
        assert s.get("good").life.state is State.PAUSED
        assert trading_state(h, "momentum") == risk_pb2.REDUCING
        with pytest.raises(FailedPrecondition, match="is PAUSED: cannot pause"):
            await s.pause("good")
        await s.resume("good")
        assert trading_state(h, "momentum") == risk_pb2.ACTIVE
        assert s.get("good").life.state is State.RUNNING
        await s.stop("good")
    harness(scenario)


def test_a_strategy_that_crashes_at_start_backs_off_restarts_and_faults_after_n_failures(harness):
    async def scenario(h):
        s = h.supervisor
        await s.register(spec("crash", "CrashesAtStart"))
        await s.start("crash")
        await reach(s, "crash", State.FAULTED)
        assert h.states("crash") == ["REGISTERED", "STARTING",
                                     "FAILED", "BACKOFF", "STARTING",
                                     "FAILED", "BACKOFF", "STARTING",
                                     "FAILED", "FAULTED"]
        info = s.info("crash")
        assert info["restarts"] == POLICY.breaker - 1
        assert info["last_error"] == "exited with code 1"
        # The halt is the failure's background call to the risk engine: it may land just after FAULTED.
        await until(lambda: trading_state(h, "momentum") == risk_pb2.HALTED, what="momentum HALTED")
        with pytest.raises(FailedPrecondition, match="is FAULTED: cannot start"):
            await s.start("crash")
        await s.reset("crash")
        assert s.get("crash").life.state is State.STOPPED
    harness(scenario)


def test_a_strategy_that_ignores_sigterm_is_killed_after_the_grace(harness):
    async def scenario(h):
        s = h.supervisor
        await s.register(spec("stubborn", "IgnoresSigterm"))
        await s.start("stubborn")
        await reach(s, "stubborn", State.RUNNING)
        pid = s.info("stubborn")["pid"]
        await s.stop("stubborn")
        assert s.get("stubborn").life.state is State.STOPPED
        assert h.events[-1].reason == "exited with code -9"
        assert not group_members(pid)
    harness(scenario)


def test_heartbeat_loss_fails_the_strategy_and_kills_its_group(harness):
    async def scenario(h):
        s = h.supervisor
        await s.register(spec("hang", "StopsHeartbeating"))
        await s.start("hang")
        await reach(s, "hang", State.RUNNING)
        pid = s.info("hang")["pid"]
        await until(lambda: "FAILED" in h.states("hang"), what="FAILED")
        failed = next(e for e in h.events if e.state is State.FAILED)
        assert failed.reason.startswith("heartbeat lost") and failed.previous is State.RUNNING
        assert not group_members(pid)
        await s.stop("hang")
    harness(scenario)


def test_the_whole_process_group_goes_on_stop(harness):
    async def scenario(h):
        s = h.supervisor
        await s.register(spec("parent", "SpawnsAChild"))
        await s.start("parent")
        await reach(s, "parent", State.RUNNING)
        pid = s.info("parent")["pid"]
        await until(lambda: len(group_members(pid)) == 2, what="the grandchild")
        await s.stop("parent")
        await until(lambda: not group_members(pid), 10.0, "the group to empty")
    harness(scenario)


def test_kill_switch_halts_the_firm_and_stops_every_strategy(harness):
    async def scenario(h):
        s = h.supervisor
        for name, account in (("a", "momentum"), ("b", "default"), ("c", "momentum")):
            await s.register(spec(name, "Behaves", account))
            await s.start(name)
        await s.register(spec("idle", "Behaves"))
        for name in "abc":
            await reach(s, name, State.RUNNING)
        assert sorted(await s.kill_switch()) == ["a", "b", "c"]
        assert {n: s.get(n).life.state for n in s.names()} == {
            "a": State.STOPPED, "b": State.STOPPED, "c": State.STOPPED, "idle": State.REGISTERED}
        assert trading_state(h, "FIRM") == risk_pb2.HALTED
        assert trading_state(h, "default") == risk_pb2.HALTED
    harness(scenario)


def test_illegal_moves_are_refused_naming_the_state(harness):
    async def scenario(h):
        s = h.supervisor
        await s.register(spec("x", "Behaves"))
        with pytest.raises(FailedPrecondition, match="is REGISTERED: cannot stop"):
            await s.stop("x")
        with pytest.raises(FailedPrecondition, match="is REGISTERED: cannot resume"):
            await s.resume("x")
        with pytest.raises(FailedPrecondition, match="already registered"):
            await s.register(spec("x", "Behaves"))
        assert s.get("x").life.state is State.REGISTERED
    harness(scenario, risk=False)


def test_start_is_refused_when_the_risk_engine_is_unreachable(harness):
    async def scenario(h):
        gate = RiskGate(RiskClient(f"127.0.0.1:{free_port()}", deadline=0.2, retry_attempts=1), "FIRM")
        s = Supervisor(TIMINGS, POLICY, gate)
        await s.register(spec("x", "Behaves"))
        with pytest.raises(Unavailable, match="risk engine unreachable"):
            await s.start("x")
        assert s.get("x").life.state is State.REGISTERED
        await s.close()
        gate.close()
    harness(scenario, risk=False)


def test_a_strategy_that_crashes_while_running_is_restarted_after_backoff(harness):
    async def scenario(h):
        s = h.supervisor
        await s.register(spec("later", "CrashesLater"))
        await s.start("later")
        await until(lambda: s.get("later").life.restarts == 1 and s.get("later").life.state is State.RUNNING,
                    what="a restart that reaches RUNNING")
        assert h.states("later")[:7] == ["REGISTERED", "STARTING", "RUNNING", "FAILED", "BACKOFF", "STARTING",
                                         "RUNNING"]
        failed = next(e for e in h.events if e.state is State.FAILED)
        assert (failed.previous, failed.reason) == (State.RUNNING, "exited with code 3")
        assert s.failures_total["exit"] >= 1 and s.restarts_total >= 1
        await s.stop("later")              # legal in every state it can be in: its breaker never opens here
        assert s.get("later").life.state is State.STOPPED
    harness(scenario, policy=dataclasses.replace(POLICY, breaker=1000))


def test_a_strategys_risk_client_acts_on_its_own_account_and_is_denied_any_other(harness, tmp_path):
    tokens = {"momentum": "momentum-secret", "trend": "trend-secret"}
    risk_config = dataclasses.replace(load_config(None), tokens=(
        TokenEntry("control", token_digest("control-secret"), "admin"),
        *(TokenEntry(f"{a}-bot", token_digest(t), "trader", (a,)) for a, t in tokens.items())))
    out = tmp_path / "answers.json"

    async def scenario(h):
        s = h.supervisor
        await s.register(spec("reach", "ReportsItsReach", "momentum", other="trend", out=str(out)))
        await s.start("reach")
        await reach(s, "reach", State.RUNNING)
        assert json.loads(out.read_text()) == {"own": "ACCEPTED", "other": "PERMISSION_DENIED"}
        with pytest.raises(FailedPrecondition, match="account 'default' has no risk token"):
            await s.register(spec("tokenless", "Behaves", "default"))
        await s.stop("reach")
    harness(scenario, risk_config=risk_config, risk_token="control-secret", risk_tokens=tokens)
