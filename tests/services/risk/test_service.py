"""Malformed requests fail with INVALID_ARGUMENT naming the field, unknown names with NOT_FOUND.

Every field of every request is tried with a bad value against a real server;
a refused request must leave the engine exactly as it was. Also here: the
size bounds (ids and names, batch rows), large batches applied in chunks,
and the data plane's state as a snapshot.
"""
import importlib.resources
import math
import threading
import time

import grpc
import pytest

from riskcore import ManualClock
from riskcore_services.common.metrics import new_registry
from riskcore_services.proto import risk_pb2
from riskcore_services.risk.config import build_engine, load_config
from riskcore_services.risk.metrics import RiskMetrics
from riskcore_services.common.journal import JournalError
from riskcore_services.risk.codec import MAX_NAME_BYTES
from riskcore_services.risk.service import BATCH_CHUNK, OverCapacity, RiskService

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
    ("ReportFill", fill(client_order_id="w-1", side=7), "side"),
    ("ReportFill", P.Fill(exec_id="e-1", quantity=10, price=190.0), "client_order_id"),
    # ReportFills
    ("ReportFills", fill_batch(exec_ids=["e-1"]), "exec_ids"),
    ("ReportFills", fill_batch(quantities=[10]), "quantities"),
    ("ReportFills", fill_batch(prices=[190.0, 190.0, 190.0]), "prices"),
    ("ReportFills", fill_batch(exec_ids=["e-1", ""]), "exec_ids[1]"),
    ("ReportFills", fill_batch(client_order_ids=["w-1", ""]), "client_order_ids[1]"),
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
    ("SetLimits", P.SetLimitsRequest(limits=P.Limits(max_order_quantity=5)), "account"),
    ("GetLimits", P.LimitsRequest(), "account"),
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
    ("SetTradingState", P.TradingStateRequest(account="default"), "state"),
    ("SetTradingState", P.TradingStateRequest(symbol="AAPL", state=P.TRADING_STATE_UNSPECIFIED), "state"),
    ("SetTradingState", P.TradingStateRequest(state=P.HALTED), "account"),
    ("SetTradingState", P.TradingStateRequest(), "account"),
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


def test_submit_stream_answers_a_malformed_order_in_stream_and_keeps_going(working_stub):
    orders = [order(client_order_id="s-1"), order(client_order_id="s-2", price=NAN),
              order(client_order_id="s-3", symbol=""), order(client_order_id="s-4", quantity=0),
              order(client_order_id="s-5", side=P.SIDE_UNSPECIFIED), order(client_order_id="x" * 100_000),
              order(client_order_id="s-6")]

    answers = list(working_stub.SubmitStream(iter(orders), timeout=DEADLINE))

    assert [(a.client_order_id, a.accepted, a.reason) for a in answers] == [
        ("s-1", True, "OK"), ("s-2", False, "INVALID_ARGUMENT"), ("s-3", False, "INVALID_ARGUMENT"),
        ("s-4", False, "INVALID_ARGUMENT"), ("s-5", False, "INVALID_ARGUMENT"), ("", False, "INVALID_ARGUMENT"),
        ("s-6", True, "OK")]
    assert ["price" in answers[1].message, "symbol" in answers[2].message, "quantity" in answers[3].message,
            "side" in answers[4].message] == [True] * 4
    assert "client_order_id" in answers[5].message and len(answers[5].message) < 200
    assert working_stub.GetExposure(P.ExposureRequest(account="default"), timeout=DEADLINE).accounts[0].open_orders == 3


def test_submit_stream_answers_a_message_that_does_not_parse_in_stream_and_keeps_going(server):
    raw = server.channel().stream_stream("/riskcore.v1.RiskEngine/SubmitStream")  # bytes in, bytes out
    messages = [order(client_order_id="s-1").SerializeToString(), b"\x0a\xff\xff\xff\xff\xff",
                order(client_order_id="s-2").SerializeToString()]

    answers = [P.CheckResponse.FromString(data) for data in raw(iter(messages), timeout=DEADLINE)]

    assert [(a.client_order_id, a.reason) for a in answers] == [("s-1", "OK"), ("", "INVALID_ARGUMENT"),
                                                                ("s-2", "OK")]
    assert "malformed" in answers[1].message


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


