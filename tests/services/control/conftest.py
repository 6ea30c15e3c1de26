"""Helpers for the control plane tests: a supervisor on real child processes and a real risk engine."""
from __future__ import annotations

import asyncio
import os
import pathlib

import pytest

from riskcore_services.control.lifecycle import BackoffPolicy, State
from riskcore_services.control.supervisor import RiskGate, StrategySpec, Supervisor, Timings
from riskcore_services.risk.client import RiskClient

ROOT = pathlib.Path(__file__).resolve().parents[3]
# Children import the sample strategies from the tests package.
CHILD_ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
# Short, but not so short that a busy machine's slow child start counts as a failure: the start has its own
# generous limit, and nothing asserts on elapsed time.
TIMINGS = Timings(heartbeat_interval=0.05, heartbeat_timeout=1.0, stop_grace=0.5, start_timeout=30.0)
POLICY = BackoffPolicy(initial=0.05, factor=2.0, maximum=0.2, jitter=0.1, breaker=3, window=600.0)
WAIT = 30.0


def control_toml(risk_port: int, control: str = "", after: str = "") -> str:
    """A ``riskcore serve control`` file for tests: short timings, the risk engine at ``risk_port``, more
    ``[control]`` keys, then more tables."""
    return f"""
[server]
drain_seconds = 0.0
grace_seconds = 1.0

[control]
risk_target = "127.0.0.1:{risk_port}"
heartbeat_interval = 0.05
heartbeat_timeout = 2.0
stop_grace = 1.0
{control}
{after}"""


def spec(name: str, cls: str, account: str = "momentum", **config) -> StrategySpec:
    return StrategySpec(name, f"tests.services.control.strategies:{cls}", account, config, CHILD_ENV)


def live_processes() -> dict[int, tuple[pathlib.Path, list[str]]]:
    """Every live (not zombie) process: pid -> (its /proc folder, its stat fields after the command name)."""
    found = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = (entry, fields)
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    return [pid for pid, (_, fields) in live_processes().items() if int(fields[2]) == pgid]


async def until(predicate, timeout: float = WAIT, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def reach(supervisor: Supervisor, name: str, state: State) -> None:
    await until(lambda: supervisor.get(name).life.state is state, what=f"{name} {state.name}")


class Harness:
    """A supervisor with its events, and every process group it started checked gone at the end."""

    def __init__(self, risk_port: int | None, timings: Timings = TIMINGS, policy: BackoffPolicy = POLICY,
                 risk_token: str | None = None, risk_tokens: dict[str, str] = {}, market_data_target: str = ""):
        self.events: list = []
        self.client = RiskClient(f"127.0.0.1:{risk_port}", token=risk_token, deadline=2.0) if risk_port else None
        gate = RiskGate(self.client, "FIRM", "REDUCING") if self.client else None
        self.supervisor = Supervisor(timings, policy, gate, self.record,
                                     risk_target=f"127.0.0.1:{risk_port}" if risk_port else "",
                                     risk_tokens=risk_tokens, market_data_target=market_data_target)
        self.groups: set[int] = set()

    def record(self, event) -> None:
        self.events.append(event)
        if event.pid:
            self.groups.add(event.pid)

    def states(self, name: str) -> list[str]:
        return [e.state.name for e in self.events if e.strategy == name]

    async def close(self) -> None:
        await self.supervisor.close()
        if self.client is not None:
            self.client.close()
        # No orphans: every group the supervisor made is empty (its children reaped or gone).
        await until(lambda: not any(group_members(g) for g in self.groups), 10.0, "process groups to empty")


@pytest.fixture
def harness(serve):
    """``harness(test, risk=True, risk_config=None, **kw)``: run ``async test(h)`` on a fresh loop with a
    Harness (and a real in-process risk engine, on ``risk_config`` or the sample configuration, unless
    ``risk=False``); groups are checked gone."""
    def run(test, risk: bool = True, risk_config=None, **options):
        server = serve(risk_config) if risk else None

        async def main():
            h = Harness(server.port if server else None, **options)
            h.server = server
            await h.supervisor.open()
            try:
                await asyncio.wait_for(test(h), 60)
            finally:
                await h.close()
        asyncio.run(main())
    return run
