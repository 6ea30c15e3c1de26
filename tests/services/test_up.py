"""``riskcore up``: the whole stack as a real child process on free ports, used, watched, then stopped by SIGINT.

The stack is started once for the module; the tests run in file order and
the last one stops it, so they read as one session: what it prints, the
README's snippet, ``/health``, the strategy, the feed's marks, ``riskcore
status``, and a clean stop that leaves no process behind.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys

import grpc
import pytest

from riskcore_services.cli import SERVICES
from riskcore_services.proto import (
    control_pb2, control_pb2_grpc, ingest_pb2, ingest_pb2_grpc, monitor_pb2, monitor_pb2_grpc, risk_pb2,
    risk_pb2_grpc,
)
from riskcore_services.testing import (
    HOST, START_TIMEOUT, ChildProcess, free_ports, http_get, log_events, wait_until,
)
from riskcore_services.up import plan_ports, start_order

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEADLINE = 5.0
READY_LINE = "Stop it: Ctrl-C"


def readme_snippet() -> str:
    """The README's first Python snippet (the CheckPosition call under "Calling the risk engine")."""
    return re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)


def up_command(state_dir: pathlib.Path, ports: dict[str, tuple[int, int]], *options: str) -> list[str]:
    argv = [sys.executable, "-m", "riskcore_services.cli", "up", "--state-dir", str(state_dir), *options]
    for name, (port, http_port) in ports.items():
        argv += [f"--{name}-port", str(port), f"--{name}-http-port", str(http_port)]
    return argv


def stack_ports() -> dict[str, tuple[int, int]]:
    chosen = iter(free_ports(2 * len(SERVICES)))
    return {name: (next(chosen), next(chosen)) for name in SERVICES}


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (children, their children...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue   # exited meanwhile
            parent = int(stat.rpartition(")")[2].split()[1])
            parents.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@dataclasses.dataclass
class Stack:
    """The running ``riskcore up`` and where its services are."""

    up: ChildProcess
    ports: dict[str, tuple[int, int]]
    state_dir: pathlib.Path

    def target(self, name: str) -> str:
        return f"{HOST}:{self.ports[name][0]}"

    def events(self, name: str, event: str) -> list[dict]:
        """The JSON log lines ``event`` of service ``name``."""
        return log_events((self.state_dir / f"{name}.log").read_text(), event)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("up")
    ports = stack_ports()
    up = ChildProcess("up", up_command(folder / "state", ports), folder)
    up.start()
    try:
        wait_until(lambda: up.check_running() or READY_LINE in up.output(), START_TIMEOUT, "riskcore up to be ready")
        yield Stack(up, ports, folder / "state")
    finally:
        up.stop()    # SIGTERM: riskcore up stops its stack (a no-op after the SIGINT test)


def test_up_prints_where_each_service_runs_and_the_readmes_snippet_on_its_port(stack):
    out = stack.up.output()
    for name, (port, http_port) in stack.ports.items():
        row = next(line for line in out.splitlines() if line.startswith(f"│ {name} "))
        assert f"127.0.0.1:{port}" in row and f"http://127.0.0.1:{http_port}" in row
        assert str(stack.state_dir / f"{name}.log") in row
    assert f"state folder {stack.state_dir}" in out
    assert readme_snippet().replace("localhost:50051", f"localhost:{stack.ports['risk'][0]}") in out


def test_the_readmes_check_position_snippet_answers(stack):
    snippet = readme_snippet().replace("localhost:50051", f"localhost:{stack.ports['risk'][0]}")
    run = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60)

    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[:2] == ["True", "OK"]


def test_health_answers_on_the_risk_engines_http_port(stack):
    status, body = http_get(f"http://127.0.0.1:{stack.ports['risk'][1]}/health")
    assert status == 200, body