# ------------------------------------------------------------------ size bounds: ids and names

def named(value: str) -> list:
    """(method, request, field) for every id or name field of every request, set to ``value``."""
    return [
        ("CheckPosition", position(account=value), "account"),
        ("CheckPosition", position(symbol=value), "symbol"),
        ("SubmitOrder", order(client_order_id=value), "client_order_id"),
        ("SubmitOrder", order(account=value), "account"),
        ("SubmitOrder", order(symbol=value), "symbol"),
        ("SubmitOrders", batch(client_order_ids=["b-0", value]), "client_order_ids[1]"),
        ("SubmitOrders", batch(accounts=["", value]), "accounts[1]"),
        ("SubmitOrders", batch(symbols=["AAPL", value]), "symbols[1]"),
        ("ModifyOrder", P.ModifyRequest(client_order_id=value, quantity=10), "client_order_id"),
        ("RequestCancel", P.CancelRequest(client_order_id=value), "client_order_id"),
        ("ReportFill", fill(client_order_id=value), "client_order_id"),
        ("ReportFill", fill(exec_id=value), "exec_id"),
        ("ReportFill", fill(account=value), "account"),
        ("ReportFill", fill(symbol=value), "symbol"),
        ("ReportFills", fill_batch(client_order_ids=["w-1", value]), "client_order_ids[1]"),
        ("ReportFills", fill_batch(exec_ids=["e-1", value]), "exec_ids[1]"),
        ("ReportOrderEvent", P.OrderEvent(client_order_id=value, kind=P.OrderEvent.CANCELLED), "client_order_id"),
        ("UpdatePrices", P.PriceUpdates(symbols=["AAPL", value], prices=[200.0, 200.0]), "symbols[1]"),
        ("GetPositions", P.PositionsRequest(account=value), "account"),
        ("GetExposure", P.ExposureRequest(account=value), "account"),
        ("GetLimits", P.LimitsRequest(account=value), "account"),
        ("SetLimits", P.SetLimitsRequest(account=value, limits=P.Limits()), "account"),
        ("SetLimits", limits(position_limits=[P.PositionLimit(symbol=value, max_long=1)]),
         "limits.position_limits[0].symbol"),
        ("SetTradingState", P.TradingStateRequest(account=value, state=P.HALTED), "account"),
        ("SetTradingState", P.TradingStateRequest(symbol=value, state=P.HALTED), "symbol"),
    ]


