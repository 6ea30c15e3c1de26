"""Every RiskEngine RPC against a real server on the shipped sample configuration.

Numbers are worked by hand from sample.toml: AAPL 190.00, MSFT 420.00,
SPY 600.00 (tick 0.01, multiplier 1); ESZ6 6000.00 (tick 0.25, multiplier 50);
account ``default`` (under ``equities`` under ``FIRM``) allows 100,000 shares
and 5,000,000 notional per order; ``momentum`` may hold at most 50,000 AAPL.
"""
import queue

import grpc
import pytest

from riskcore_services.proto import risk_pb2

DEADLINE = 5.0  # seconds for every call

BUY, SELL = risk_pb2.BUY, risk_pb2.SELL
ACTIVE, REDUCING, HALTED = risk_pb2.ACTIVE, risk_pb2.REDUCING, risk_pb2.HALTED


def exposure(stub, account: str = "") -> dict[str, risk_pb2.AccountExposure]:
    response = stub.GetExposure(risk_pb2.ExposureRequest(account=account), timeout=DEADLINE)
    return {row.account: row for row in response.accounts}


def positions(stub, account: str = "") -> dict[tuple[str, str], risk_pb2.Position]:
    response = stub.GetPositions(risk_pb2.PositionsRequest(account=account), timeout=DEADLINE)
    return {(p.account, p.symbol): p for p in response.positions}


def submit(stub, cid: str, symbol: str, side, quantity: int, price: float | None = None, account: str = ""):
    return stub.SubmitOrder(risk_pb2.OrderRequest(client_order_id=cid, account=account, symbol=symbol, side=side,
                                                  quantity=quantity, price=price), timeout=DEADLINE)


def check(stub, symbol: str, side, quantity: int, price: float | None = None, account: str = ""):
    return stub.CheckPosition(risk_pb2.PositionRequest(account=account, symbol=symbol, side=side,
                                                       quantity=quantity, price=price), timeout=DEADLINE)


def fill(stub, cid: str, exec_id: str, quantity: int, price: float, **booking) -> bool:
    return stub.ReportFill(risk_pb2.Fill(client_order_id=cid, exec_id=exec_id, quantity=quantity, price=price,
                                         **booking), timeout=DEADLINE).applied


def set_state(stub, state, account: str = "", symbol: str = ""):
    return stub.SetTradingState(risk_pb2.TradingStateRequest(account=account, symbol=symbol, state=state),
                                timeout=DEADLINE)


def roll_day(server) -> None:
    """Start a new trading day on ``server`` now (what its day roller does at roll_time)."""
    server.run_on_loop(server.server.service.roll_day)


def modify(stub, cid: str, quantity: int, price: float | None = None):
    return stub.ModifyOrder(risk_pb2.ModifyRequest(client_order_id=cid, quantity=quantity, price=price),
                            timeout=DEADLINE)


def order_event(stub, cid: str, kind=risk_pb2.OrderEvent.CANCELLED) -> bool:
    return stub.ReportOrderEvent(risk_pb2.OrderEvent(client_order_id=cid, kind=kind), timeout=DEADLINE).applied


# ------------------------------------------------------------------ CheckPosition

def test_check_position_within_limits_accepts_with_order_notional_utilisation(stub):
    answer = check(stub, "AAPL", BUY, 1000)

    assert (answer.accepted, answer.reason) == (True, "OK")
    # 1,000 x 190 = 190,000 of default's 5,000,000 max_order_notional is the highest use.
    assert answer.utilisation == pytest.approx(0.038)


def test_check_position_changes_nothing(stub):
    check(stub, "AAPL", BUY, 1000)

    assert all(row.open_orders == 0 and row.gross_notional == 0 for row in exposure(stub).values())


def test_check_position_over_max_order_quantity_is_a_rejection_answer_naming_the_limit(stub):
    answer = check(stub, "AAPL", BUY, 100_001)

    assert (answer.accepted, answer.reason, answer.node) == (False, "MAX_ORDER_QUANTITY", "default")
    assert "100001" in answer.message.replace(",", "").replace("_", "")
    assert "100000" in answer.message.replace(",", "").replace("_", "")


def test_check_position_above_the_buy_collar_is_rejected_with_price_collar(stub):
    # 1000 bps of 190.00 is 19.00: a buy above 209.00 is outside the collar.
    assert check(stub, "AAPL", BUY, 10, 209.00).accepted
    assert check(stub, "AAPL", BUY, 10, 209.01).reason == "PRICE_COLLAR"


def test_check_position_for_an_unknown_symbol_or_account_is_a_rejection_answer(stub):
    assert check(stub, "NOPE", BUY, 10).reason == "UNKNOWN_SYMBOL"
    assert check(stub, "AAPL", BUY, 10, account="nobody").reason == "UNKNOWN_ACCOUNT"


def test_check_position_on_a_symbol_outside_the_allow_list_is_rejected(stub):
    answer = check(stub, "ESZ6", BUY, 1, account="momentum")

    assert (answer.accepted, answer.reason) == (False, "SYMBOL_NOT_PERMITTED")


def test_check_position_rejections_name_the_unknown_symbol_or_account(stub):
    assert check(stub, "ZZZZ", BUY, 10).message == "unknown symbol 'ZZZZ'"
    assert check(stub, "AAPL", BUY, 10, account="nobody").message == "unknown account 'nobody'"
    assert check(stub, "ESZ6", BUY, 1, account="momentum").message == "momentum is not permitted to trade 'ESZ6'"


def test_check_position_without_an_account_is_decided_on_the_default_account(stub):
    assert check(stub, "AAPL", BUY, 100_001).node == "default"
    assert check(stub, "AAPL", BUY, 100_001, account="momentum").node == "momentum"


