"""Alerts on the risk engine's events: real risk engine and monitor processes, a real WatchAlerts stream.

Each test provokes a condition for real (over the risk engine's gRPC API) and
waits for the FIRING alert, then clears it and waits for the RESOLVED one. The
risk engine evaluates the same rules itself (``[alerts] rules_file`` names the
monitor's file), so each test runs watching either server.
"""
from __future__ import annotations

import itertools

import pytest
from conftest import write_config

from riskcore_services.proto import monitor_pb2, monitor_pb2_grpc, risk_pb2, risk_pb2_grpc
from riskcore_services.testing import Children, ServerProcess

from .conftest import FIRING, KILL_SWITCH_RULE, RESOLVED, monitor_config, start_monitor

RULES = KILL_SWITCH_RULE + """
[[monitor.rules]]
name = "GrossHigh"
kind = "utilisation"
match = { limit = "max_gross_notional" }
above = 0.3
summary = "{account}: {limit} at {value:.0%}"

[[monitor.rules]]
name = "DailyLoss"
kind = "breach"
match = { reason = "DAILY_LOSS_LIMIT" }
severity = "critical"
resolve_after = 0.5
summary = "{account}: {reason} {detail}"

[[monitor.rules]]
name = "Rejections"
kind = "rejection_rate"
above = 5
summary = "{account}: {value:.0f} rejections/s"

[[monitor.rules]]
name = "RiskNotReady"
kind = "service_ready"
summary = "{service}: {detail}"
"""