# 129 bytes of ASCII, and 65 two-byte characters (130 bytes, though only 65 characters).
OVERSIZED = [("ascii-129", "x" * (MAX_NAME_BYTES + 1)), ("utf8-130", "\u00e9" * (MAX_NAME_BYTES // 2 + 1)),
             ("one-megabyte", "y" * 1_000_000)]
SIZE_CASES = [(label, case) for label, value in OVERSIZED for case in named(value)]


@pytest.mark.parametrize("label, case", SIZE_CASES, ids=[f"{label}-{m}-{f}" for label, (m, _, f) in SIZE_CASES])
def test_id_or_name_over_128_bytes_is_invalid_argument_naming_the_field_and_the_bound(working_stub, label, case):
    method, request, field = case
    before = engine_state(working_stub)

    with pytest.raises(grpc.RpcError) as error:
        call(working_stub, method, request)

    details = error.value.details()
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, details[:300]
    assert field in details and "at most 128 bytes" in details
    assert len(details) < 300   # the value is quoted cut short, never whole
    assert engine_state(working_stub) == before


AT_THE_BOUND = named("\u00e9" * (MAX_NAME_BYTES // 2))   # 64 two-byte characters: 128 bytes


@pytest.mark.parametrize("case", AT_THE_BOUND, ids=[f"{m}-{f}" for m, _, f in AT_THE_BOUND])
def test_id_or_name_of_exactly_128_bytes_is_not_refused_for_its_size(working_stub, case):
    method, request, field = case
    try:
        call(working_stub, method, request)
    except grpc.RpcError as error:   # an unknown name is NOT_FOUND, an account that is not a leaf refused...
        assert "at most 128 bytes" not in error.details(), error.details()
        assert error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


# ------------------------------------------------------------------ size bounds: batch rows

@pytest.fixture
def small_batches(serve, config_file):
    """A server whose batches may carry at most 3 rows ([engine] max_batch_rows = 3 in its file)."""
    stub = serve(load_config(config_file(settings={"max_batch_rows": 3}))).stub()
    assert stub.SubmitOrder(order(client_order_id="w-1", quantity=1000), timeout=DEADLINE).accepted
    return stub


ROWS_4 = [
    ("SubmitOrders", P.OrderBatch(client_order_ids=[f"b-{i}" for i in range(4)], accounts=[""] * 4,
                                  symbols=["AAPL"] * 4, sides=[BUY] * 4, quantities=[1] * 4, prices=[190.0] * 4),
     "client_order_ids"),
    ("ReportFills", P.FillBatch(client_order_ids=["w-1"] * 4, exec_ids=[f"e-{i}" for i in range(4)],
                                quantities=[1] * 4, prices=[190.0] * 4), "client_order_ids"),
    ("UpdatePrices", P.PriceUpdates(symbols=["AAPL"] * 4, prices=[191.0] * 4), "symbols"),
    ("SetLimits", limits(position_limits=[P.PositionLimit(symbol="AAPL", max_long=i) for i in range(4)]),
     "position_limits"),
]


@pytest.mark.parametrize("case", ROWS_4, ids=[c[0] for c in ROWS_4])
def test_batch_over_max_batch_rows_is_invalid_argument_naming_the_field_and_the_bound(small_batches, case):
    method, request, field = case
    before = engine_state(small_batches)

    with pytest.raises(grpc.RpcError) as error:
        call(small_batches, method, request)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{field} has 4 rows" in error.value.details() and "max_batch_rows" in error.value.details()
    assert engine_state(small_batches) == before


def test_batch_at_max_batch_rows_is_applied(small_batches):
    response = small_batches.SubmitOrders(batch(client_order_ids=["b-0", "b-1", "b-2"], accounts=[""] * 3,
                                                symbols=["AAPL"] * 3, sides=[BUY] * 3, quantities=[1] * 3,
                                                prices=[190.0] * 3), timeout=DEADLINE)

    assert response.accepted == 3


# ------------------------------------------------------------------ large batches, in chunks

def momentum_batch(prefix: str, n: int, symbol: str = "AAPL", quantity: int = 10, price: float = 190.0):
    return P.OrderBatch(client_order_ids=[f"{prefix}-{i}" for i in range(n)], accounts=["momentum"] * n,
                        symbols=[symbol] * n, sides=[BUY] * n, quantities=[quantity] * n, prices=[price] * n)


def test_batch_larger_than_a_chunk_is_checked_in_sequence_across_its_chunks(stub):
    # momentum may be long 50,000 AAPL: rows 0..4,999 (10 each) fit, the rest do not; row 4,096 starts chunk 2.
    n = BATCH_CHUNK + 2_000
    assert 5_000 > BATCH_CHUNK

    response = stub.SubmitOrders(momentum_batch("m", n), timeout=DEADLINE)

    assert list(response.reason_codes) == [0] * 5_000 + [24] * (n - 5_000)
    row = stub.GetExposure(P.ExposureRequest(account="momentum"), timeout=DEADLINE).accounts[0]
    assert (row.open_orders, row.working_buy_notional) == (5_000, pytest.approx(50_000 * 190.0))


def test_batch_with_a_bad_row_in_its_last_chunk_applies_no_row(stub):
    request = momentum_batch("m", 3 * BATCH_CHUNK)
    request.quantities[-1] = 0
    before = engine_state(stub)

    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitOrders(request, timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"quantities[{3 * BATCH_CHUNK - 1}]" in error.value.details()
    assert engine_state(stub) == before


def test_other_calls_are_served_between_the_chunks_of_a_large_batch(stub):
    # 20 chunks of MSFT orders on momentum; meanwhile single orders on default and reads of momentum.
    n = 20 * BATCH_CHUNK
    answer: dict = {}
    batch_thread = threading.Thread(target=lambda: answer.update(
        response=stub.SubmitOrders(momentum_batch("big", n, "MSFT", 1, 420.0), timeout=60)))
    seen_partial, singles = [], 0
    batch_thread.start()
    while batch_thread.is_alive():
        assert stub.SubmitOrder(order(client_order_id=f"single-{singles}", quantity=1), timeout=60).accepted
        singles += 1
        row = stub.GetExposure(P.ExposureRequest(account="momentum"), timeout=60).accounts[0]
        if 0 < row.open_orders < n:
            seen_partial.append(row.open_orders)
    batch_thread.join()

    assert answer["response"].accepted == n
    assert seen_partial, "no call was answered while the batch was being applied"
    state = engine_state(stub)
    assert stub.SubmitOrders(momentum_batch("big", n, "MSFT", 1, 420.0), timeout=60).accepted == n
    assert engine_state(stub) == state   # a resent batch is answered from the remembered ids


def test_a_chunked_batch_and_orders_sent_between_its_chunks_replay_to_the_same_decisions(tmp_path):
    # momentum may be long 50,000 AAPL. A 3-chunk batch of 10-share buys races single 100-share buys
    # for that room: which rows fit depends on where the singles fell between the chunks, so replay
    # reproduces the batch's codes only if every chunk was journaled in its place.
    import asyncio

    from riskcore_services.common.journal.sqlite import SqliteJournal

    from .durability_helpers import make_service, with_journal

    sample = importlib.resources.files("riskcore_services.risk").joinpath("sample.toml").read_text()
    config = tmp_path / "riskcore.toml"
    config.write_text(sample)
    path = tmp_path / "journal.db"

    async def live():
        journal = SqliteJournal(str(path), "NORMAL")
        service = make_service(config, journal)
        try:
            await service.recover(*journal.load())
            journal.start(asyncio.get_running_loop())
            batch = asyncio.ensure_future(service.submit_orders_chunked(momentum_batch("m", 3 * BATCH_CHUNK), 10**6))
            singles = 0
            while not batch.done():
                service.submit_order(order(client_order_id=f"s-{singles}", account="momentum", quantity=100))
                singles += 1
                await asyncio.sleep(0)
            await service.durable()
            return list((await batch).reason_codes), singles, _engine_observable(service)
        finally:
            await journal.aclose()

    codes, singles, state = asyncio.run(live())
    replayed = with_journal(path, config, lambda service: (
        list(service.submit_orders(momentum_batch("m", 3 * BATCH_CHUNK)).reason_codes), _engine_observable(service)))

    assert 0 < codes.count(0) < 5_000 and singles > 2   # the singles took some of the room mid-batch
    assert replayed == (codes, state)


# ------------------------------------------------------------------ fills and marks beyond the engine's capacity
# The kernel refuses a fill or mark its books cannot hold (a total past 2^62 micro-units) and halts the
# account or symbol. The service answers FAILED_PRECONDITION and journals the refused command, so that
# replay makes the same halt.

def fill_beyond_capacity(call):
    call("ReportFill", fill(exec_id="huge", quantity=10**12, price=190.0))   # 1.9e14 in money


def fill_batch_with_a_row_beyond_capacity(call):
    call("SubmitOrder", order(client_order_id="w-1", quantity=1000))
    call("ReportFills", fill_batch(client_order_ids=["w-1"] * 3, exec_ids=["e-1", "e-2", "e-3"],
                                   quantities=[10, 10**12, 20], prices=[190.0] * 3))


def mark_beyond_capacity(call):
    call("ReportFill", fill(exec_id="big", quantity=10**10, price=190.0))    # 1.9e12: it fits
    call("UpdatePrices", P.PriceUpdates(symbols=["MSFT", "AAPL"], prices=[430.0, 1e6]))


# scenario: (what the refusal names, positions after it, what is halted after it)
CAPACITY = {
    fill_beyond_capacity: ("'default' is HALTED", [], ("default", None)),
    fill_batch_with_a_row_beyond_capacity: ("client_order_ids[1]", [("default", "AAPL", 10)], ("default", None)),
    mark_beyond_capacity: ("'AAPL' is HALTED", [("default", "AAPL", 10**10)], (None, "AAPL")),
}


@pytest.mark.parametrize("scenario", CAPACITY, ids=lambda scenario: scenario.__name__)
def test_fill_or_mark_beyond_capacity_is_failed_precondition_applying_nothing_of_that_row(stub, scenario):
    named, positions, (account, symbol) = CAPACITY[scenario]
    calls = []
    scenario(lambda method, request: calls.append((method, request)))
    for method, request in calls[:-1]:
        call(stub, method, request)

    with pytest.raises(grpc.RpcError) as error:
        call(stub, *calls[-1])

    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "capacity" in error.value.details() and named in error.value.details()
    held = stub.GetPositions(P.PositionsRequest(), timeout=DEADLINE).positions
    assert [(p.account, p.symbol, p.quantity) for p in held] == positions
    if account:
        assert call(stub, "CheckPosition", position(account=account)).reason == "TRADING_HALTED"
    if symbol:
        assert call(stub, "CheckPosition", position(account="momentum", symbol=symbol)).reason == "TRADING_HALTED"


def _engine_observable(service) -> tuple:
    engine = service.engine
    return (engine.positions().tolist(), engine.aggregates().tolist(), engine.open_orders().tolist(),
            [int(engine.trading_state(symbol=s)) for s in engine.symbols],
            [engine.reference_price(s) for s in engine.symbols])


@pytest.mark.parametrize("scenario", CAPACITY, ids=lambda scenario: scenario.__name__)
def test_fill_or_mark_refused_for_capacity_is_journaled_and_replays_to_the_same_halt(tmp_path, scenario):
    from .durability_helpers import with_journal

    sample = importlib.resources.files("riskcore_services.risk").joinpath("sample.toml").read_text()
    config = tmp_path / "riskcore.toml"
    config.write_text(sample)
    journal = tmp_path / "journal.db"
    methods = {"ReportFill": "report_fill", "ReportFills": "report_fills", "SubmitOrder": "submit_order",
               "UpdatePrices": "update_prices"}

    def apply(service):
        refusals = []

        def call_service(method, request):
            try:
                getattr(service, methods[method])(request)
            except OverCapacity as error:
                refusals.append(str(error))
        scenario(call_service)
        assert len(refusals) == 1
        return _engine_observable(service)

    before = with_journal(journal, config, apply)
    after = with_journal(journal, config, _engine_observable)   # no snapshot: every record is replayed

    assert after == before


# ------------------------------------------------------------------ the data plane's state

def make_service() -> RiskService:
    engine = build_engine(load_config(None), clock=ManualClock(time.time_ns()))
    return RiskService(engine, "default", RiskMetrics(new_registry(), engine))


def test_client_order_ids_and_their_content_survive_a_snapshot_and_restore():
    service = make_service()
    service.submit_order(order(client_order_id="g1", quantity=10))
    service.submit_orders(batch())
    service.roll_day()
    restored = make_service()

    restored.restore(service.to_state())

    assert restored.submit_order(order(client_order_id="g1", quantity=10)).replayed
    assert restored.submit_order(order(client_order_id="g1", side=SELL, quantity=10)).reason == "DUPLICATE_ORDER_ID"
    assert list(restored.submit_orders(batch()).reason_codes) == [0, 0]
    restored.roll_day()
    assert set(restored.to_state()["order_ids"]) == {"g1", "b-0", "b-1"}   # still working


def test_snapshot_of_another_version_is_refused():
    state = make_service().to_state()
    state["version"] = 1

    with pytest.raises(JournalError, match="service state version 1, written by another release"):
        make_service().restore(state)