# ------------------------------------------------------------------ SubmitOrder

def test_submit_order_reserves_the_order_notional_on_every_node_of_the_path(stub):
    answer = submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)

    assert (answer.accepted, answer.reason, answer.client_order_id) == (True, "OK", "o-1")
    rows = exposure(stub)
    for account in ("default", "equities", "FIRM"):
        assert rows[account].working_buy_notional == pytest.approx(190_000)
        assert rows[account].open_orders == 1
    assert rows["momentum"].open_orders == 0


def replayed(answer: risk_pb2.CheckResponse) -> risk_pb2.CheckResponse:
    """``answer`` as its repeat is expected to be: the same, marked as replayed."""
    again = risk_pb2.CheckResponse()
    again.CopyFrom(answer)
    again.replayed = True
    return again


def test_submit_order_repeated_with_the_same_content_gets_the_first_answer_replayed_and_reserves_once(stub):
    first = submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)
    again = submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)
    same_account_by_name = submit(stub, "o-1", "AAPL", BUY, 1000, 190.00, account="default")

    assert (first.accepted, first.replayed) == (True, False)
    assert again == replayed(first)
    assert same_account_by_name == replayed(first)
    assert exposure(stub)["default"].open_orders == 1
    assert exposure(stub)["default"].working_buy_notional == pytest.approx(190_000)


def test_submit_order_reusing_a_client_order_id_for_a_much_larger_opposite_order_is_rejected_not_replayed(stub):
    # Issue 11, item 6: g1 BUY 10 accepted, then g1 SELL 100,000,000 was answered accepted=True.
    assert submit(stub, "g1", "AAPL", BUY, 10).accepted

    answer = submit(stub, "g1", "AAPL", SELL, 100_000_000)

    assert (answer.accepted, answer.reason, answer.replayed) == (False, "DUPLICATE_ORDER_ID", False)
    assert "'g1'" in answer.message
    rows = exposure(stub)
    assert (rows["default"].open_orders, rows["default"].working_sell_notional) == (1, 0)


@pytest.mark.parametrize("changed", [dict(account="momentum"), dict(symbol="MSFT", price=420.00),
                                     dict(side=SELL), dict(quantity=1001), dict(price=190.01), dict(price=None)],
                         ids=["account", "symbol", "side", "quantity", "price", "market-instead-of-limit"])
def test_submit_order_reusing_a_client_order_id_with_any_field_changed_is_duplicate_order_id(stub, changed):
    original = dict(symbol="AAPL", side=BUY, quantity=1000, price=190.00, account="")
    assert submit(stub, "o-1", **original).accepted
    before = exposure(stub)

    answer = submit(stub, "o-1", **{**original, **changed})

    assert (answer.accepted, answer.reason, answer.client_order_id) == (False, "DUPLICATE_ORDER_ID", "o-1")
    assert "'o-1'" in answer.message and "BUY 1000 'AAPL' at 190" in answer.message
    assert exposure(stub) == before


def test_submit_order_rejected_first_stays_rejected_when_resubmitted_unchanged_and_is_duplicate_if_changed(stub):
    first = submit(stub, "o-big", "AAPL", BUY, 200_000)
    again = submit(stub, "o-big", "AAPL", BUY, 200_000)
    changed = submit(stub, "o-big", "AAPL", BUY, 100)

    assert (first.accepted, first.reason) == (False, "MAX_ORDER_QUANTITY")
    assert again == replayed(first)
    assert (changed.accepted, changed.reason) == (False, "DUPLICATE_ORDER_ID")
    assert exposure(stub)["default"].open_orders == 0


def test_submit_order_market_order_is_priced_at_the_reference(stub):
    assert submit(stub, "m-1", "MSFT", SELL, 100).accepted

    assert exposure(stub)["default"].working_sell_notional == pytest.approx(42_000)


def test_submit_order_crossing_own_working_order_is_rejected_as_self_match(stub):
    assert submit(stub, "b-1", "AAPL", BUY, 100, 190.00).accepted

    assert submit(stub, "s-1", "AAPL", SELL, 100, 189.99).reason == "SELF_MATCH"


# ------------------------------------------------------------------ client order id lifetime

def test_client_order_id_of_a_finished_order_is_remembered_the_next_day_and_forgotten_at_the_second_roll(
        server, stub):
    assert submit(stub, "g1", "AAPL", BUY, 10, 190.00).accepted
    assert order_event(stub, "g1")

    roll_day(server)
    next_day_changed = submit(stub, "g1", "AAPL", SELL, 5, 190.00)
    next_day_same = submit(stub, "g1", "AAPL", BUY, 10, 190.00)
    roll_day(server)
    two_rolls_later = submit(stub, "g1", "AAPL", SELL, 5, 190.00)

    assert next_day_changed.reason == "DUPLICATE_ORDER_ID"
    assert (next_day_same.accepted, next_day_same.replayed) == (True, True)
    assert (two_rolls_later.accepted, two_rolls_later.replayed) == (True, False)
    assert exposure(stub)["default"].working_sell_notional == pytest.approx(5 * 190.0)


def test_client_order_id_of_a_working_order_is_remembered_across_any_number_of_day_rolls(server, stub):
    assert submit(stub, "gtc", "AAPL", BUY, 10, 190.00).accepted

    for _ in range(3):
        roll_day(server)

    assert submit(stub, "gtc", "AAPL", SELL, 10, 190.00).reason == "DUPLICATE_ORDER_ID"
    assert submit(stub, "gtc", "AAPL", BUY, 10, 190.00).replayed
    assert exposure(stub)["default"].open_orders == 1


