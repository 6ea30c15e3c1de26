"""Webhook delivery: the Alertmanager v2 payload to a real HTTP receiver; a dead receiver costs the others
nothing."""
from __future__ import annotations

import datetime

import pytest
from conftest import write_config

from riskcore_services.proto import risk_pb2, risk_pb2_grpc
from riskcore_services.testing import Children, ServerProcess

from .conftest import (FIRING, KILL_SWITCH_RULE, RESOLVED, DeadReceiver, monitor_config, start_monitor,
                       webhook)

RULES = KILL_SWITCH_RULE + 'labels = { team = "risk" }\n'


@pytest.fixture
def risk(tmp_path):
    with Children(tmp_path) as children:
        yield children, children.add(ServerProcess("risk", tmp_path, write_config(tmp_path))).start().wait_ready()


def set_state(risk, state: int) -> None:
    risk_pb2_grpc.RiskEngineStub(risk.channel()).SetTradingState(
        risk_pb2.TradingStateRequest(account="FIRM", state=state), timeout=5)


def test_alerts_reach_a_webhook_in_alertmanagers_format(risk, receivers, tmp_path):
    children, server = risk
    receiver = receivers()
    monitor = start_monitor(children, monitor_config(tmp_path, {"risk": server.target}, RULES,
                                                     webhook("am", receiver.url)))
    set_state(server, risk_pb2.HALTED)
    fired = receiver.next_alert("KillSwitchEngaged", resolved=False)
    assert fired["labels"] == {"alertname": "KillSwitchEngaged", "severity": "critical", "account": "FIRM",
                               "source": "risk", "team": "risk"}
    assert "HALTED" in fired["annotations"]["summary"]
    starts = datetime.datetime.fromisoformat(fired["startsAt"])
    assert starts <= datetime.datetime.now(datetime.timezone.utc) < datetime.datetime.fromisoformat(fired["endsAt"])
    set_state(server, risk_pb2.ACTIVE)
    resolved = receiver.next_alert("KillSwitchEngaged", resolved=True)
    assert resolved["labels"] == fired["labels"] and resolved["startsAt"] == fired["startsAt"]
    sent = monitor.metrics_when(lambda m: m.value("riskcore_monitor_notifications_total", receiver="am",
                                                  outcome="sent") >= 2)
    assert sent.value("riskcore_monitor_notifications_total", receiver="am", outcome="sent") == 2


def test_a_dead_receiver_does_not_hold_up_the_others(risk, receivers, tmp_path, watch_alerts):
    children, server = risk
    live, dead = receivers(), receivers(DeadReceiver)
    hooks = (webhook("dead", dead.url, timeout=0.2, attempts=2, backoff_initial=0.01, breaker_failures=2,
                     breaker_reset=60.0)
             + webhook("live", live.url))
    monitor = start_monitor(children, monitor_config(tmp_path, {"risk": server.target}, RULES, hooks))
    alerts = watch_alerts(monitor)
    for round_ in range(4):
        set_state(server, risk_pb2.HALTED)
        live.next_alert("KillSwitchEngaged", resolved=False)
        set_state(server, risk_pb2.ACTIVE)
        live.next_alert("KillSwitchEngaged", resolved=True)
    # every transition reached the stream and the live receiver while the dead one timed out, then its
    # breaker opened and its batches were dropped at once (counted)
    for status in [FIRING, RESOLVED] * 4:
        alerts.next_alert("KillSwitchEngaged", status)
    metrics = monitor.metrics_when(lambda m: m.value("riskcore_monitor_notifications_total", receiver="dead",
                                                     outcome="dropped") > 0)
    assert metrics.value("riskcore_monitor_notifications_total", receiver="dead", outcome="sent") == 0
    assert metrics.value("riskcore_monitor_notifications_total", receiver="live", outcome="sent") == 8
    # the risk engine answers as before (its events leave through a bounded queue; the monitor is elsewhere)
    stub = risk_pb2_grpc.RiskEngineStub(server.channel())
    answers = [stub.CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY, quantity=1),
                                  timeout=5) for _ in range(100)]
    assert all(answer.accepted for answer in answers)
