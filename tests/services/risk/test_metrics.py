"""/metrics scraped from a real server and parsed with prometheus_client's parser."""
import re

import grpc
import pytest

import riskcore
from riskcore_services.proto import risk_pb2

DEADLINE = 5.0  # seconds for every call

BUY, SELL = risk_pb2.BUY, risk_pb2.SELL


def check(stub, quantity: int, symbol: str = "AAPL"):
    return stub.CheckPosition(risk_pb2.PositionRequest(symbol=symbol, side=BUY, quantity=quantity), timeout=DEADLINE)


def test_metrics_count_checks_by_result_and_reason(server, stub):
    before = server.metrics()

    check(stub, 10)
    check(stub, 200_000)
    check(stub, 300_000)
    stub.SubmitOrder(risk_pb2.OrderRequest(client_order_id="o-1", symbol="AAPL", side=BUY, quantity=5),
                     timeout=DEADLINE)
    after = server.metrics()

    def delta(**labels):
        return after.value("riskcore_checks_total", **labels) - before.value("riskcore_checks_total", **labels)

    assert delta(result="accepted", reason="OK") == 2
    assert delta(result="rejected", reason="MAX_ORDER_QUANTITY") == 2
    assert delta(result="rejected", reason="PRICE_COLLAR") == 0


def test_metrics_check_duration_histogram_counts_every_single_check(server, stub):
    before = server.metrics().value("riskcore_check_duration_seconds_count")

    for quantity in (10, 20, 200_000):
        check(stub, quantity)

    metrics = server.metrics()
    assert metrics.value("riskcore_check_duration_seconds_count") == before + 3
    assert metrics.families["riskcore_check_duration_seconds"].type == "histogram"
    buckets = [s for s in metrics.samples("riskcore_check_duration_seconds_bucket")]
    # Microsecond-scale buckets: the smallest bound is 1 µs, not the client library's 5 ms.
    assert min(float(s.labels["le"]) for s in buckets) <= 1e-6
    assert metrics.value("riskcore_check_duration_seconds_bucket", le="+Inf") == before + 3


def test_metrics_count_batch_rows_by_reason(server, stub):
    before = server.metrics()
    stub.SubmitOrders(risk_pb2.OrderBatch(client_order_ids=["b-1", "b-2", "b-3"], accounts=[""] * 3,
                                          symbols=["AAPL", "AAPL", "NOPE"], sides=[BUY] * 3,
                                          quantities=[10, 200_000, 1], prices=[0.0] * 3), timeout=DEADLINE)
    after = server.metrics()

    assert after.value("riskcore_batch_orders_total") - before.value("riskcore_batch_orders_total") == 3
    for reason in ("OK", "MAX_ORDER_QUANTITY", "UNKNOWN_SYMBOL"):
        result = "accepted" if reason == "OK" else "rejected"
        assert (after.value("riskcore_checks_total", result=result, reason=reason)
                - before.value("riskcore_checks_total", result=result, reason=reason)) == 1, reason


def test_metrics_count_grpc_requests_by_method_and_code(server, stub):
    before = server.metrics()

    check(stub, 10)
    check(stub, 200_000)  # a rejection is still an OK call
    with pytest.raises(grpc.RpcError):
        check(stub, 0)
    with pytest.raises(grpc.RpcError):
        stub.GetExposure(risk_pb2.ExposureRequest(account="nobody"), timeout=DEADLINE)
    after = server.metrics_when(lambda m: m.value("riskcore_grpc_requests_total", method="GetExposure",
                                                  code="NOT_FOUND") > 0)

    def delta(**labels):
        name = "riskcore_grpc_requests_total"
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta(method="CheckPosition", code="OK") == 2
    assert delta(method="CheckPosition", code="INVALID_ARGUMENT") == 1
    assert delta(method="GetExposure", code="NOT_FOUND") == 1
    assert (after.value("riskcore_grpc_request_duration_seconds_count", method="CheckPosition")
            - before.value("riskcore_grpc_request_duration_seconds_count", method="CheckPosition")) == 3


def test_metrics_have_a_request_counter_for_every_method_from_the_start(server):
    metrics = server.metrics()

    methods = {m.name for m in risk_pb2.DESCRIPTOR.services_by_name["RiskEngine"].methods}
    present = {s.labels["method"] for s in metrics.samples("riskcore_grpc_requests_total")}
    assert methods <= present


def test_metrics_count_fills_by_outcome(server, stub):
    fill = risk_pb2.Fill(exec_id="x-1", quantity=10, price=190.0, account="default", symbol="AAPL", side=BUY)
    stub.ReportFill(fill, timeout=DEADLINE)
    stub.ReportFill(fill, timeout=DEADLINE)

    metrics = server.metrics()

    assert metrics.value("riskcore_fills_total", outcome="applied") == 1
    assert metrics.value("riskcore_fills_total", outcome="duplicate") == 1