def test_day_rolls_forget_the_ids_of_finished_orders_so_the_state_stays_bounded(server, stub):
    rows = [(f"r-{i}", "", "AAPL", BUY, 200_000, 190.00) for i in range(50)]   # all MAX_ORDER_QUANTITY
    assert stub.SubmitOrders(batch(*rows, ("w", "", "AAPL", BUY, 10, 190.00)), timeout=DEADLINE).accepted == 1
    assert submit(stub, "done", "AAPL", BUY, 10, 190.00).accepted
    fill(stub, "done", "done-x", 10, 190.00)
    service = server.server.service

    remembered = server.run_on_loop(service.to_state)
    roll_day(server)
    roll_day(server)
    after = server.run_on_loop(service.to_state)

    assert len(remembered["answers"]) + len(remembered["answers_before"]) == 52
    assert (set(after["answers"]), after["answers_before"]) == ({"w"}, {})
    assert set(after["order_ids"]) == {"w"}


# ------------------------------------------------------------------ SubmitOrders

def batch(*rows) -> risk_pb2.OrderBatch:
    message = risk_pb2.OrderBatch()
    for cid, account, symbol, side, quantity, price in rows:
        message.client_order_ids.append(cid)
        message.accounts.append(account)
        message.symbols.append(symbol)
        message.sides.append(side)
        message.quantities.append(quantity)
        message.prices.append(price)
    return message


MIXED_BATCH = batch(
    ("b-0", "momentum", "AAPL", BUY, 30_000, 190.00),   # accepted: 30,000 of 50,000 max_long
    ("b-1", "momentum", "AAPL", BUY, 30_000, 190.00),   # 30,000 working + 30,000 > 50,000: POSITION_LIMIT
    ("b-2", "", "MSFT", BUY, 100, 0.0),                 # market order on the default account
    ("b-3", "default", "NOPE", BUY, 1, 1.0),            # UNKNOWN_SYMBOL
    ("b-4", "default", "AAPL", BUY, 200_000, 190.00),   # MAX_ORDER_QUANTITY
)


def test_submit_orders_row_alone_would_pass_but_sees_the_accepted_rows_before_it(stub):
    assert check(stub, "AAPL", BUY, 30_000, 190.00, account="momentum").accepted

    response = stub.SubmitOrders(MIXED_BATCH, timeout=DEADLINE)

    assert list(response.reason_codes) == [0, 24, 0, 6, 22]
    assert response.accepted == 2
    assert dict(response.reason_names) == {0: "OK", 24: "POSITION_LIMIT", 6: "UNKNOWN_SYMBOL",
                                           22: "MAX_ORDER_QUANTITY"}


def test_submit_orders_reserves_the_accepted_rows(stub):
    stub.SubmitOrders(MIXED_BATCH, timeout=DEADLINE)

    rows = exposure(stub)
    assert rows["momentum"].working_buy_notional == pytest.approx(30_000 * 190.0)
    assert rows["momentum"].open_orders == 1
    assert rows["default"].working_buy_notional == pytest.approx(100 * 420.0)
    assert rows["FIRM"].open_orders == 2


def test_submit_orders_resubmitted_batch_returns_the_same_codes_and_reserves_nothing_more(stub):
    first = stub.SubmitOrders(MIXED_BATCH, timeout=DEADLINE)
    again = stub.SubmitOrders(MIXED_BATCH, timeout=DEADLINE)

    assert list(again.reason_codes) == list(first.reason_codes)
    assert again.accepted == first.accepted
    assert exposure(stub)["FIRM"].open_orders == 2


def test_submit_order_with_an_id_first_seen_in_a_batch_returns_that_rows_answer(stub):
    stub.SubmitOrders(MIXED_BATCH, timeout=DEADLINE)

    accepted = submit(stub, "b-0", "AAPL", BUY, 30_000, 190.00, account="momentum")
    rejected = submit(stub, "b-1", "AAPL", BUY, 30_000, 190.00, account="momentum")
    market = submit(stub, "b-2", "MSFT", BUY, 100)
    changed = submit(stub, "b-0", "AAPL", BUY, 1, 190.00, account="momentum")

    assert (accepted.accepted, accepted.reason, accepted.client_order_id) == (True, "OK", "b-0")
    assert accepted.replayed
    assert (rejected.accepted, rejected.reason, rejected.replayed) == (False, "POSITION_LIMIT", True)
    assert (market.accepted, market.replayed) == (True, True)
    assert (changed.accepted, changed.reason) == (False, "DUPLICATE_ORDER_ID")
    assert exposure(stub)["momentum"].open_orders == 1


def test_submit_orders_row_reusing_an_id_for_a_different_order_is_duplicate_order_id_and_reserves_nothing(stub):
    assert submit(stub, "g1", "AAPL", BUY, 10, 190.00).accepted
    before = exposure(stub)

    response = stub.SubmitOrders(batch(("g1", "", "AAPL", SELL, 100_000_000, 190.00),
                                       ("g2", "", "AAPL", BUY, 10, 190.00),
                                       ("g3", "", "MSFT", BUY, 1, 0.0)),
                                 timeout=DEADLINE)

    assert list(response.reason_codes) == [4, 0, 0]
    assert response.reason_names[4] == "DUPLICATE_ORDER_ID"
    rows = exposure(stub)
    assert rows["default"].open_orders == before["default"].open_orders + 2
    assert rows["default"].working_sell_notional == 0


def test_submit_orders_row_repeating_an_earlier_order_unchanged_gets_its_first_code(stub):
    assert not submit(stub, "big", "AAPL", BUY, 200_000, 190.00).accepted

    response = stub.SubmitOrders(batch(("big", "default", "AAPL", BUY, 200_000, 190.00),
                                       ("new", "default", "AAPL", BUY, 10, 190.00)), timeout=DEADLINE)

    assert list(response.reason_codes) == [22, 0]
    assert exposure(stub)["default"].open_orders == 1