def test_the_risk_engine_evaluates_the_monitors_rules_about_its_events_itself(stack):
    # EURUSD (no strategy trades it) halted: the sample's TradingRestricted fires on the risk engine's own Alerts.
    def firing(alerts) -> list[str]:
        return [a.labels["symbol"] for a in alerts.ListAlerts(monitor_pb2.ListAlertsRequest(), timeout=5).alerts
                if a.rule == "TradingRestricted"]

    with grpc.insecure_channel(stack.target("risk")) as channel:
        risk, alerts = risk_pb2_grpc.RiskEngineStub(channel), monitor_pb2_grpc.AlertsStub(channel)
        risk.SetTradingState(risk_pb2.TradingStateRequest(symbol="EURUSD", state=risk_pb2.HALTED), timeout=5)
        try:
            wait_until(lambda: firing(alerts) == ["EURUSD"], DEADLINE, "TradingRestricted on the risk engine")
        finally:
            risk.SetTradingState(risk_pb2.TradingStateRequest(symbol="EURUSD", state=risk_pb2.ACTIVE), timeout=5)
        wait_until(lambda: firing(alerts) == [], DEADLINE, "TradingRestricted to resolve")


def test_the_example_strategy_was_registered_and_started_through_the_control_plane(stack):
    with grpc.insecure_channel(stack.target("control")) as channel:
        control = control_pb2_grpc.ControlPlaneStub(channel)
        strategies = control.ListStrategies(control_pb2.ListStrategiesRequest(), timeout=DEADLINE).strategies

    assert [(s.name, s.account, s.state) for s in strategies] == [
        ("watcher", "momentum", control_pb2.STRATEGY_STATE_RUNNING)]
    assert strategies[0].pid in descendants(stack.up.process.pid)


def test_the_replayed_feed_keeps_marking_the_risk_engines_symbols(stack):
    with grpc.insecure_channel(stack.target("ingest")) as channel:
        feed = ingest_pb2_grpc.MarketDataStub(channel)

        def risk_output():
            status = feed.GetStatus(ingest_pb2.StatusRequest(), timeout=DEADLINE)
            return next(o for o in status.outputs if o.name == "risk")

        first = wait_until(lambda: (o := risk_output()).sent > 0 and o, 30, "the first marks")
        later = wait_until(lambda: (o := risk_output()).sent > first.sent and o, 30, "more marks")
    assert (later.failed, later.unknown_symbols) == (0, 0)
    assert (stack.state_dir / "sample-day.itch").is_file()


def test_status_once_shows_the_accounts_positions_the_strategy_and_the_feed(stack):
    with grpc.insecure_channel(stack.target("risk")) as channel:
        risk_pb2_grpc.RiskEngineStub(channel).ReportFill(risk_pb2.Fill(
            exec_id="status-1", quantity=300, price=190.0, account="momentum", symbol="AAPL", side=risk_pb2.BUY),
            timeout=DEADLINE)
    # Every service of the stack riskcore status reads (the monitor too, once it is registered).
    targets = [a for name in ("risk", "control", "ingest", "monitor") if name in stack.ports
               for a in (f"--{name}", stack.target(name))]
    run = subprocess.run([sys.executable, "-m", "riskcore_services.cli", "status", "--once", "--interval", "0.2",
                          *targets], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "160"})

    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    for account in ("FIRM", "equities", "momentum", "trend"):
        assert re.search(rf"│\s+{account}\s+│ ACTIVE", run.stdout), account
    assert re.search(r"│ momentum\s+│ AAPL\s+│\s+300 │\s+190.0000 │", run.stdout)
    assert re.search(r"│ watcher\s+│ momentum\s+│ RUNNING", run.stdout)
    assert re.search(r"│ state\s+│ LIVE", run.stdout)
    assert re.search(r"│ rate\s+│ [\d,]+ msg/s", run.stdout)
    assert "down" not in run.stdout
    assert ("Alerts firing" if "monitor" in SERVICES else "monitor not running (127.0.0.1:50054)") in run.stdout


