"""The monitor's webhook straight into a real Alertmanager (Debian's), which lists our alerts through its
own API while they fire and drops them once resolved."""
from __future__ import annotations

import pytest
from conftest import write_config

from riskcore_services.proto import risk_pb2, risk_pb2_grpc
from riskcore_services.testing import Children, ServerProcess, wait_until

from .conftest import FIRING, KILL_SWITCH_RULE, RESOLVED, monitor_config, start_monitor, webhook

# Alertmanager needs a route; what it does with the alerts is not under test here.
ALERTMANAGER = {"route": {"receiver": "nobody"}, "receivers": [{"name": "nobody"}]}


@pytest.mark.debian_servers
def test_alertmanager_lists_our_alert_while_it_fires(tmp_path, alertmanager_server, watch_alerts):
    alertmanager = alertmanager_server(ALERTMANAGER)
    with Children(tmp_path) as children:
        risk = children.add(ServerProcess("risk", tmp_path, write_config(tmp_path))).start().wait_ready()
        monitor = start_monitor(children, monitor_config(
            tmp_path, {"risk": risk.target}, KILL_SWITCH_RULE,
            webhook("alertmanager", f"{alertmanager.url}/api/v2/alerts")))
        alerts = watch_alerts(monitor)
        stub = risk_pb2_grpc.RiskEngineStub(risk.channel())
        stub.SetTradingState(risk_pb2.TradingStateRequest(account="FIRM", state=risk_pb2.HALTED), timeout=5)
        fired = alerts.next_alert("KillSwitchEngaged", FIRING)
        [held] = wait_until(lambda: alertmanager.alerts("KillSwitchEngaged"), 15, "the alert in Alertmanager")
        assert held["labels"] == dict(fired.labels) and held["status"]["state"] == "active"
        assert "HALTED" in held["annotations"]["summary"]
        stub.SetTradingState(risk_pb2.TradingStateRequest(account="FIRM", state=risk_pb2.ACTIVE), timeout=5)
        alerts.next_alert("KillSwitchEngaged", RESOLVED)
        wait_until(lambda: not alertmanager.alerts("KillSwitchEngaged"), 15, "the resolved alert to leave")
