"""Fuzzing the risk service's gRPC surface against one real server on 127.0.0.1.

For every RPC, hypothesis generates requests three ways: from the message's
descriptor (any field set or unset, extreme numbers, NaN and infinities, long
and odd strings, enum numbers outside the enum), from realistic builders
(known accounts, symbols and client order ids, so calls reach the deep paths:
accepted orders, fills of working orders, batches whose rows mix good and bad
values), and by mutating one field of a realistic request. Random and mutated
bytes are also sent as the serialized request through a raw channel method.

Invariants, checked after every call:

- the server stays up and answers;
- every answer is OK (a decision or a result) or a defined refusal:
  INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION; never
  UNKNOWN or INTERNAL;
- a call that was refused, or whose decision rejected it, leaves positions,
  exposure, open orders, limits, trading states and marks exactly as they were
  (reads leave them as they were whatever they answer); the one designed
  exception is a fill or mark the books cannot hold (FAILED_PRECONDITION,
  "capacity"): the kernel refuses it and halts the account or symbol, so
  afterwards something must be HALTED.

CI runs ``derandomize``d (the same examples on every run, about 25 s on two cores);
RISKCORE_EXAMPLE_SCALE=10 draws new ones for a longer hunt.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import pathlib

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.message import DecodeError
from hypothesis import event, given, settings
from hypothesis import strategies as st

from conftest import DEADLINE, InProcessServer, for_tests
from fuzzing import (
    DEFINED, FLOAT_EDGES, FUZZ, INT64_EDGES, any_message, doubles, enum_numbers, int64s, mutated, raw_payloads,
    scaled, strings_with, subscription_outcome,
)
from riskcore import Reason, TradingState
from riskcore_services.monitor.config import rules_about
from riskcore_services.proto import monitor_pb2, risk_pb2
from riskcore_services.risk.config import load_config
from riskcore_services.risk.events import EVENT_KINDS

P = risk_pb2
SERVICE = P.DESCRIPTOR.services_by_name["RiskEngine"]
UNARY = [m.name for m in SERVICE.methods if not m.client_streaming and not m.server_streaming]
READS = {"CheckPosition", "GetPositions", "GetExposure", "GetLimits"}
HALTED = int(TradingState.HALTED)
# Reasons a SubmitStream answer may carry: a kernel decision, or the status a message would get as a call.
STREAM_REASONS = {r.name for r in Reason} | {"INVALID_ARGUMENT", "NOT_FOUND"}


# --------------------------------------------------------------------- values

ACCOUNTS = ["default", "momentum", "trend", "equities", "futures", "FIRM"]
SYMBOLS = ["AAPL", "MSFT", "SPY", "ESZ6", "EURUSD"]
CIDS = [f"o-{i}" for i in range(8)]
EXEC_IDS = [f"x-{i}" for i in range(12)]
strings = strings_with(ACCOUNTS + SYMBOLS + CIDS + EXEC_IDS)
def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """``good`` seven times in eight: most realistic requests get past validation to a decision."""
    # (one_of with a branch repeated would not weigh it: hypothesis keeps one copy.)
    return st.integers(0, 7).flatmap(lambda pick: bad if pick == 0 else good)


prices = mostly(st.floats(100.0, 700.0).map(lambda p: round(p, 2)), st.sampled_from(FLOAT_EDGES))
quantities = mostly(st.integers(1, 2_000), st.sampled_from(INT64_EDGES))
exec_ids = mostly(st.one_of(st.sampled_from(EXEC_IDS), st.integers(0, 10**6).map(lambda i: f"e-{i}")), strings)


sides = mostly(st.sampled_from([P.BUY, P.SELL]), enum_numbers(P.Side.DESCRIPTOR))

# ------------------------------------------------------------ realistic requests

# Client order ids: the pool (so repeats, modifies, fills and events find orders) or fresh ones.
good_cids = st.one_of(st.sampled_from(CIDS), st.integers(0, 10**6).map(lambda i: f"n-{i}"))
good_accounts = st.sampled_from(["", "default", "momentum", "trend"])
good_symbols = st.sampled_from(SYMBOLS)
good_sides = st.sampled_from([P.BUY, P.SELL])
good_quantities = st.integers(1, 2_000)
good_prices = st.floats(100.0, 700.0).map(lambda p: round(p, 2))
cids = mostly(good_cids, strings)
accounts = mostly(good_accounts, strings)
symbols = mostly(good_symbols, strings)
optional_prices = st.one_of(st.none(), prices)


def order_fields():
    return dict(account=accounts, symbol=symbols, side=sides, quantity=quantities, price=optional_prices)


position_requests = st.builds(P.PositionRequest, **order_fields())
order_requests = st.builds(P.OrderRequest, client_order_id=cids, **order_fields())


@st.composite
def order_batches(draw):
    """A batch whose columns agree (usually) and whose rows mix good and bad values."""
    good = st.tuples(good_cids, good_accounts, good_symbols, good_sides, good_quantities,
                     st.one_of(st.just(0.0), good_prices))
    mixed = st.tuples(cids, accounts, symbols, sides, quantities, st.one_of(st.just(0.0), prices))
    # Ids unique within the batch (the descriptor-made and mutated batches try repeated ones).
    rows = draw(st.lists(mostly(good, mixed), max_size=12, unique_by=lambda row: row[0]))
    batch = P.OrderBatch()
    for cid, account, symbol, side, quantity, price in rows:
        batch.client_order_ids.append(cid)
        batch.accounts.append(account)
        batch.symbols.append(symbol)
        batch.sides.append(side)
        batch.quantities.append(quantity)
        batch.prices.append(price)
    if draw(st.integers(0, 9)) == 0 and rows:
        del batch.prices[-1]  # a ragged batch
    return batch


fills = st.one_of(
    st.builds(P.Fill, client_order_id=cids, exec_id=exec_ids, quantity=quantities, price=prices),
    st.builds(P.Fill, client_order_id=st.one_of(st.just(""), cids), exec_id=exec_ids, quantity=quantities,
              price=prices, account=st.one_of(st.just(""), accounts), symbol=symbols, side=sides))


@st.composite
def fill_batches(draw):
    good = st.tuples(st.sampled_from(CIDS), exec_ids, good_quantities, good_prices)
    rows = draw(st.lists(mostly(good, st.tuples(cids, exec_ids, quantities, prices)), max_size=8))
    return P.FillBatch(client_order_ids=[r[0] for r in rows], exec_ids=[r[1] for r in rows],
                       quantities=[r[2] for r in rows], prices=[r[3] for r in rows])


@st.composite
def price_updates(draw):
    rows = draw(st.lists(mostly(st.tuples(good_symbols, good_prices), st.tuples(symbols, prices)), max_size=6))
    return P.PriceUpdates(symbols=[r[0] for r in rows], prices=[r[1] for r in rows])


def limits_from(ints, money, counts, seconds, names) -> st.SearchStrategy:
    windows = st.one_of(st.none(), st.builds(P.Window, count=counts, seconds=seconds))
    return st.builds(
        P.Limits, max_order_quantity=st.none() | ints, max_order_notional=st.none() | money,
        max_gross_notional=st.none() | money, max_net_notional=st.none() | money, max_open_orders=st.none() | ints,
        max_daily_loss=st.none() | money, new_order_rate=windows, modify_rate=windows, cancel_rate=windows,
        fill_throttle=windows, position_limits=st.lists(st.builds(P.PositionLimit, symbol=names,
                                                                  max_long=st.none() | ints,
                                                                  max_short=st.none() | ints), max_size=3))


# Generous when good, so later examples still trade; anything when not.
limits = mostly(limits_from(st.integers(10**6, 10**9), st.floats(1e9, 1e12), st.integers(10**4, 10**6),
                            st.floats(0.001, 60.0), good_symbols),
                limits_from(int64s, doubles, int64s, doubles, symbols))
# Mostly ACTIVE: the fuzzing should not leave the firm halted for every later example.
states = mostly(st.just(P.ACTIVE), enum_numbers(P.TradingState.DESCRIPTOR))
REALISTIC = {
    "CheckPosition": position_requests,
    "SubmitOrder": order_requests,
    "SubmitOrders": order_batches(),
    "ModifyOrder": st.builds(P.ModifyRequest, client_order_id=cids, quantity=quantities, price=optional_prices),
    "RequestCancel": st.builds(P.CancelRequest, client_order_id=cids),
    "ReportFill": fills,
    "ReportFills": fill_batches(),
    "ReportOrderEvent": st.builds(P.OrderEvent, client_order_id=cids, kind=mostly(
        st.sampled_from([P.OrderEvent.CANCELLED, P.OrderEvent.EXPIRED, P.OrderEvent.REJECTED]),
        enum_numbers(P.OrderEvent.Kind.DESCRIPTOR))),
    "UpdatePrices": price_updates(),
    "GetPositions": st.builds(P.PositionsRequest, account=accounts),
    "GetExposure": st.builds(P.ExposureRequest, account=accounts),
    "GetLimits": st.builds(P.LimitsRequest, account=accounts),
    "SetLimits": st.builds(P.SetLimitsRequest, account=accounts, limits=st.none() | limits),
    "SetTradingState": mostly(
        st.one_of(st.builds(P.TradingStateRequest, account=st.one_of(st.just("FIRM"), accounts), state=states),
                  st.builds(P.TradingStateRequest, symbol=symbols, state=states)),
        st.builds(P.TradingStateRequest, account=accounts, symbol=symbols, state=states)),
    "Promote": st.just(P.PromoteRequest()),
}
assert set(REALISTIC) == set(UNARY), set(UNARY) ^ set(REALISTIC)


def requests_for(method: str) -> st.SearchStrategy:
    descriptor = SERVICE.methods_by_name[method].input_type
    realistic = REALISTIC[method]
    return st.one_of(realistic, realistic, mutated(realistic, strings), any_message(descriptor, strings))


# --------------------------------------------------------------------- the server

@pytest.fixture(scope="module")
def fuzz_server():
    """One server for the module (hypothesis runs many examples); no day roller, so nothing moves between
    the two reads around a call but the call."""
    config = for_tests(load_config(None))
    # The monitor's sample rules evaluated in-process, so the server serves Alerts too and every call
    # that changes state runs the rules.
    monitor_sample = pathlib.Path(str(importlib.resources.files("riskcore_services.monitor") / "sample.toml"))
    config = dataclasses.replace(config, state=dataclasses.replace(config.state, roll_time=None),
                                 alert_rules=rules_about(monitor_sample, EVENT_KINDS, "alerts.rules_file"))
    server = InProcessServer(config).start()
    # A few working orders and positions, so modifies, cancels and fills have something to act on.
    stub = server.stub()
    for i, (symbol, side, quantity, price) in enumerate([("AAPL", P.BUY, 100, 190.0), ("MSFT", P.SELL, 50, 420.0),
                                                         ("SPY", P.BUY, 10, 600.0)]):
        assert stub.SubmitOrder(P.OrderRequest(client_order_id=f"o-{i}", symbol=symbol, side=side,
                                               quantity=quantity, price=price), timeout=DEADLINE).accepted
    yield server
    server.close()


def observable(server) -> tuple:
    """Positions, exposure, open orders, limits, trading states and marks, read on the engine's thread."""
    def read():
        engine = server.server.service.engine
        accounts, symbols = engine.accounts, engine.symbols
        return (engine.positions().tolist(), engine.aggregates().tolist(), engine.open_orders().tolist(),
                [engine.limits(a).as_dict() for a in accounts],
                [engine.position_limit(a, s) for a in accounts for s in symbols],
                [int(engine.trading_state(account=a)) for a in accounts],
                [int(engine.trading_state(symbol=s)) for s in symbols],
                [engine.reference_price(s) for s in symbols])
    return server.run_on_loop(read)


