"""Malformed requests fail with INVALID_ARGUMENT naming the field, unknown names with NOT_FOUND.

Every field of every request is tried with a bad value against a real server;
a refused request must leave the engine exactly as it was.
"""
import math

import grpc
import pytest

from services.proto import risk_pb2

DEADLINE = 5.0  # seconds for every call

BUY, SELL = risk_pb2.BUY, risk_pb2.SELL
NAN, INF = math.nan, math.inf
P = risk_pb2


def order(**fields) -> risk_pb2.OrderRequest:
    base = dict(client_order_id="o-1", symbol="AAPL", side=BUY, quantity=100, price=190.0)
    return P.OrderRequest(**{**base, **fields})


def position(**fields) -> risk_pb2.PositionRequest:
    base = dict(symbol="AAPL", side=BUY, quantity=100, price=190.0)
    return P.PositionRequest(**{**base, **fields})


def batch(**columns) -> risk_pb2.OrderBatch:
    base = dict(client_order_ids=["b-0", "b-1"], accounts=["", "default"], symbols=["AAPL", "MSFT"],
                sides=[BUY, SELL], quantities=[100, 10], prices=[190.0, 0.0])
    return P.OrderBatch(**{**base, **columns})


def fill(**fields) -> risk_pb2.Fill:
    base = dict(exec_id="e-1", quantity=10, price=190.0, account="default", symbol="AAPL", side=BUY)
    return P.Fill(**{**base, **fields})


def fill_batch(**columns) -> risk_pb2.FillBatch:
    base = dict(client_order_ids=["w-1", "w-1"], exec_ids=["e-1", "e-2"], quantities=[10, 20],
                prices=[190.0, 190.0])
    return P.FillBatch(**{**base, **columns})


def limits(**fields) -> risk_pb2.SetLimitsRequest:
    return P.SetLimitsRequest(account="default", limits=P.Limits(**fields))