def test_submit_orders_empty_batch_answers_an_empty_batch(stub):
    response = stub.SubmitOrders(risk_pb2.OrderBatch(), timeout=DEADLINE)

    assert (list(response.reason_codes), response.accepted) == ([], 0)


# ------------------------------------------------------------------ SubmitStream

def test_submit_stream_answers_each_order_in_order_with_its_client_order_id(stub):
    orders = [risk_pb2.OrderRequest(client_order_id=f"s-{i}", symbol="AAPL", side=BUY, quantity=q, price=190.0)
              for i, q in enumerate([100, 200_000, 300])]

    answers = list(stub.SubmitStream(iter(orders), timeout=DEADLINE))

    assert [(a.client_order_id, a.reason) for a in answers] == [
        ("s-0", "OK"), ("s-1", "MAX_ORDER_QUANTITY"), ("s-2", "OK")]
    assert exposure(stub)["default"].working_buy_notional == pytest.approx(400 * 190.0)


def test_submit_stream_repeated_id_gets_the_first_answer_and_a_changed_repeat_is_duplicate(stub):
    order = risk_pb2.OrderRequest(client_order_id="dup", symbol="AAPL", side=BUY, quantity=100, price=190.0)
    changed = risk_pb2.OrderRequest(client_order_id="dup", symbol="AAPL", side=SELL, quantity=100, price=190.0)

    answers = list(stub.SubmitStream(iter([order, order, changed]), timeout=DEADLINE))

    assert answers[1] == replayed(answers[0])
    assert (answers[2].accepted, answers[2].reason) == (False, "DUPLICATE_ORDER_ID")
    assert exposure(stub)["default"].open_orders == 1


def test_submit_stream_stays_open_for_interleaved_requests_and_answers(stub):
    requests: queue.Queue = queue.Queue()

    def feed():
        while (item := requests.get(timeout=DEADLINE)) is not None:
            yield item

    call = stub.SubmitStream(feed(), timeout=DEADLINE)
    try:
        for i in range(3):
            requests.put(risk_pb2.OrderRequest(client_order_id=f"i-{i}", symbol="SPY", side=SELL, quantity=10))
            assert next(call).client_order_id == f"i-{i}"
    finally:
        requests.put(None)
    assert list(call) == []
    assert exposure(stub)["default"].open_orders == 3


# ------------------------------------------------------------------ ModifyOrder

def test_modify_order_changes_quantity_and_price_of_the_working_order(stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)

    answer = stub.ModifyOrder(risk_pb2.ModifyRequest(client_order_id="o-1", quantity=2000, price=191.00),
                              timeout=DEADLINE)

    assert (answer.accepted, answer.client_order_id) == (True, "o-1")
    assert exposure(stub)["default"].working_buy_notional == pytest.approx(2000 * 191.0)
    assert exposure(stub)["default"].open_orders == 1


def test_modify_order_without_a_price_keeps_the_price(stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 191.00)

    assert stub.ModifyOrder(risk_pb2.ModifyRequest(client_order_id="o-1", quantity=500), timeout=DEADLINE).accepted

    assert exposure(stub)["default"].working_buy_notional == pytest.approx(500 * 191.0)


def test_modify_order_over_a_limit_is_rejected_and_leaves_the_order_as_it_was(stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)

    answer = stub.ModifyOrder(risk_pb2.ModifyRequest(client_order_id="o-1", quantity=100_001), timeout=DEADLINE)

    assert (answer.accepted, answer.reason) == (False, "MAX_ORDER_QUANTITY")
    assert exposure(stub)["default"].working_buy_notional == pytest.approx(190_000)


def test_modify_order_of_an_unknown_order_is_rejected_with_unknown_order(stub):
    answer = stub.ModifyOrder(risk_pb2.ModifyRequest(client_order_id="never", quantity=5), timeout=DEADLINE)

    assert (answer.accepted, answer.reason, answer.client_order_id) == (False, "UNKNOWN_ORDER", "never")


def test_modify_order_of_an_unknown_order_names_the_client_order_id_not_an_internal_id(stub):
    answer = modify(stub, "never", 5)

    assert answer.message == "client_order_id 'never' is unknown or no longer working"


def test_modify_order_lowering_quantity_at_the_same_price_is_accepted_after_the_price_left_the_collar(stub):
    assert submit(stub, "o-1", "AAPL", BUY, 1000, 209.00).accepted
    # A 150.00 reference puts the buy collar at 165.00: 209.00 is far outside it.
    stub.UpdatePrices(risk_pb2.PriceUpdates(symbols=["AAPL"], prices=[150.0]), timeout=DEADLINE)
    assert check(stub, "AAPL", BUY, 1, 209.00).reason == "PRICE_COLLAR"

    lowered = modify(stub, "o-1", 500)
    lowered_naming_the_price = modify(stub, "o-1", 400, 209.00)
    raised = modify(stub, "o-1", 600)

    assert (lowered.accepted, lowered_naming_the_price.accepted) == (True, True)
    assert raised.reason == "PRICE_COLLAR"
    assert exposure(stub)["default"].working_buy_notional == pytest.approx(400 * 209.0)


# ------------------------------------------------------------------ RequestCancel and ReportOrderEvent

def test_request_cancel_is_accepted_and_keeps_the_exposure_until_the_venue_confirms(stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)

    answer = stub.RequestCancel(risk_pb2.CancelRequest(client_order_id="o-1"), timeout=DEADLINE)

    assert (answer.accepted, answer.reason, answer.client_order_id) == (True, "OK", "o-1")
    assert exposure(stub)["default"].open_orders == 1


