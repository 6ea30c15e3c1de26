"""``riskcore serve control`` as a real process: starts its configured strategies, and SIGTERM stops them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc

from riskcore_services.proto import control_pb2 as pb
from riskcore_services.proto import control_pb2_grpc, risk_pb2
from riskcore_services.risk.client import RiskClient
from riskcore_services.testing import Children, ServerProcess

from .conftest import CHILD_ENV, control_toml, group_members

STRATEGY = """
[[control.strategies]]
name = "good"
entry = "tests.services.control.strategies:Behaves"
account = "momentum"
start = true
"""


def test_serve_control_starts_its_configured_strategies_and_sigterm_stops_them_and_exits_0(tmp_path, serve):
    risk = serve()
    config = tmp_path / "control.toml"
    config.write_text(control_toml(risk.port, after=STRATEGY))
    with Children(tmp_path) as children:
        control = children.add(ServerProcess("control", tmp_path, config, command=("-m", "riskcore_services.control"),
                                             env={**os.environ, **CHILD_ENV})).start().wait_ready()
        with grpc.insecure_channel(f"127.0.0.1:{control.port}") as channel:
            stub = control_pb2_grpc.ControlPlaneStub(channel)
            end = time.monotonic() + 30
            while (answer := stub.GetStrategy(pb.StrategyRequest(name="good"), timeout=5)).state \
                    != pb.STRATEGY_STATE_RUNNING:
                assert time.monotonic() < end, f"never RUNNING: {answer}"
                time.sleep(0.02)
        control.signal(signal.SIGTERM)
        assert control.wait() == 0, control.output()
        assert not group_members(answer.pid)
    with RiskClient(f"127.0.0.1:{risk.port}", deadline=2.0) as client:
        assert next(a for a in client.get_exposure("momentum") if a.account == "momentum").state == risk_pb2.HALTED


def test_a_strategy_process_without_its_go_from_the_control_plane_exits_3_having_run_nothing(tmp_path):
    # The control plane writes the token line only once the process is recorded; no line, no strategy.
    run = subprocess.run([sys.executable, "-m", "riskcore_services.control.run",
                          "tests.services.control.strategies:ReportsItsReach"], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60, env={**os.environ, **CHILD_ENV})
    assert (run.returncode, run.stdout) == (3, "")
    assert "no go from the control plane" in run.stderr
