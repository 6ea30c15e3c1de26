"""Alerts on the control plane's events: a strategy that keeps crashing fires StrategyDown, then
StrategyFaulted when its breaker opens; a reset resolves both. Real risk engine, control plane, monitor
and strategy processes."""
from __future__ import annotations

from conftest import write_config
from control.conftest import CHILD_ENV

from riskcore_services.proto import control_pb2, control_pb2_grpc
from riskcore_services.testing import Children, ServerProcess

from .conftest import FIRING, RESOLVED, monitor_config, start_monitor

RULES = """
[[monitor.rules]]
name = "StrategyDown"
kind = "strategy_state"
states = ["FAILED", "BACKOFF", "FAULTED"]
summary = "strategy {strategy} is {state}: {detail}"

[[monitor.rules]]
name = "StrategyFaulted"
kind = "strategy_state"
states = ["FAULTED"]
severity = "critical"
summary = "strategy {strategy} FAULTED: {detail}"
"""


def control_config(directory, risk_target: str):
    path = directory / "control.toml"
    path.write_text(f"""
[control]
risk_target = "{risk_target}"
heartbeat_interval = 0.05
heartbeat_timeout = 2.0
stop_grace = 0.5
backoff_initial = 0.05
backoff_max = 0.1
breaker_failures = 2
""")
    return path


def test_a_crashing_strategy_fires_down_then_faulted_and_a_reset_resolves_both(tmp_path, watch_alerts):
    with Children(tmp_path) as children:
        risk = children.add(ServerProcess("risk", tmp_path, write_config(tmp_path))).start().wait_ready()
        control = children.add(ServerProcess("control", tmp_path, control_config(tmp_path, risk.target),
                                             command=("-m", "riskcore_services.control"),
                                             env=CHILD_ENV)).start().wait_ready()
        monitor = start_monitor(children, monitor_config(tmp_path, {"control": control.target}, RULES))
        alerts = watch_alerts(monitor)
        stub = control_pb2_grpc.ControlPlaneStub(control.channel())
        stub.RegisterStrategy(control_pb2.RegisterStrategyRequest(
            name="crasher", entry="tests.services.control.strategies:CrashesAtStart", account="momentum"),
            timeout=5)
        stub.Start(control_pb2.StrategyRequest(name="crasher"), timeout=10)
        down = alerts.next_alert("StrategyDown", FIRING)
        assert down.labels["strategy"] == "crasher" and down.labels["source"] == "control"
        faulted = alerts.next_alert("StrategyFaulted", FIRING)
        assert faulted.severity == "critical" and "FAULTED" in faulted.summary
        stub.Reset(control_pb2.StrategyRequest(name="crasher"), timeout=5)
        assert alerts.next_alert("StrategyFaulted", RESOLVED).key == faulted.key
        assert alerts.next_alert("StrategyDown", RESOLVED).key == down.key
