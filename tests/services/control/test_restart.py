"""Durable desired state: ``riskcore serve control`` on a SQLite journal, restarted (killed or stopped) with
strategies running: it finds them again, re-adopts the live ones, starts the ones that should run, never
starts one twice and leaves no process behind."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import grpc
import pytest

from riskcore_services.common.journal.sqlite import SqliteJournal
from riskcore_services.control.desired import DesiredState, Kind, Want
from riskcore_services.proto import control_pb2 as pb
from riskcore_services.proto import control_pb2_grpc
from riskcore_services.testing import Children, ServerProcess, wait_until

from .conftest import CHILD_ENV, control_toml, group_members, live_processes

STRATEGIES = "tests.services.control.strategies"
RUNNING, PAUSED = pb.STRATEGY_STATE_RUNNING, pb.STRATEGY_STATE_PAUSED
HEARTBEAT_TIMEOUT = 2.0        # control_toml's


def strategy_processes(name: str) -> list[int]:
    """Live strategy runners (``riskcore_services.control.run``) of strategy ``name``."""
    found = []
    for pid, (folder, _) in live_processes().items():
        try:
            command, environ = (folder / "cmdline").read_bytes(), (folder / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"riskcore_services.control.run" in command and f"RISKCORE_STRATEGY={name}".encode() in environ:
            found.append(pid)
    return found


@pytest.fixture
def plane(tmp_path, serve):
    """A ``riskcore serve control`` on a journal in tmp_path (not yet started) and its stub maker; every
    strategy process group it ever reported is checked gone at the end."""
    risk = serve()
    config = tmp_path / "control.toml"
    config.write_text(control_toml(risk.port, after=f'[state]\npath = "{tmp_path / "control.db"}"\n'))
    seen: set[int] = set()
    with Children(tmp_path) as children:
        control = children.add(ServerProcess("control", tmp_path, config, command=("-m", "riskcore_services.control"),
                                             env={**os.environ, **CHILD_ENV}))

        def stub() -> control_pb2_grpc.ControlPlaneStub:
            return control_pb2_grpc.ControlPlaneStub(control.channel())

        control.seen = seen
        yield control, stub
        if control.running:
            control.signal(signal.SIGTERM)
            control.wait()
    wait_until(lambda: not any(group_members(pid) for pid in seen), 10.0, "every strategy process to be gone")


def states(stub, seen: set[int]) -> dict[str, tuple[int, int]]:
    """{name: (state, pid)} of every strategy; pids are remembered in ``seen``."""
    answer = {s.name: (s.state, s.pid) for s in stub.ListStrategies(pb.ListStrategiesRequest(), timeout=5).strategies}
    seen.update(pid for _, pid in answer.values() if pid)
    return answer


def register_and_start(stub, *names: str) -> None:
    for name in names:
        stub.RegisterStrategy(pb.RegisterStrategyRequest(name=name, entry=f"{STRATEGIES}:Behaves", account="momentum"),
                              timeout=5)
        stub.Start(pb.StrategyRequest(name=name), timeout=5)


def test_a_killed_control_plane_restarted_re_adopts_live_strategies_and_starts_the_dead_one_once(plane):
    control, stub = plane
    control.start().wait_ready()
    register_and_start(stub(), "a", "paused", "dies")
    stub().RegisterStrategy(pb.RegisterStrategyRequest(name="idle", entry=f"{STRATEGIES}:Behaves",
                                                       account="momentum"), timeout=5)
    wait_until(lambda: all(s == RUNNING for n, (s, _) in states(stub(), control.seen).items() if n != "idle"),
               30.0, "three strategies RUNNING")
    stub().Pause(pb.StrategyRequest(name="paused"), timeout=5)
    before = states(stub(), control.seen)

    control.kill()                                     # no shutdown: its strategies live on
    os.killpg(before["dies"][1], signal.SIGKILL)       # and one of them dies while nobody watches
    wait_until(lambda: not group_members(before["dies"][1]), 10.0, "the dead strategy gone")
    assert group_members(before["a"][1]) and group_members(before["paused"][1])

    control.start().wait_ready()
    after = wait_until(lambda: (s := states(stub(), control.seen))["dies"][0] == RUNNING and s, 30.0,
                       "the dead strategy running again")
    assert after["a"] == before["a"] == (RUNNING, before["a"][1])
    assert after["paused"] == (PAUSED, before["paused"][1])
    assert after["idle"] == (pb.STRATEGY_STATE_REGISTERED, 0)
    assert after["dies"][1] != before["dies"][1]
    # The heartbeats reach the new control plane: past a heartbeat timeout the adopted ones still run.
    time.sleep(HEARTBEAT_TIMEOUT * 1.5)
    assert states(stub(), control.seen) == after
    a = stub().GetStrategy(pb.StrategyRequest(name="a"), timeout=5)
    assert (a.restarts, a.heartbeat_age_seconds < HEARTBEAT_TIMEOUT) == (0, True)
    for name in ("a", "paused", "dies"):
        assert strategy_processes(name) == [after[name][1]], name     # one process each, never two
    assert strategy_processes("idle") == []

    # A lifecycle call on an adopted strategy works as on any other.
    stopped = stub().Stop(pb.StrategyRequest(name="a"), timeout=10)
    assert (stopped.state, stopped.pid) == (pb.STRATEGY_STATE_STOPPED, 0)
    assert not group_members(after["a"][1])


def test_a_control_plane_stopped_and_started_again_starts_what_should_run_and_not_what_was_stopped(plane):
    control, stub = plane
    control.start().wait_ready()
    register_and_start(stub(), "runs", "stopped")
    wait_until(lambda: all(s == RUNNING for s, _ in states(stub(), control.seen).values()), 30.0, "both RUNNING")
    stub().Stop(pb.StrategyRequest(name="stopped"), timeout=10)
    before = states(stub(), control.seen)

    control.signal(signal.SIGTERM)                     # a graceful stop takes every strategy down with it
    assert control.wait() == 0
    assert not group_members(before["runs"][1])

    control.start().wait_ready()
    after = wait_until(lambda: (s := states(stub(), control.seen))["runs"][0] == RUNNING and s, 30.0,
                       "the running strategy started again")
    assert after["stopped"] == (pb.STRATEGY_STATE_REGISTERED, 0)      # back as registered, not started
    assert after["runs"][1] != before["runs"][1] and strategy_processes("runs") == [after["runs"][1]]
    with pytest.raises(grpc.RpcError) as refused:
        stub().RegisterStrategy(pb.RegisterStrategyRequest(name="runs", entry=f"{STRATEGIES}:Behaves",
                                                           account="momentum"), timeout=5)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_desired_state_comes_back_from_its_snapshot_and_the_records_after_it(tmp_path):
    path = str(tmp_path / "desired.db")

    async def write():
        journal = SqliteJournal(path)
        desired = DesiredState(journal)
        await desired.recover(*journal.load())
        journal.start(asyncio.get_running_loop())
        await desired.record(Kind.REGISTER, name="a", entry="m:A", account="x", config={"k": [1, 2]})
        await desired.record(Kind.REGISTER, name="b", entry="m:B", account="y", config={})
        await desired.record(Kind.WANT, name="a", want="running")
        desired.snapshot()
        await desired.record(Kind.PROCESS, name="a", pid=42, started=7)
        await desired.record(Kind.WANT, name="b", want="faulted")
        await desired.record(Kind.REMOVE, name="b")
        await journal.aclose()

    async def read():
        journal = SqliteJournal(path)
        recovered = DesiredState(journal)
        try:
            return await recovered.recover(*journal.load()), recovered.strategies
        finally:
            journal.close()

    asyncio.run(write())
    summary, strategies = asyncio.run(read())
    assert summary == dict(snapshot_seq=3, replayed=3, strategies=1)
    a = strategies["a"]
    assert (a.entry, a.account, a.config, a.want, a.pid, a.started) == ("m:A", "x", {"k": [1, 2]}, Want.RUNNING, 42, 7)