def test_request_cancel_of_an_unknown_order_is_rejected_with_unknown_order(stub):
    answer = stub.RequestCancel(risk_pb2.CancelRequest(client_order_id="never"), timeout=DEADLINE)

    assert (answer.accepted, answer.reason) == (False, "UNKNOWN_ORDER")


def test_request_cancel_of_an_unknown_order_names_the_client_order_id(stub):
    answer = stub.RequestCancel(risk_pb2.CancelRequest(client_order_id="never"), timeout=DEADLINE)

    assert answer.message == "client_order_id 'never' is unknown or no longer working"


@pytest.mark.parametrize("kind", ["CANCELLED", "EXPIRED", "REJECTED"])
def test_report_order_event_releases_the_working_order_once(stub, kind):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)
    event = risk_pb2.OrderEvent(client_order_id="o-1", kind=risk_pb2.OrderEvent.Kind.Value(kind))

    first = stub.ReportOrderEvent(event, timeout=DEADLINE)
    second = stub.ReportOrderEvent(event, timeout=DEADLINE)

    assert (first.applied, second.applied) == (True, False)
    rows = exposure(stub)
    assert (rows["default"].open_orders, rows["default"].working_buy_notional) == (0, 0)
    assert rows["FIRM"].open_orders == 0


def test_report_order_event_for_an_unknown_order_is_not_found(stub):
    with pytest.raises(grpc.RpcError) as error:
        stub.ReportOrderEvent(risk_pb2.OrderEvent(client_order_id="never", kind=risk_pb2.OrderEvent.CANCELLED),
                              timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "never" in error.value.details()


# ------------------------------------------------------------------ ReportFill

def test_report_fill_books_the_position_and_reduces_the_working_order(stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)

    assert fill(stub, "o-1", "e-1", 400, 189.50) is True

    position = positions(stub)[("default", "AAPL")]
    assert (position.quantity, position.average_price) == (400, pytest.approx(189.50))
    # Marked at the 190.00 reference: 400 x 0.50 unrealized.
    assert position.unrealized_pnl == pytest.approx(200.0)
    rows = exposure(stub)
    assert rows["default"].long_notional == pytest.approx(400 * 190.0)
    assert rows["default"].working_buy_notional == pytest.approx(600 * 190.0)


def test_report_fill_with_a_repeated_exec_id_is_acknowledged_and_ignored(stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)
    fill(stub, "o-1", "e-1", 400, 189.50)

    assert fill(stub, "o-1", "e-1", 400, 189.50) is False
    assert positions(stub)[("default", "AAPL")].quantity == 400


def test_report_fill_of_the_whole_order_finishes_it(stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)

    fill(stub, "o-1", "e-1", 1000, 190.00)

    assert exposure(stub)["default"].open_orders == 0
    assert exposure(stub)["default"].working_buy_notional == 0


def test_report_fill_without_an_order_is_booked_on_the_named_account_symbol_and_side(stub):
    assert fill(stub, "", "drop-1", 100, 420.00, account="momentum", symbol="MSFT", side=SELL) is True
    assert fill(stub, "", "drop-1", 100, 420.00, account="momentum", symbol="MSFT", side=SELL) is False

    position = positions(stub, "momentum")[("momentum", "MSFT")]
    assert (position.quantity, position.average_price) == (-100, pytest.approx(420.0))
    assert exposure(stub)["momentum"].short_notional == pytest.approx(42_000)


def test_report_fill_for_an_unknown_order_without_booking_details_is_not_found(stub):
    with pytest.raises(grpc.RpcError) as error:
        fill(stub, "never", "e-9", 10, 190.0)

    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "never" in error.value.details()
    assert positions(stub) == {}


@pytest.mark.parametrize("rolls", [1, 2])
def test_report_fill_of_an_order_forgotten_after_day_rolls_is_booked_from_account_symbol_and_side(
        server, stub, rolls):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)
    fill(stub, "o-1", "e-1", 1000, 190.00)
    for _ in range(rolls):
        roll_day(server)

    late = fill(stub, "o-1", "e-late", 100, 191.00, account="default", symbol="AAPL", side=BUY)
    again = fill(stub, "o-1", "e-late", 100, 191.00, account="default", symbol="AAPL", side=BUY)

    assert (late, again) == (True, False)
    position = positions(stub)[("default", "AAPL")]
    assert (position.quantity, position.average_price) == (1100, pytest.approx((1000 * 190 + 100 * 191) / 1100))
    assert exposure(stub)["default"].open_orders == 0


def test_report_fill_of_a_cancelled_order_forgotten_at_the_roll_without_symbol_and_side_is_not_found(server, stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)
    order_event(stub, "o-1")
    roll_day(server)

    with pytest.raises(grpc.RpcError) as error:
        fill(stub, "o-1", "e-late", 10, 190.0)

    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "'o-1'" in error.value.details() and "symbol and side" in error.value.details()
    assert positions(stub) == {}


def test_report_fill_of_an_order_working_across_day_rolls_fills_the_order(server, stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)
    roll_day(server)
    roll_day(server)

    assert fill(stub, "o-1", "e-1", 400, 190.00) is True

    assert positions(stub)[("default", "AAPL")].quantity == 400
    assert exposure(stub)["default"].working_buy_notional == pytest.approx(600 * 190.0)


def test_report_fill_without_an_order_or_an_account_is_booked_on_the_default_account(stub):
    assert fill(stub, "", "drop-1", 10, 190.0, symbol="AAPL", side=SELL) is True

    assert positions(stub) == {("default", "AAPL"): positions(stub)[("default", "AAPL")]}
    assert positions(stub)[("default", "AAPL")].quantity == -10


# ------------------------------------------------------------------ UpdatePrices