def rejected(method: str, response) -> bool:
    """Whether an OK answer says nothing was applied (a read, a rejection, a repeat)."""
    if method in READS:
        return True
    if isinstance(response, P.CheckResponse):
        return not response.accepted
    if isinstance(response, P.BatchResponse):
        return all(response.reason_codes)
    if isinstance(response, (P.FillAck, P.OrderEventAck)):
        return not response.applied
    if isinstance(response, P.FillBatchAck):
        return not any(response.applied)
    return False


def checked_call(server, method: str, send, request) -> None:
    """Make one call with ``send(request)``; assert a defined status and no change when refused."""
    before = observable(server)
    try:
        response, code, details = send(request), grpc.StatusCode.OK, ""
    except grpc.RpcError as error:
        response, code, details = None, error.code(), error.details() or ""
    assert code in DEFINED, f"{method} answered {code.name}: {details[:300]} for {str(request)[:300]!r}"
    outcome = _parsed(method, response) if response is not None else None
    event(f"{code.name}{'' if outcome is None else ' rejected' if rejected(method, outcome) else ' applied'}")
    if code is not grpc.StatusCode.OK:
        assert len(details) < 1000, f"{method}: a {len(details)}-character message"
    after = observable(server)
    if code is grpc.StatusCode.FAILED_PRECONDITION and "capacity" in details:
        # Refused whole, and the account or symbol halted: the books no longer hold what the venue did.
        assert HALTED in after[5] + after[6], f"{method}: {details[:300]}"
    elif code is not grpc.StatusCode.OK or rejected(method, _parsed(method, response)):
        assert after == before, f"{method} changed state but answered {code.name}: {request!r:.300}"