def test_sigint_stops_the_strategy_then_the_services_in_reverse_order_and_leaves_no_process(stack):
    processes = descendants(stack.up.process.pid)
    assert len(processes) >= len(SERVICES) + 1          # the services and the strategy

    stack.up.signal(signal.SIGINT)

    assert stack.up.wait() == 0, stack.up.output()
    assert not [pid for pid in processes if alive(pid)]
    stops = {name: stack.events(name, "signal received")[0]["timestamp"] for name in SERVICES}
    stopped = [e for e in stack.events("control", "strategy transition") if e["state"] == "STOPPED"]
    assert stopped and stopped[0]["timestamp"] < stops["control"]
    order = start_order(list(SERVICES))
    assert sorted(order, key=lambda name: stops[name], reverse=True) == order


def test_up_with_a_port_taken_names_the_service_stops_what_it_started_and_exits_2(tmp_path):
    ports = stack_ports()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["control"][0]))
        busy.listen()
        run = subprocess.run(up_command(tmp_path / "state", ports, "--no-strategy"), capture_output=True, text=True,
                             timeout=120)

    assert run.returncode == 2
    assert run.stderr.startswith(f"riskcore up: control did not start: exited with 2: riskcore: port "
                                 f"{ports['control'][0]} on 127.0.0.1 is in use")
    assert "--control-port" in run.stderr
    risk_log = (tmp_path / "state" / "risk.log").read_text()
    assert log_events(risk_log, "signal received") and log_events(risk_log, "risk engine stopped")
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{ports['risk'][1]}/health", timeout=1.0)


def test_port_plan_shifts_every_default_by_the_base_port_and_refuses_a_clash():
    planned = plan_ports(SERVICES, 60051, {"control": 7000}, {})
    assert (planned["risk"].grpc, planned["risk"].http) == (60051, 18080)
    assert planned["control"].grpc == 7000
    with pytest.raises(ValueError, match="risk and control would share port 60051"):
        plan_ports(SERVICES, 60051, {"control": 60051}, {})
    with pytest.raises(ValueError, match="outside 1..65535"):
        plan_ports(SERVICES, 65534, {}, {})
    with pytest.raises(ValueError, match="risk: port 0 is outside 1..65535"):
        plan_ports(SERVICES, None, {"risk": 0}, {})


def test_up_with_a_port_it_cannot_use_says_so_and_starts_nothing(tmp_path):
    run = subprocess.run([sys.executable, "-m", "riskcore_services.cli", "up", "--state-dir", str(tmp_path / "state"),
                          "--risk-port", "0"], capture_output=True, text=True, timeout=60)

    assert run.returncode == 2
    assert run.stderr.startswith("riskcore up: risk: port 0 is outside 1..65535")
    assert not (tmp_path / "state").exists()


def test_a_service_that_dies_under_up_stops_the_stack_and_exits_1(tmp_path):
    up = ChildProcess("up", up_command(tmp_path / "state", stack_ports(), "--no-strategy"), tmp_path)
    try:
        up.start()
        wait_until(lambda: up.check_running() or READY_LINE in up.output(), START_TIMEOUT, "riskcore up to be ready")
        pids = {name: int(re.search(rf"│ {name}\s+│ (\d+)", up.output()).group(1)) for name in SERVICES}

        os.kill(pids["ingest"], signal.SIGKILL)

        assert up.wait() == 1
        assert "riskcore up: ingest exited with -9" in up.output()
        assert not [pid for pid in pids.values() if alive(pid)]
    finally:
        up.stop()


def test_a_killed_up_takes_its_services_with_it(tmp_path):
    up = ChildProcess("up", up_command(tmp_path / "state", stack_ports()), tmp_path)
    try:
        up.start()
        wait_until(lambda: up.check_running() or READY_LINE in up.output(), START_TIMEOUT, "riskcore up to be ready")
        processes = descendants(up.process.pid)
        assert len(processes) >= len(SERVICES) + 1          # the services and the strategy

        up.kill()    # SIGKILL: no handler of its own runs

        wait_until(lambda: not [pid for pid in processes if alive(pid)], START_TIMEOUT,
                   "the services and the strategy to exit after riskcore up was killed")
    finally:
        up.stop()