# Small limits on a desk of its own, so the tests provoke them with a few orders.
ACCOUNTS = """
[[accounts]]
name = "alerts"
parent = "FIRM"
[accounts.limits]
max_gross_notional = 100_000.0
max_daily_loss = 100.0
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    directory = tmp_path_factory.mktemp("stack")
    with Children(directory) as children:
        risk = children.add(ServerProcess("risk", directory, write_config(
            directory, ACCOUNTS + '\n[alerts]\nrules_file = "monitor.toml"\n')))
        monitor_file = monitor_config(directory, {"risk": risk.target}, RULES)
        risk.start().wait_ready()
        yield risk, start_monitor(children, monitor_file)


@pytest.fixture(params=["monitor", "risk"])
def stack(request, servers):
    """The risk engine and the server whose alerts the test watches: the monitor, or the risk engine."""
    risk, monitor = servers
    return risk, monitor if request.param == "monitor" else risk


def risk_stub(risk: ServerProcess) -> risk_pb2_grpc.RiskEngineStub:
    return risk_pb2_grpc.RiskEngineStub(risk.channel())


def set_state(risk, account: str, state: int) -> None:
    risk_stub(risk).SetTradingState(risk_pb2.TradingStateRequest(account=account, state=state), timeout=5)


def test_kill_switch_fires_and_resolves(stack, watch_alerts):
    risk, monitor = stack
    alerts = watch_alerts(monitor)
    set_state(risk, "FIRM", risk_pb2.HALTED)
    fired = alerts.next_alert("KillSwitchEngaged", FIRING)
    assert fired.severity == "critical" and fired.labels["account"] == "FIRM"
    assert fired.labels["alertname"] == "KillSwitchEngaged" and "HALTED" in fired.summary
    listed = monitor_pb2_grpc.AlertsStub(monitor.channel()).ListAlerts(monitor_pb2.ListAlertsRequest(), timeout=5)
    assert fired.key in [alert.key for alert in listed.alerts]
    set_state(risk, "FIRM", risk_pb2.ACTIVE)
    resolved = alerts.next_alert("KillSwitchEngaged", RESOLVED)
    assert resolved.key == fired.key and resolved.ends_at_unix_nano >= fired.starts_at_unix_nano


def test_a_new_subscriber_gets_the_firing_alerts_first(stack, watch_alerts):
    risk, monitor = stack
    first = watch_alerts(monitor)
    set_state(risk, "FIRM", risk_pb2.HALTED)
    fired = first.next_alert("KillSwitchEngaged", FIRING)
    late = watch_alerts(monitor)
    replayed = late.next_alert("KillSwitchEngaged", FIRING)
    assert replayed.replay and replayed.key == fired.key and not fired.replay
    set_state(risk, "FIRM", risk_pb2.ACTIVE)
    late.next_alert("KillSwitchEngaged", RESOLVED)


def test_repeated_events_do_not_fire_again(stack, watch_alerts):
    risk, monitor = stack
    alerts = watch_alerts(monitor)
    set_state(risk, "FIRM", risk_pb2.HALTED)
    alerts.next_alert("KillSwitchEngaged", FIRING)
    set_state(risk, "FIRM", risk_pb2.HALTED)   # the same condition again: one alert per key
    set_state(risk, "FIRM", risk_pb2.ACTIVE)
    alerts.next_alert("KillSwitchEngaged", RESOLVED)
    seen = alerts.skipped
    while not alerts.alerts.empty():
        seen.append(alerts.alerts.get_nowait())
    assert not [a for a in seen if a.rule == "KillSwitchEngaged"]


_fills = itertools.count()


def fill(risk, account: str, side: int, quantity: int, price: float, exec_id: str) -> None:
    stub = risk_stub(risk)
    exec_id = f"{exec_id}-{next(_fills)}"   # each test runs twice on one risk engine
    cid = f"o-{exec_id}"
    answer = stub.SubmitOrder(risk_pb2.OrderRequest(client_order_id=cid, account=account, symbol="AAPL", side=side,
                                                    quantity=quantity, price=price), timeout=5)
    assert answer.accepted, answer.message
    stub.ReportFill(risk_pb2.Fill(client_order_id=cid, exec_id=exec_id, quantity=quantity, price=price),
                    timeout=5)


def test_utilisation_over_threshold_fires_and_resolves(stack, watch_alerts):
    risk, monitor = stack
    alerts = watch_alerts(monitor)
    fill(risk, "alerts", risk_pb2.BUY, 200, 190.0, "u1")          # 38,000 of 100,000 gross
    fired = alerts.next_alert("GrossHigh", FIRING)
    assert fired.labels["account"] == "alerts" and fired.labels["limit"] == "max_gross_notional"
    assert fired.value == pytest.approx(0.38)
    fill(risk, "alerts", risk_pb2.SELL, 200, 190.0, "u2")         # flat again
    assert alerts.next_alert("GrossHigh", RESOLVED).key == fired.key


def test_daily_loss_breach_fires_then_resolves_after_its_time(stack, watch_alerts):
    risk, monitor = stack
    alerts = watch_alerts(monitor)
    fill(risk, "alerts", risk_pb2.BUY, 100, 190.0, "d1")
    risk_stub(risk).UpdatePrices(risk_pb2.PriceUpdates(symbols=["AAPL"], prices=[188.0]), timeout=5)  # -200
    fired = alerts.next_alert("DailyLoss", FIRING)
    assert fired.labels["account"] == "alerts" and fired.severity == "critical"
    assert alerts.next_alert("DailyLoss", RESOLVED).key == fired.key   # resolve_after = 0.5 s
    # tidy up for the other tests: flat, price back, account active
    risk_stub(risk).UpdatePrices(risk_pb2.PriceUpdates(symbols=["AAPL"], prices=[190.0]), timeout=5)
    set_state(risk, "alerts", risk_pb2.ACTIVE)
    fill(risk, "alerts", risk_pb2.SELL, 100, 190.0, "d2")


def test_rejection_rate_fires_and_falls_back(stack, watch_alerts):
    risk, monitor = stack
    alerts = watch_alerts(monitor)
    stub = risk_stub(risk)
    for _ in range(10):   # over the order quantity limit of the default account
        answer = stub.CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY,
                                                             quantity=1_000_000), timeout=5)
        assert not answer.accepted
    fired = alerts.next_alert("Rejections", FIRING)
    assert fired.labels["account"] == "default" and fired.value >= 5
    assert alerts.next_alert("Rejections", RESOLVED).key == fired.key   # a second without rejections


def test_a_batchs_rejected_rows_count_towards_the_rejection_rate(stack, watch_alerts):
    risk, watched = stack
    alerts = watch_alerts(watched)
    rows = 10   # over the rule's 5 in one call, which a per-call count would not reach
    answer = risk_stub(risk).SubmitOrders(risk_pb2.OrderBatch(
        client_order_ids=[f"b-{next(_fills)}" for _ in range(rows)], accounts=["default"] * rows,
        symbols=["AAPL"] * rows, sides=[risk_pb2.BUY] * rows, quantities=[1_000_000] * rows,
        prices=[190.0] * rows), timeout=5)
    assert answer.accepted == 0
    fired = alerts.next_alert("Rejections", FIRING)
    assert fired.labels["account"] == "default" and fired.value == rows
    assert alerts.next_alert("Rejections", RESOLVED).key == fired.key


def test_the_risk_engine_serves_only_the_rules_about_its_own_events(servers):
    risk, _ = servers
    stub = monitor_pb2_grpc.AlertsStub(risk.channel())
    set_state(risk, "FIRM", risk_pb2.HALTED)
    try:
        firing = stub.ListAlerts(monitor_pb2.ListAlertsRequest(), timeout=5).alerts
        assert [a.rule for a in firing] == ["KillSwitchEngaged"] and firing[0].labels["source"] == "risk"
    finally:
        set_state(risk, "FIRM", risk_pb2.ACTIVE)


def test_a_source_that_goes_away_fires_service_ready_until_it_is_back(servers, watch_alerts):
    risk, monitor = servers
    alerts = watch_alerts(monitor)
    risk.stop()
    fired = alerts.next_alert("RiskNotReady", FIRING)
    assert fired.labels["service"] == "risk" and fired.labels["source"] == "monitor"
    risk.start().wait_ready()
    assert alerts.next_alert("RiskNotReady", RESOLVED).key == fired.key