def _parsed(method: str, response):
    if isinstance(response, bytes):
        return message_factory.GetMessageClass(SERVICE.methods_by_name[method].output_type).FromString(response)
    return response


# ------------------------------------------------------------------------ tests

@pytest.mark.parametrize("method", UNARY)
@FUZZ
@given(data=st.data())
def test_every_unary_rpc_answers_generated_requests_with_a_defined_status_and_changes_nothing_it_refuses(
        fuzz_server, method, data):
    request = data.draw(requests_for(method), label="request")
    send = getattr(fuzz_server.stub(), method)

    checked_call(fuzz_server, method, lambda r: send(r, timeout=DEADLINE), request)


@pytest.mark.parametrize("method", UNARY)
@settings(FUZZ, max_examples=scaled(40))
@given(data=st.data())
def test_every_unary_rpc_answers_random_and_mutated_bytes_with_a_defined_status(fuzz_server, method, data):
    payload = data.draw(raw_payloads(REALISTIC[method]), label="payload")
    raw = fuzz_server.channel().unary_unary(f"/{SERVICE.full_name}/{method}")   # bytes in, bytes out

    checked_call(fuzz_server, method, lambda p: raw(p, timeout=DEADLINE), payload)


def test_the_server_is_still_serving_after_the_fuzzing(fuzz_server):
    stub = fuzz_server.stub()

    assert stub.GetExposure(P.ExposureRequest(), timeout=DEADLINE).accounts
    assert fuzz_server.http("/ready")[0] == 200