INVALID = [
    # CheckPosition
    ("CheckPosition", position(symbol=""), "symbol"),
    ("CheckPosition", position(side=P.SIDE_UNSPECIFIED), "side"),
    ("CheckPosition", position(side=7), "side"),
    ("CheckPosition", position(quantity=0), "quantity"),
    ("CheckPosition", position(quantity=-100), "quantity"),
    ("CheckPosition", position(quantity=10**12 + 1), "quantity"),
    ("CheckPosition", position(price=NAN), "price"),
    ("CheckPosition", position(price=INF), "price"),
    ("CheckPosition", position(price=-INF), "price"),
    ("CheckPosition", position(price=0.0), "price"),
    ("CheckPosition", position(price=-190.0), "price"),
    # SubmitOrder
    ("SubmitOrder", order(client_order_id=""), "client_order_id"),
    ("SubmitOrder", order(symbol=""), "symbol"),
    ("SubmitOrder", order(side=P.SIDE_UNSPECIFIED), "side"),
    ("SubmitOrder", order(side=-1), "side"),
    ("SubmitOrder", order(quantity=0), "quantity"),
    ("SubmitOrder", order(quantity=-1), "quantity"),
    ("SubmitOrder", order(price=NAN), "price"),
    ("SubmitOrder", order(price=INF), "price"),
    ("SubmitOrder", order(price=0.0), "price"),
    ("SubmitOrder", order(price=-1.0), "price"),
    # SubmitOrders
    ("SubmitOrders", batch(accounts=["default"]), "accounts"),
    ("SubmitOrders", batch(symbols=["AAPL", "MSFT", "SPY"]), "symbols"),
    ("SubmitOrders", batch(sides=[BUY]), "sides"),
    ("SubmitOrders", batch(quantities=[]), "quantities"),
    ("SubmitOrders", batch(prices=[190.0]), "prices"),
    ("SubmitOrders", batch(client_order_ids=["b-0", "b-0"]), "client_order_ids"),
    ("SubmitOrders", batch(client_order_ids=["b-0", ""]), "client_order_ids"),
    ("SubmitOrders", batch(symbols=["AAPL", ""]), "symbols[1]"),
    ("SubmitOrders", batch(sides=[BUY, P.SIDE_UNSPECIFIED]), "sides[1]"),
    ("SubmitOrders", batch(sides=[BUY, 9]), "sides[1]"),
    ("SubmitOrders", batch(quantities=[100, 0]), "quantities[1]"),
    ("SubmitOrders", batch(quantities=[100, -10]), "quantities[1]"),
    ("SubmitOrders", batch(quantities=[100, 10**12 + 1]), "quantities[1]"),
    ("SubmitOrders", batch(prices=[190.0, NAN]), "prices[1]"),
    ("SubmitOrders", batch(prices=[190.0, INF]), "prices[1]"),
    ("SubmitOrders", batch(prices=[190.0, -1.0]), "prices[1]"),
    # ModifyOrder
    ("ModifyOrder", P.ModifyRequest(client_order_id="", quantity=10), "client_order_id"),
    ("ModifyOrder", P.ModifyRequest(client_order_id="w-1", quantity=0), "quantity"),
    ("ModifyOrder", P.ModifyRequest(client_order_id="w-1", quantity=-10), "quantity"),
    ("ModifyOrder", P.ModifyRequest(client_order_id="w-1", quantity=10, price=NAN), "price"),
    ("ModifyOrder", P.ModifyRequest(client_order_id="w-1", quantity=10, price=INF), "price"),
    ("ModifyOrder", P.ModifyRequest(client_order_id="w-1", quantity=10, price=0.0), "price"),
    ("ModifyOrder", P.ModifyRequest(client_order_id="w-1", quantity=10, price=-190.0), "price"),
    # RequestCancel
    ("RequestCancel", P.CancelRequest(client_order_id=""), "client_order_id"),
    # ReportFill
    ("ReportFill", fill(exec_id=""), "exec_id"),
    ("ReportFill", fill(quantity=0), "quantity"),
    ("ReportFill", fill(quantity=-10), "quantity"),
    ("ReportFill", fill(price=0.0), "price"),
    ("ReportFill", fill(price=-190.0), "price"),
    ("ReportFill", fill(price=NAN), "price"),
    ("ReportFill", fill(price=INF), "price"),
    ("ReportFill", fill(side=7), "side"),
    # ReportFills
    ("ReportFills", fill_batch(exec_ids=["e-1"]), "exec_ids"),
    ("ReportFills", fill_batch(quantities=[10]), "quantities"),
    ("ReportFills", fill_batch(prices=[190.0, 190.0, 190.0]), "prices"),
    ("ReportFills", fill_batch(exec_ids=["e-1", ""]), "exec_ids[1]"),
    ("ReportFills", fill_batch(quantities=[10, 0]), "quantities[1]"),
    ("ReportFills", fill_batch(prices=[190.0, NAN]), "prices[1]"),
    ("ReportFills", fill_batch(prices=[190.0, 0.0]), "prices[1]"),
    # ReportOrderEvent
    ("ReportOrderEvent", P.OrderEvent(client_order_id="", kind=P.OrderEvent.CANCELLED), "client_order_id"),
    ("ReportOrderEvent", P.OrderEvent(client_order_id="w-1", kind=P.OrderEvent.KIND_UNSPECIFIED), "kind"),
    ("ReportOrderEvent", P.OrderEvent(client_order_id="w-1", kind=9), "kind"),
    # UpdatePrices
    ("UpdatePrices", P.PriceUpdates(symbols=["AAPL", "MSFT"], prices=[200.0]), "prices"),
    ("UpdatePrices", P.PriceUpdates(symbols=["AAPL"], prices=[200.0, 400.0]), "symbols"),
    ("UpdatePrices", P.PriceUpdates(symbols=["AAPL", "MSFT"], prices=[200.0, NAN]), "prices[1]"),
    ("UpdatePrices", P.PriceUpdates(symbols=["AAPL"], prices=[INF]), "prices[0]"),
    ("UpdatePrices", P.PriceUpdates(symbols=["AAPL"], prices=[0.0]), "prices[0]"),
    ("UpdatePrices", P.PriceUpdates(symbols=["AAPL"], prices=[-200.0]), "prices[0]"),
    ("UpdatePrices", P.PriceUpdates(symbols=["AAPL", ""], prices=[200.0, 400.0]), "symbols[1]"),
    # SetLimits
    ("SetLimits", P.SetLimitsRequest(account="default"), "limits"),
    ("SetLimits", limits(max_order_quantity=-1), "max_order_quantity"),
    ("SetLimits", limits(max_order_notional=NAN), "max_order_notional"),
    ("SetLimits", limits(max_gross_notional=-1.0), "max_gross_notional"),
    ("SetLimits", limits(max_net_notional=INF), "max_net_notional"),
    ("SetLimits", limits(max_open_orders=-5), "max_open_orders"),
    ("SetLimits", limits(max_daily_loss=-1000.0), "max_daily_loss"),
    ("SetLimits", limits(new_order_rate=P.Window(count=10, seconds=0.0)), "new_order_rate"),
    ("SetLimits", limits(modify_rate=P.Window(count=-1, seconds=1.0)), "modify_rate"),
    ("SetLimits", limits(cancel_rate=P.Window(count=10, seconds=NAN)), "cancel_rate"),
    ("SetLimits", limits(fill_throttle=P.Window(count=10, seconds=-1.0)), "fill_throttle"),
    ("SetLimits", limits(position_limits=[P.PositionLimit(symbol="", max_long=10)]),
     "limits.position_limits[0].symbol"),
    ("SetLimits", limits(position_limits=[P.PositionLimit(symbol="AAPL", max_long=-10)]),
     "limits.position_limits[0].max_long"),
    ("SetLimits", limits(position_limits=[P.PositionLimit(symbol="AAPL", max_long=1),
                                          P.PositionLimit(symbol="MSFT", max_short=-1)]),
     "limits.position_limits[1].max_short"),
    # SetTradingState
    ("SetTradingState", P.TradingStateRequest(account="default", symbol="AAPL", state=P.HALTED), "symbol"),
    ("SetTradingState", P.TradingStateRequest(account="default", state=7), "state"),
]