def test_update_prices_moves_the_reference_used_for_market_orders_and_marks(stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)
    fill(stub, "o-1", "e-1", 1000, 190.00)

    ack = stub.UpdatePrices(risk_pb2.PriceUpdates(symbols=["AAPL", "MSFT"], prices=[200.0, 400.0]),
                            timeout=DEADLINE)

    assert ack.applied == 2
    # 1,000 x 200 = 200,000 of 5,000,000 max_order_notional.
    assert check(stub, "AAPL", BUY, 1000).utilisation == pytest.approx(0.04)
    position = positions(stub)[("default", "AAPL")]
    assert position.unrealized_pnl == pytest.approx(10_000.0)
    assert exposure(stub)["default"].long_notional == pytest.approx(200_000)


def test_update_prices_with_an_unknown_symbol_applies_no_row(stub):
    with pytest.raises(grpc.RpcError) as error:
        stub.UpdatePrices(risk_pb2.PriceUpdates(symbols=["AAPL", "NOPE"], prices=[200.0, 1.0]), timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "NOPE" in error.value.details()
    assert check(stub, "AAPL", BUY, 1000).utilisation == pytest.approx(0.038)


# ------------------------------------------------------------------ GetPositions

def test_get_positions_lists_every_leaf_or_only_the_named_account(stub):
    fill(stub, "", "x-1", 100, 190.0, account="default", symbol="AAPL", side=BUY)
    fill(stub, "", "x-2", 50, 420.0, account="momentum", symbol="MSFT", side=SELL)

    everything = positions(stub)
    only_momentum = positions(stub, "momentum")

    assert {k: p.quantity for k, p in everything.items()} == {("default", "AAPL"): 100, ("momentum", "MSFT"): -50}
    assert list(only_momentum) == [("momentum", "MSFT")]


def test_get_positions_realizes_pnl_when_a_position_is_reduced(stub):
    fill(stub, "", "x-1", 100, 190.0, account="default", symbol="AAPL", side=BUY)
    fill(stub, "", "x-2", 40, 195.0, account="default", symbol="AAPL", side=SELL)

    position = positions(stub)[("default", "AAPL")]

    assert position.quantity == 60
    assert position.realized_pnl == pytest.approx(40 * 5.0)
    assert position.unrealized_pnl == pytest.approx(0.0)


def test_get_positions_and_get_exposure_without_an_account_mean_the_whole_firm(stub):
    fill(stub, "", "x-1", 100, 190.0, account="default", symbol="AAPL", side=BUY)
    fill(stub, "", "x-2", 50, 420.0, account="momentum", symbol="MSFT", side=SELL)
    fill(stub, "", "x-3", 1, 6000.0, account="trend", symbol="ESZ6", side=BUY)

    assert positions(stub) == positions(stub, "FIRM")
    assert len(positions(stub)) == 3
    assert exposure(stub) == exposure(stub, "FIRM")
    assert set(positions(stub, "equities")) == {("default", "AAPL"), ("momentum", "MSFT")}


# ------------------------------------------------------------------ GetExposure

@pytest.fixture
def book(stub):
    """Positions and working orders across the tree, then AAPL marked up to 195."""
    assert submit(stub, "eq-1", "AAPL", BUY, 1000, 190.00).accepted
    fill(stub, "eq-1", "eq-1-x", 1000, 190.00)
    fill(stub, "", "mo-x", 100, 420.00, account="momentum", symbol="MSFT", side=SELL)
    assert submit(stub, "eq-2", "SPY", BUY, 10, 600.00).accepted
    assert submit(stub, "fut-1", "ESZ6", BUY, 2, 6000.00, account="trend").accepted
    stub.UpdatePrices(risk_pb2.PriceUpdates(symbols=["AAPL"], prices=[195.0]), timeout=DEADLINE)
    return stub


# account: (parent, long, short, working_buy, open orders, unrealized)
EXPECTED_TREE = {
    # 1,000 AAPL long at 195 = 195,000 (bought at 190: +5,000); 10 SPY at 600 working.
    "default": ("equities", 195_000, 0, 6_000, 1, 5_000),
    # 100 MSFT short at 420 = 42,000, marked where it was sold.
    "momentum": ("equities", 0, 42_000, 0, 0, 0),
    "equities": ("FIRM", 195_000, 42_000, 6_000, 1, 5_000),
    # 2 ESZ6 at 6000 x multiplier 50 = 600,000 working.
    "trend": ("futures", 0, 0, 600_000, 1, 0),
    "futures": ("FIRM", 0, 0, 600_000, 1, 0),
    "FIRM": ("", 195_000, 42_000, 606_000, 2, 5_000),
}


def test_get_exposure_aggregates_every_node_of_the_tree(book):
    rows = exposure(book)

    assert set(rows) == set(EXPECTED_TREE)
    for account, (parent, long_, short, working_buy, open_orders, unrealized) in EXPECTED_TREE.items():
        row = rows[account]
        assert row.parent == parent, account
        assert row.long_notional == pytest.approx(long_), account
        assert row.short_notional == pytest.approx(short), account
        assert row.net_notional == pytest.approx(long_ - short), account
        assert row.working_buy_notional == pytest.approx(working_buy), account
        assert row.working_sell_notional == 0, account
        assert row.gross_notional == pytest.approx(long_ + short + working_buy), account
        assert row.open_orders == open_orders, account
        assert row.unrealized_pnl == pytest.approx(unrealized), account
        assert row.daily_pnl == pytest.approx(unrealized), account
        assert row.realized_pnl == 0, account
        assert row.state == ACTIVE, account


def test_get_exposure_of_an_account_returns_its_subtree(book):
    assert set(exposure(book, "equities")) == {"equities", "default", "momentum"}
    assert set(exposure(book, "trend")) == {"trend"}
    assert set(exposure(book, "FIRM")) == set(EXPECTED_TREE)


# ------------------------------------------------------------------ GetLimits and SetLimits

def test_get_limits_returns_the_configured_limits_with_unset_ones_absent(stub):
    response = stub.GetLimits(risk_pb2.LimitsRequest(account="default"), timeout=DEADLINE)

    limits = response.limits
    assert response.account == "default"
    assert (limits.max_order_quantity, limits.max_order_notional, limits.max_open_orders) == (100_000, 5e6, 1000)
    assert (limits.new_order_rate.count, limits.new_order_rate.seconds) == (5000, 1.0)
    for unset in ("max_gross_notional", "max_net_notional", "max_daily_loss", "modify_rate", "fill_throttle"):
        assert not limits.HasField(unset), unset


def test_get_limits_without_an_account_is_invalid_argument_and_the_firm_is_named_explicitly(stub):
    with pytest.raises(grpc.RpcError) as error:
        stub.GetLimits(risk_pb2.LimitsRequest(), timeout=DEADLINE)
    firm = stub.GetLimits(risk_pb2.LimitsRequest(account="FIRM"), timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "account" in error.value.details()
    assert (firm.account, firm.limits.max_gross_notional) == ("FIRM", 500_000_000)


def test_get_limits_includes_position_limits(stub):
    limits = stub.GetLimits(risk_pb2.LimitsRequest(account="momentum"), timeout=DEADLINE).limits

    assert [(p.symbol, p.max_long, p.max_short) for p in limits.position_limits] == [("AAPL", 50_000, 50_000)]


def test_set_limits_round_trips_through_get_limits(stub):
    wanted = risk_pb2.Limits(max_order_quantity=500, max_gross_notional=1e6, max_daily_loss=2500.0,
                             cancel_rate=risk_pb2.Window(count=10, seconds=2.5),
                             position_limits=[risk_pb2.PositionLimit(symbol="MSFT", max_long=300)])

    answer = stub.SetLimits(risk_pb2.SetLimitsRequest(account="default", limits=wanted), timeout=DEADLINE)
    read = stub.GetLimits(risk_pb2.LimitsRequest(account="default"), timeout=DEADLINE)

    assert answer.limits == wanted
    assert read.limits == wanted
    # Replaced, not merged: the sample's max_order_notional is gone.
    assert not read.limits.HasField("max_order_notional")


def test_set_limits_tighter_then_rejects_what_was_accepted(stub):
    assert check(stub, "AAPL", BUY, 1000).accepted

    stub.SetLimits(risk_pb2.SetLimitsRequest(account="default", limits=risk_pb2.Limits(max_order_quantity=500)),
                   timeout=DEADLINE)

    answer = check(stub, "AAPL", BUY, 1000)
    assert (answer.accepted, answer.reason, answer.node) == (False, "MAX_ORDER_QUANTITY", "default")
    assert check(stub, "AAPL", BUY, 500).accepted


def test_set_limits_position_limit_then_rejects_a_larger_position(stub):
    limits = risk_pb2.Limits(position_limits=[risk_pb2.PositionLimit(symbol="AAPL", max_long=100, max_short=0)])
    stub.SetLimits(risk_pb2.SetLimitsRequest(account="momentum", limits=limits), timeout=DEADLINE)

    assert check(stub, "AAPL", BUY, 100, account="momentum").accepted
    assert check(stub, "AAPL", BUY, 101, account="momentum").reason == "POSITION_LIMIT"
    assert check(stub, "AAPL", SELL, 1, account="momentum").reason == "POSITION_LIMIT"


# ------------------------------------------------------------------ SetTradingState

def test_set_trading_state_halted_at_the_firm_rejects_every_order_until_active(stub):
    response = set_state(stub, HALTED, account="FIRM")

    assert (response.target, response.state) == ("FIRM", HALTED)
    for account, symbol in (("default", "AAPL"), ("momentum", "MSFT"), ("trend", "ESZ6")):
        answer = check(stub, symbol, BUY, 1, account=account)
        assert (answer.accepted, answer.reason, answer.node) == (False, "TRADING_HALTED", "FIRM")
    assert exposure(stub)["FIRM"].state == HALTED

    set_state(stub, ACTIVE, account="FIRM")
    assert check(stub, "AAPL", BUY, 1).accepted


def test_set_trading_state_halted_on_an_account_stops_only_its_subtree(stub):
    assert set_state(stub, HALTED, account="equities").target == "equities"

    assert check(stub, "AAPL", BUY, 1, account="momentum").reason == "TRADING_HALTED"
    assert check(stub, "AAPL", BUY, 1, account="default").reason == "TRADING_HALTED"
    assert check(stub, "ESZ6", BUY, 1, account="trend").accepted
    assert exposure(stub)["equities"].state == HALTED


def test_set_trading_state_halted_on_a_symbol_stops_only_that_symbol(stub):
    assert set_state(stub, HALTED, symbol="MSFT").target == "MSFT"

    assert check(stub, "MSFT", SELL, 1).reason == "TRADING_HALTED"
    assert check(stub, "AAPL", SELL, 1).accepted


def test_set_trading_state_halted_still_lets_cancels_through(stub):
    submit(stub, "o-1", "AAPL", BUY, 100, 190.00)
    set_state(stub, HALTED, account="FIRM")

    assert stub.RequestCancel(risk_pb2.CancelRequest(client_order_id="o-1"), timeout=DEADLINE).accepted
    modify = stub.ModifyOrder(risk_pb2.ModifyRequest(client_order_id="o-1", quantity=200), timeout=DEADLINE)
    assert modify.reason == "TRADING_HALTED"


def test_set_trading_state_reducing_allows_only_orders_that_reduce_the_position(stub):
    fill(stub, "", "x-1", 1000, 190.0, account="default", symbol="AAPL", side=BUY)

    set_state(stub, REDUCING, account="default")

    assert check(stub, "AAPL", BUY, 1).reason == "REDUCE_ONLY"
    assert check(stub, "AAPL", SELL, 1000).accepted
    assert check(stub, "AAPL", SELL, 1001).reason == "REDUCE_ONLY"
    assert check(stub, "MSFT", SELL, 1).reason == "REDUCE_ONLY"


def test_set_trading_state_reducing_counts_working_orders(stub):
    fill(stub, "", "x-1", 1000, 190.0, account="default", symbol="AAPL", side=BUY)
    set_state(stub, REDUCING, account="default")

    assert submit(stub, "s-1", "AAPL", SELL, 600, 190.00).accepted

    assert submit(stub, "s-2", "AAPL", SELL, 500, 190.00).reason == "REDUCE_ONLY"
    assert submit(stub, "s-3", "AAPL", SELL, 400, 190.00).accepted


def test_set_trading_state_without_a_state_is_invalid_argument_and_does_not_lift_a_halt(stub):
    set_state(stub, HALTED, account="FIRM")

    with pytest.raises(grpc.RpcError) as error:
        stub.SetTradingState(risk_pb2.TradingStateRequest(account="FIRM"), timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "state" in error.value.details()
    assert exposure(stub)["FIRM"].state == HALTED
    assert check(stub, "AAPL", BUY, 1).reason == "TRADING_HALTED"


def test_set_trading_state_without_account_or_symbol_is_invalid_argument_naming_the_firm(stub):
    with pytest.raises(grpc.RpcError) as error:
        stub.SetTradingState(risk_pb2.TradingStateRequest(state=HALTED), timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "account" in error.value.details() and "'FIRM'" in error.value.details()
    assert exposure(stub)["FIRM"].state == ACTIVE


# ------------------------------------------------------------------ WatchBreaches

@pytest.fixture
def watcher(stub, watch_breaches):
    return watch_breaches(stub)


def test_watch_breaches_delivers_a_daily_loss_breach_after_a_price_move(stub, watcher):
    stub.SetLimits(risk_pb2.SetLimitsRequest(account="default", limits=risk_pb2.Limits(max_daily_loss=1000.0)),
                   timeout=DEADLINE)
    fill(stub, "", "x-1", 1000, 190.0, account="default", symbol="AAPL", side=BUY)

    stub.UpdatePrices(risk_pb2.PriceUpdates(symbols=["AAPL"], prices=[180.0]), timeout=DEADLINE)

    breach = watcher.next()
    # 1,000 x (180 - 190) = -10,000 against a 1,000 daily loss limit.
    assert (breach.reason, breach.account, breach.state) == ("DAILY_LOSS_LIMIT", "default", REDUCING)
    assert abs(breach.value) == pytest.approx(10_000)
    assert breach.limit == pytest.approx(1000)
    assert breach.actor == ""
    assert breach.time_unix_nano > 0
    assert check(stub, "AAPL", BUY, 1).reason == "DAILY_LOSS_LIMIT"


def test_watch_breaches_delivers_a_state_change_with_the_actor_name(stub, watcher):
    set_state(stub, HALTED, account="momentum")

    breach = watcher.next()

    assert (breach.reason, breach.account, breach.symbol, breach.state) == ("STATE_CHANGE", "momentum", "", HALTED)
    assert breach.actor == "anonymous"


def test_watch_breaches_delivers_events_to_every_subscriber(stub, watcher, watch_breaches):
    other = watch_breaches(stub)
    watcher.drain()  # the second subscriber's probes

    set_state(stub, REDUCING, symbol="SPY")

    for w in (watcher, other):
        breach = w.next()
        assert (breach.reason, breach.symbol, breach.state) == ("STATE_CHANGE", "SPY", REDUCING)


# ------------------------------------------------------------------ ReportFills

def fills(*rows) -> risk_pb2.FillBatch:
    message = risk_pb2.FillBatch()
    for cid, exec_id, quantity, price in rows:
        message.client_order_ids.append(cid)
        message.exec_ids.append(exec_id)
        message.quantities.append(quantity)
        message.prices.append(price)
    return message


def test_report_fills_applies_each_new_exec_id_once(stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)
    submit(stub, "o-2", "AAPL", BUY, 500, 190.00)
    batch_of_fills = fills(("o-1", "e-1", 300, 190.0), ("o-2", "e-2", 500, 190.0), ("o-1", "e-1", 300, 190.0))

    first = stub.ReportFills(batch_of_fills, timeout=DEADLINE)
    again = stub.ReportFills(batch_of_fills, timeout=DEADLINE)

    assert list(first.applied) == [True, True, False]
    assert list(again.applied) == [False, False, False]
    assert positions(stub)[("default", "AAPL")].quantity == 800
    assert exposure(stub)["default"].open_orders == 1


def test_report_fills_with_an_unknown_order_applies_no_row(stub):
    submit(stub, "o-1", "AAPL", BUY, 1000, 190.00)

    with pytest.raises(grpc.RpcError) as error:
        stub.ReportFills(fills(("o-1", "e-1", 300, 190.0), ("never", "e-2", 1, 190.0)), timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "never" in error.value.details()
    assert positions(stub) == {}


# ------------------------------------------------------------------ Promote

def test_promote_on_a_standalone_engine_is_a_failed_precondition(stub):
    with pytest.raises(grpc.RpcError) as error:
        stub.Promote(risk_pb2.PromoteRequest(), timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "replicated" in error.value.details()