def test_garbage_bytes_are_invalid_argument_on_every_method(fuzz_server):
    channel = fuzz_server.channel()
    for method in SERVICE.methods:
        path = f"/{SERVICE.full_name}/{method.name}"
        if method.client_streaming:
            call = channel.stream_stream(path)(iter([b"\xff\xff\xff\xff\x0f"]), timeout=DEADLINE)
            answers = [P.CheckResponse.FromString(data) for data in call]
            assert [a.reason for a in answers] == ["INVALID_ARGUMENT"], method.name
            continue
        make = channel.unary_stream if method.server_streaming else channel.unary_unary
        with pytest.raises(grpc.RpcError) as error:
            result = make(path)(b"\xff\xff\xff\xff\x0f", timeout=DEADLINE)
            list(result) if method.server_streaming else result
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method.name, error.value.code())


# The watches that subscribe at once (initial metadata on subscribing): every service's events, the alerts.
WATCHES = {"/riskcore.v1.Events/WatchEvents": monitor_pb2.EventsRequest,
           "/riskcore.v1.Alerts/WatchAlerts": monitor_pb2.WatchAlertsRequest}


@pytest.mark.parametrize("path", WATCHES)
@settings(FUZZ, max_examples=scaled(30))
@given(data=st.data())
def test_every_watch_answers_any_request_bytes_with_a_stream_or_invalid_argument_and_changes_nothing(
        fuzz_server, path, data):
    message = WATCHES[path]
    payload = data.draw(st.one_of(st.binary(max_size=64),
                                  any_message(message.DESCRIPTOR, strings).map(lambda m: m.SerializeToString())),
                        label="payload")
    try:
        message.FromString(payload)
        parses = True
    except DecodeError:
        parses = False
    before = observable(fuzz_server)
    call = fuzz_server.channel().unary_stream(path)(payload, timeout=DEADLINE)
    event(subscription_outcome(call, parses, f"{path} {payload!r}"))
    assert observable(fuzz_server) == before


stream_messages = st.lists(st.one_of(order_requests, mutated(order_requests, strings),
                                     any_message(P.OrderRequest.DESCRIPTOR, strings)), max_size=8)


@FUZZ
@given(requests=stream_messages)
def test_submit_stream_answers_every_generated_message_in_order_and_stays_open(fuzz_server, requests):
    stub = fuzz_server.stub()

    answers = list(stub.SubmitStream(iter(requests), timeout=DEADLINE))

    assert len(answers) == len(requests)
    for request, answer in zip(requests, answers):
        assert answer.reason in STREAM_REASONS, answer
        if answer.client_order_id:
            assert answer.client_order_id == request.client_order_id


@settings(FUZZ, max_examples=scaled(40))
@given(payloads=st.lists(st.one_of(st.binary(max_size=32), order_requests.map(lambda r: r.SerializeToString())),
                         min_size=1, max_size=6))
def test_submit_stream_answers_random_bytes_in_stream(fuzz_server, payloads):
    raw = fuzz_server.channel().stream_stream(f"/{SERVICE.full_name}/SubmitStream")

    answers = [P.CheckResponse.FromString(data) for data in raw(iter(payloads), timeout=DEADLINE)]

    assert len(answers) == len(payloads)
    assert all(answer.reason in STREAM_REASONS for answer in answers)


@settings(FUZZ, max_examples=scaled(10))
@given(payload=st.binary(max_size=16))
def test_watch_breaches_opens_on_any_request_that_parses_and_refuses_one_that_does_not(fuzz_server, payload):
    raw = fuzz_server.channel().unary_stream(f"/{SERVICE.full_name}/WatchBreaches")
    try:
        P.WatchRequest.FromString(payload)
        parses = True
    except Exception:  # noqa: BLE001 - DecodeError
        parses = False

    with pytest.raises(grpc.RpcError) as error:
        list(raw(payload, timeout=0.2))   # a live stream runs until the deadline

    expected = grpc.StatusCode.DEADLINE_EXCEEDED if parses else grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.code() == expected, (error.value.code(), error.value.details())