def test_metrics_exposure_matches_get_exposure_for_every_account_and_kind(server, stub):
    stub.SubmitOrder(risk_pb2.OrderRequest(client_order_id="o-1", symbol="AAPL", side=BUY, quantity=1000,
                                           price=190.0), timeout=DEADLINE)
    stub.ReportFill(risk_pb2.Fill(exec_id="x-1", quantity=100, price=420.0, account="momentum", symbol="MSFT",
                                  side=SELL), timeout=DEADLINE)
    stub.SubmitOrder(risk_pb2.OrderRequest(client_order_id="o-2", account="trend", symbol="ESZ6", side=SELL,
                                           quantity=2, price=6000.0), timeout=DEADLINE)
    stub.UpdatePrices(risk_pb2.PriceUpdates(symbols=["MSFT"], prices=[430.0]), timeout=DEADLINE)

    metrics = server.metrics()
    rows = stub.GetExposure(risk_pb2.ExposureRequest(), timeout=DEADLINE).accounts

    kinds = {"long": "long_notional", "short": "short_notional", "net": "net_notional", "gross": "gross_notional",
             "working_buy": "working_buy_notional", "working_sell": "working_sell_notional"}
    assert len(rows) == 6
    for row in rows:
        for kind, field in kinds.items():
            assert metrics.value("riskcore_exposure_notional", account=row.account, kind=kind) == pytest.approx(
                getattr(row, field)), (row.account, kind)
        assert metrics.value("riskcore_pnl", account=row.account, kind="unrealized") == pytest.approx(
            row.unrealized_pnl)
    assert metrics.value("riskcore_exposure_notional", account="FIRM", kind="short") == pytest.approx(43_000)
    assert metrics.value("riskcore_exposure_notional", account="futures", kind="working_sell") == pytest.approx(
        600_000)
    assert metrics.value("riskcore_pnl", account="momentum", kind="unrealized") == pytest.approx(-1_000)


def test_metrics_limit_utilisation_follows_open_orders(server, stub):
    assert server.metrics().value("riskcore_limit_utilisation_ratio", account="default",
                                  limit="max_open_orders") == 0
    for i in range(4):
        stub.SubmitOrder(risk_pb2.OrderRequest(client_order_id=f"o-{i}", symbol="AAPL", side=BUY, quantity=1,
                                               price=190.0), timeout=DEADLINE)

    metrics = server.metrics()

    # 4 working orders of default's max_open_orders = 1,000.
    assert metrics.value("riskcore_limit_utilisation_ratio", account="default",
                         limit="max_open_orders") == pytest.approx(0.004)
    limits = {s.labels["limit"] for s in metrics.samples("riskcore_limit_utilisation_ratio")
              if s.labels["account"] == "equities"}
    assert {"max_gross_notional", "max_net_notional"} <= limits


def test_metrics_show_each_accounts_trading_state_and_the_kill_switch(server, stub):
    stub.SetTradingState(risk_pb2.TradingStateRequest(account="equities", state=risk_pb2.HALTED), timeout=DEADLINE)
    stub.SetTradingState(risk_pb2.TradingStateRequest(account="momentum", state=risk_pb2.REDUCING), timeout=DEADLINE)

    metrics = server.metrics()

    current = {s.labels["account"]: s.labels["state"] for s in metrics.samples("riskcore_trading_state")
               if s.value == 1}
    assert current["equities"] == "HALTED" and current["momentum"] == "REDUCING" and current["FIRM"] == "ACTIVE"
    # One series per account and state, so an alert on state="HALTED" sees 0 before the halt.
    for account in current:
        assert {s.labels["state"]: s.value for s in metrics.samples("riskcore_trading_state")
                if s.labels["account"] == account} == {state: float(state == current[account])
                                                        for state in ("ACTIVE", "REDUCING", "HALTED")}


def test_metrics_include_process_platform_gc_and_build_info(server):
    metrics = server.metrics()

    assert metrics.value("process_resident_memory_bytes") > 0
    assert metrics.value("process_cpu_seconds_total") > 0
    assert metrics.samples("python_info")
    assert metrics.samples("python_gc_objects_collected_total")
    builds = metrics.samples("riskcore_build_info")
    assert [(s.labels, s.value) for s in builds] == [({"version": riskcore.__version__}, 1.0)]


def test_metrics_follow_the_prometheus_naming_conventions(server, stub):
    check(stub, 10)
    metrics = server.metrics()

    ours = {name: family for name, family in metrics.families.items() if name.startswith("riskcore_")}
    assert len(ours) >= 10
    for name, family in ours.items():
        assert re.fullmatch(r"riskcore_[a-z0-9_]+", name), name
        if family.type == "counter":
            assert {s.name for s in family.samples} <= {f"{name}_total", f"{name}_created"}, name
        if family.type == "histogram":
            assert name.endswith("_seconds"), name
        assert not ({"order_id", "client_order_id", "exec_id", "request_id"} & {
            label for s in family.samples for label in s.labels}), name
    # Counters are exposed with the _total suffix in the text format.
    assert re.search(r"^riskcore_checks_total\{", metrics.text, re.M)
    assert re.search(r"^# TYPE riskcore_checks counter$|^# TYPE riskcore_checks_total counter$", metrics.text, re.M)