NOT_FOUND = [
    ("GetPositions", P.PositionsRequest(account="nobody"), "nobody"),
    ("GetExposure", P.ExposureRequest(account="nobody"), "nobody"),
    ("GetLimits", P.LimitsRequest(account="nobody"), "nobody"),
    ("SetLimits", P.SetLimitsRequest(account="nobody", limits=P.Limits(max_order_quantity=5)), "nobody"),
    ("SetLimits", limits(position_limits=[P.PositionLimit(symbol="NOPE", max_long=10)]), "NOPE"),
    ("SetTradingState", P.TradingStateRequest(account="nobody", state=P.HALTED), "nobody"),
    ("SetTradingState", P.TradingStateRequest(symbol="NOPE", state=P.HALTED), "NOPE"),
    ("UpdatePrices", P.PriceUpdates(symbols=["AAPL", "NOPE"], prices=[200.0, 1.0]), "NOPE"),
    ("ReportFill", P.Fill(client_order_id="never", exec_id="e-9", quantity=10, price=190.0), "never"),
    ("ReportFills", fill_batch(client_order_ids=["w-1", "never"]), "never"),
    ("ReportOrderEvent", P.OrderEvent(client_order_id="never", kind=P.OrderEvent.EXPIRED), "never"),
]


def _case_id(case) -> str:
    method, request, fragment = case
    return f"{method}-{fragment}-{str(request).replace(chr(10), ' ')[:60]}"


def engine_state(stub) -> tuple:
    """Everything a refused request must leave unchanged, as comparable messages."""
    return (stub.GetExposure(P.ExposureRequest(), timeout=DEADLINE),
            stub.GetPositions(P.PositionsRequest(), timeout=DEADLINE),
            stub.GetLimits(P.LimitsRequest(account="default"), timeout=DEADLINE),
            stub.CheckPosition(position(price=None), timeout=DEADLINE))


@pytest.fixture
def working_stub(stub):
    """A server with one working order, w-1 (default, 1,000 AAPL bought at 190)."""
    answer = stub.SubmitOrder(order(client_order_id="w-1", quantity=1000), timeout=DEADLINE)
    assert answer.accepted
    return stub


def call(stub, method: str, request):
    if method == "SubmitStream":
        return list(stub.SubmitStream(iter([request]), timeout=DEADLINE))
    return getattr(stub, method)(request, timeout=DEADLINE)


@pytest.mark.parametrize("case", INVALID, ids=[_case_id(c) for c in INVALID])
def test_malformed_request_is_invalid_argument_naming_the_field_and_changes_nothing(working_stub, case):
    method, request, field = case
    before = engine_state(working_stub)

    with pytest.raises(grpc.RpcError) as error:
        call(working_stub, method, request)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert field in error.value.details()
    assert engine_state(working_stub) == before


@pytest.mark.parametrize("case", NOT_FOUND, ids=[_case_id(c) for c in NOT_FOUND])
def test_unknown_name_is_not_found_naming_it_and_changes_nothing(working_stub, case):
    method, request, name = case
    before = engine_state(working_stub)

    with pytest.raises(grpc.RpcError) as error:
        call(working_stub, method, request)

    assert error.value.code() == grpc.StatusCode.NOT_FOUND, error.value.details()
    assert name in error.value.details()
    assert engine_state(working_stub) == before


@pytest.mark.parametrize("request_", [order(client_order_id="s-1"), order(client_order_id="s-1", symbol=""),
                                      order(client_order_id="s-1", quantity=0)],
                         ids=["valid-order-then-nan-price", "missing-symbol-first", "zero-quantity-first"])
def test_submit_stream_with_a_malformed_order_ends_with_invalid_argument(working_stub, request_):
    bad = order(client_order_id="s-2", price=NAN)
    answers = []

    with pytest.raises(grpc.RpcError) as error:
        for answer in working_stub.SubmitStream(iter([request_, bad]), timeout=DEADLINE):
            answers.append(answer)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    if request_.symbol and request_.quantity:
        assert [a.client_order_id for a in answers] == ["s-1"]
        assert "price" in error.value.details()
    else:
        assert answers == []


def test_garbage_payload_is_refused_as_invalid_argument(server):
    channel = server.channel()
    raw = channel.unary_unary("/riskcore.v1.RiskEngine/CheckPosition")  # bytes in, bytes out

    with pytest.raises(grpc.RpcError) as error:
        raw(b"\xff\xff\xff\xff\x0f garbage", timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.value.code(), error.value.details())


def test_garbage_payload_leaves_the_server_serving(server):
    channel = server.channel()
    raw = channel.unary_unary("/riskcore.v1.RiskEngine/SubmitOrder")
    for _ in range(3):
        with pytest.raises(grpc.RpcError):
            raw(b"\x0a\xff\xff\xff\xff\xff", timeout=DEADLINE)

    stub = server.stub()
    assert stub.CheckPosition(position(), timeout=DEADLINE).accepted
    exposure = stub.GetExposure(P.ExposureRequest(account="default"), timeout=DEADLINE)
    assert exposure.accounts[0].open_orders == 0
