"""The twelve steps of a check (README "Risk model"), one section a step; the order they run in,
utilisation, and check() as a what-if.

The world and the arithmetic behind every expected number: ``world.py``.
"""
import numpy as np
import pytest

from riskcore import (
    BUY,
    SELL,
    Instrument,
    Limits,
    OrderStatus,
    Reason,
    TradingState,
)
from tests.riskcore.world import T0, SECOND, NAN, INF, OK, buy, sell, fill


# ------------------------------------------------------------ 1. malformed


@pytest.mark.parametrize("side", [0, 2, -2, "X", "HOLD"])
def test_check_with_a_side_that_is_neither_buy_nor_sell_rejects_invalid_side(engine, side):
    assert engine.check("alpha", "ACME", side, 100, 100.0).reason == Reason.INVALID_SIDE


@pytest.mark.parametrize("side", [BUY, SELL, "BUY", "SELL"])
def test_check_with_buy_or_sell_as_constant_or_name_is_accepted(engine, side):
    assert engine.check("alpha", "ACME", side, 100, 100.0).reason == OK


@pytest.mark.parametrize(
    "quantity", [0, -1, -100, NAN, INF, -INF, 1.5, 0.5, 10**12 + 1, 1e13, 2**63 - 1],
    ids=["zero", "minus-one", "negative", "nan", "inf", "minus-inf", "1.5", "0.5", "1e12+1", "1e13", "int64-max"])
def test_check_with_a_quantity_that_is_not_a_whole_number_in_range_rejects_invalid_quantity(engine, quantity):
    assert engine.check("alpha", "ACME", BUY, quantity, 100.0).reason == Reason.INVALID_QUANTITY


def test_check_with_quantity_one_trillion_is_the_largest_valid_quantity(engine):
    # PENNY: 1 tick of 0.01 at tick value 10_000 micros: N = 1e12 * 1 * 1e4 = 1e16 micros, far below 2**62.
    engine.add_instrument(Instrument("PENNY", tick_size=0.01, reference_price=0.01))
    assert engine.check("alpha", "PENNY", BUY, 10**12, 0.01).reason == OK
    assert engine.check("alpha", "PENNY", BUY, 10**12 + 1, 0.01).reason == Reason.INVALID_QUANTITY


def test_check_with_a_whole_float_quantity_is_accepted(engine):
    assert engine.check("alpha", "ACME", BUY, 100.0, 100.0).reason == OK
    assert engine.check("alpha", "ACME", BUY, np.int64(100), 100.0).reason == OK


@pytest.mark.parametrize("price", [NAN, INF, -INF, 0.0, 0, -0.01, -100.0],
                         ids=["nan", "inf", "minus-inf", "zero", "int-zero", "minus-cent", "negative"])
def test_check_with_a_limit_price_that_is_not_finite_and_positive_rejects_invalid_price(engine, price):
    assert engine.check("alpha", "ACME", BUY, 100, price).reason == Reason.INVALID_PRICE
    assert engine.check("alpha", "ACME", SELL, 100, price).reason == Reason.INVALID_PRICE


def test_market_order_has_no_limit_price_to_be_invalid(engine):
    assert engine.check("alpha", "ACME", BUY, 100, None).reason == OK


def test_invalid_quantity_message_names_the_bad_value(engine):
    assert "-7" in engine.check("alpha", "ACME", BUY, -7, 100.0).message


# ---------------------------------------------------------- 2. order ids


def test_submit_with_an_id_used_before_rejects_duplicate_order_id(engine):
    assert engine.submit(1, "alpha", "ACME", BUY, 100, 99.0).reason == OK
    assert engine.submit(1, "beta", "ACME", SELL, 5, 101.0).reason == Reason.DUPLICATE_ORDER_ID


def test_submit_with_the_id_of_a_cancelled_order_rejects_duplicate_order_id(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.on_cancel(1)
    assert engine.submit(1, "alpha", "ACME", BUY, 100, 99.0).reason == Reason.DUPLICATE_ORDER_ID


def test_submit_with_the_id_of_an_order_forgotten_by_roll_day_rejects_duplicate_order_id(engine):
    engine.submit(7, "alpha", "ACME", BUY, 100, 99.0)
    engine.on_fill(7, 100, 99.0, "X-1")
    engine.roll_day()
    assert engine.submit(7, "alpha", "ACME", BUY, 100, 99.0).reason == Reason.DUPLICATE_ORDER_ID


def test_duplicate_order_id_message_names_the_id(engine):
    engine.submit(4242, "alpha", "ACME", BUY, 1, 99.0)
    assert "4242" in engine.submit(4242, "alpha", "ACME", BUY, 1, 99.0).message


def test_modify_of_an_unknown_order_rejects_unknown_order(engine):
    assert engine.modify(999, 10).reason == Reason.UNKNOWN_ORDER
    assert "999" in engine.modify(999, 10).message


def test_modify_of_a_filled_or_cancelled_order_rejects_unknown_order(engine):
    engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)
    engine.submit(2, "alpha", "ACME", BUY, 10, 98.0)
    engine.on_fill(1, 10, 99.0, "X-1")
    engine.on_cancel(2)
    assert engine.modify(1, 5).reason == Reason.UNKNOWN_ORDER
    assert engine.modify(2, 5).reason == Reason.UNKNOWN_ORDER


def test_modify_of_an_unknown_order_reports_unknown_order_before_anything_else(engine):
    assert engine.modify(999, 0).reason == Reason.UNKNOWN_ORDER
    assert engine.modify(999, 10, NAN).reason == Reason.UNKNOWN_ORDER


def test_request_cancel_of_an_unknown_or_finished_order_rejects_unknown_order(engine):
    engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)
    engine.on_cancel(1)
    assert engine.request_cancel(1).reason == Reason.UNKNOWN_ORDER
    assert engine.request_cancel(555).reason == Reason.UNKNOWN_ORDER


# ------------------------------------------------- 3. symbol and account


@pytest.mark.parametrize("symbol", ["NOPE", 99, -1])
def test_check_of_an_unknown_symbol_rejects_unknown_symbol(engine, symbol):
    assert engine.check("alpha", symbol, BUY, 10, 100.0).reason == Reason.UNKNOWN_SYMBOL


def test_check_of_a_restricted_symbol_rejects_symbol_restricted(engine):
    engine.add_instrument(Instrument("RSTR", reference_price=10.0, tradable=False))
    assert engine.check("alpha", "RSTR", BUY, 10, 10.0).reason == Reason.SYMBOL_RESTRICTED
    assert engine.check("alpha", "RSTR", SELL, 10, None).reason == Reason.SYMBOL_RESTRICTED


@pytest.mark.parametrize("account", ["nobody", 99, -1])
def test_check_from_an_unknown_account_rejects_unknown_account(engine, account):
    assert engine.check(account, "ACME", BUY, 10, 100.0).reason == Reason.UNKNOWN_ACCOUNT


@pytest.mark.parametrize("account", ["FIRM", 0, "desk"])
def test_check_from_the_firm_or_an_account_with_sub_accounts_rejects_account_not_tradable(engine, account):
    decision = engine.check(account, "ACME", BUY, 10, 100.0)
    assert decision.reason == Reason.ACCOUNT_NOT_TRADABLE
    assert decision.node == ("desk" if account == "desk" else "FIRM")


def test_allow_list_on_a_parent_without_the_symbol_rejects_symbol_not_permitted_at_that_parent(engine):
    engine.add_instrument(Instrument("OTHER", reference_price=10.0))
    engine.set_allowed_symbols("desk", ["OTHER"])
    decision = engine.check("alpha", "ACME", BUY, 10, 100.0)
    assert decision.reason == Reason.SYMBOL_NOT_PERMITTED
    assert decision.node == "desk"
    assert engine.check("alpha", "OTHER", BUY, 10, 10.0).reason == OK
    assert engine.check("solo", "ACME", BUY, 10, 100.0).reason == OK


def test_allow_list_on_the_leaf_itself_restricts_only_that_leaf(engine):
    engine.add_instrument(Instrument("OTHER", reference_price=10.0))
    engine.set_allowed_symbols("alpha", ["OTHER"])
    assert engine.check("alpha", "ACME", BUY, 10, 100.0).node == "alpha"
    assert engine.check("alpha", "ACME", BUY, 10, 100.0).reason == Reason.SYMBOL_NOT_PERMITTED
    assert engine.check("beta", "ACME", BUY, 10, 100.0).reason == OK


def test_empty_allow_list_permits_nothing_and_none_lifts_it(engine):
    engine.set_allowed_symbols("desk", [])
    assert buy(engine, 10) == Reason.SYMBOL_NOT_PERMITTED
    engine.set_allowed_symbols("desk", None)
    assert buy(engine, 10) == OK


def test_allow_list_applies_to_symbols_added_after_it(engine):
    engine.set_allowed_symbols("desk", ["ACME"])
    engine.add_instrument(Instrument("LATE", reference_price=10.0))
    assert engine.check("alpha", "LATE", BUY, 10, 10.0).reason == Reason.SYMBOL_NOT_PERMITTED


# ------------------------------------------------------------- 4. grids


def test_quantity_not_a_multiple_of_the_lot_rejects_lot_size(engine):
    engine.add_instrument(Instrument("LOT", tick_size=0.01, lot_size=100, reference_price=10.0))
    for q in (50, 150, 199, 101):
        assert engine.check("alpha", "LOT", BUY, q, 10.0).reason == Reason.LOT_SIZE
    for q in (100, 200, 1000):
        assert engine.check("alpha", "LOT", BUY, q, 10.0).reason == OK


def test_lot_size_message_names_the_quantity_and_the_lot(engine):
    engine.add_instrument(Instrument("LOT", tick_size=0.01, lot_size=100, reference_price=10.0))
    message = engine.check("alpha", "LOT", BUY, 150, 10.0).message
    assert "150" in message and "100" in message


@pytest.mark.parametrize("price, accepted", [
    (100.01, True), (99.99, True), (100.0, True), (100.015, False), (100.001, False), (100.0099, False),
])
def test_price_on_a_cent_grid_is_accepted_and_off_it_rejects_tick_size(engine, price, accepted):
    assert buy(engine, 1, price) == (OK if accepted else Reason.TICK_SIZE)


@pytest.mark.parametrize("price, accepted", [
    (100.25, True), (100.5, True), (100.75, True), (99.75, True),
    (100.1, False), (100.3, False), (100.125, False), (100.01, False),
])
def test_price_on_a_quarter_grid_is_accepted_and_off_it_rejects_tick_size(engine, price, accepted):
    engine.add_instrument(Instrument("QTR", tick_size=0.25, reference_price=100.0))
    assert engine.check("alpha", "QTR", BUY, 1, price).reason == (OK if accepted else Reason.TICK_SIZE)


@pytest.mark.parametrize("tick, price", [(0.1, 0.3), (0.05, 1.15), (0.01, 0.07), (0.1, 100.7), (0.01, 4.35)])
def test_prices_whose_float_modulo_by_the_tick_is_not_zero_are_still_on_the_grid(engine, tick, price):
    # 0.3 % 0.1 == 0.0999... in floats: the grid test must not be a float modulo.
    engine.add_instrument(Instrument("GRID", tick_size=tick, require_reference=False))
    assert engine.check("alpha", "GRID", BUY, 1, price).reason == OK


def test_price_below_half_a_tick_rejects_tick_size(engine):
    # 1e-12 is within the 1e-9 grid tolerance of 0 ticks, but 0 ticks is not a price.
    assert buy(engine, 1, 1e-12) == Reason.TICK_SIZE


def test_price_of_ten_to_the_fifteen_ticks_or_more_rejects_tick_size(engine):
    engine.add_instrument(Instrument("BIG", tick_size=1.0, require_reference=False))
    assert engine.check("alpha", "BIG", BUY, 1, 1e15).reason == Reason.TICK_SIZE
    assert engine.check("alpha", "BIG", BUY, 1, 2e15).reason == Reason.TICK_SIZE
    # one tick less is on the grid; its notional 1 * (1e15 - 1) * 1e6 micros is beyond 2**62
    assert engine.check("alpha", "BIG", BUY, 1, 1e15 - 1).reason == Reason.NOTIONAL_OVERFLOW


def test_tick_size_message_names_the_price_and_the_tick(engine):
    message = engine.check("alpha", "ACME", BUY, 1, 100.015).message
    assert "100.015" in message and "0.01" in message


# ----------------------------------------------------- notional overflow

POW2_TICK = 1.048576  # tick value 1.048576 * 1e6 = 2**20 micros, so 2**62 is reachable exactly


def test_notional_of_exactly_two_to_the_62_is_accepted_and_one_unit_more_overflows(engine):
    instrument = Instrument("POW2", tick_size=POW2_TICK, require_reference=False)
    assert instrument.tick_value == 2**20
    engine.add_instrument(instrument)
    price = 2**21 * POW2_TICK  # 2**21 ticks
    # N = q * p * tv = 2**21 * 2**21 * 2**20 = 2**62: not beyond the cap
    assert engine.check("alpha", "POW2", BUY, 2**21, price).reason == OK
    # (2**21 + 1) * 2**21 * 2**20 > 2**62
    assert engine.check("alpha", "POW2", BUY, 2**21 + 1, price).reason == Reason.NOTIONAL_OVERFLOW


# ------------------------------------------------------ 5. trading state


def test_halt_at_the_firm_rejects_every_new_order_with_trading_halted(engine):
    engine.set_trading_state(TradingState.HALTED)
    for account in ("alpha", "beta", "solo"):
        decision = engine.check(account, "ACME", BUY, 1, 100.0)
        assert decision.reason == Reason.TRADING_HALTED
        assert decision.node == "FIRM"


def test_halt_at_a_desk_rejects_its_accounts_and_not_others(engine):
    engine.set_trading_state("HALTED", account="desk")
    assert engine.check("beta", "ACME", SELL, 1, 100.0).node == "desk"
    assert sell(engine, 1, account="beta") == Reason.TRADING_HALTED
    assert buy(engine, 1, account="solo") == OK


def test_halt_at_an_account_rejects_even_orders_that_reduce(engine):
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.set_trading_state(TradingState.HALTED, account="alpha")
    decision = engine.check("alpha", "ACME", SELL, 50, 100.0)
    assert decision.reason == Reason.TRADING_HALTED
    assert decision.node == "alpha"


def test_halt_on_a_symbol_rejects_orders_in_it_with_no_node(engine):
    engine.add_instrument(Instrument("OTHER", reference_price=10.0))
    engine.set_trading_state(TradingState.HALTED, symbol="ACME")
    decision = engine.check("alpha", "ACME", BUY, 1, 100.0)
    assert decision.reason == Reason.TRADING_HALTED
    assert decision.node is None
    assert engine.check("alpha", "OTHER", BUY, 1, 10.0).reason == OK


def test_halt_rejects_modifies_even_ones_that_reduce_quantity(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.set_trading_state(TradingState.HALTED, account="alpha")
    assert engine.modify(1, 50).reason == Reason.TRADING_HALTED
    assert engine.order(1).remaining == 100


def test_halt_does_not_stop_cancels(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.set_trading_state(TradingState.HALTED)
    engine.set_trading_state(TradingState.HALTED, symbol="ACME")
    assert engine.request_cancel(1).reason == OK
    assert engine.on_cancel(1) is True


def test_setting_active_again_lifts_a_halt(engine):
    engine.set_trading_state(TradingState.HALTED, account="alpha")
    engine.set_trading_state(TradingState.ACTIVE, account="alpha")
    assert buy(engine, 1) == OK
    assert engine.trading_state("alpha") == TradingState.ACTIVE


def test_reducing_account_rejects_any_order_when_flat(engine):
    engine.set_trading_state(TradingState.REDUCING, account="alpha")
    decision = engine.check("alpha", "ACME", BUY, 1, 100.0)
    assert decision.reason == Reason.REDUCE_ONLY and decision.node == "alpha"
    assert sell(engine, 1) == Reason.REDUCE_ONLY


def test_reducing_account_that_is_long_lets_sells_down_to_flat_through(engine):
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.set_trading_state(TradingState.REDUCING, account="alpha")
    assert sell(engine, 100) == OK     # 100 - 0 - 100 = 0 >= 0
    assert sell(engine, 101) == Reason.REDUCE_ONLY
    assert buy(engine, 1) == Reason.REDUCE_ONLY


def test_reducing_account_that_is_short_lets_buys_up_to_flat_through(engine):
    engine.book_fill("alpha", "ACME", SELL, 100, 100.0)
    engine.set_trading_state(TradingState.REDUCING, account="alpha")
    assert buy(engine, 100) == OK      # -100 + 0 + 100 = 0 <= 0
    assert buy(engine, 101) == Reason.REDUCE_ONLY
    assert sell(engine, 1) == Reason.REDUCE_ONLY


def test_reducing_counts_working_orders_on_the_same_side(engine):
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.set_trading_state(TradingState.REDUCING, account="alpha")
    assert engine.submit(1, "alpha", "ACME", SELL, 60, 100.0).reason == OK
    assert sell(engine, 40) == OK      # 100 - 60 - 40 = 0
    assert sell(engine, 41) == Reason.REDUCE_ONLY


def test_reducing_judges_the_accounts_own_leaf_position_not_the_desks(engine):
    # desk nets to zero (alpha +100, beta -100) but alpha alone is long and may sell.
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.book_fill("beta", "ACME", SELL, 100, 100.0)
    engine.set_trading_state(TradingState.REDUCING, account="desk")
    assert sell(engine, 100, account="alpha") == OK
    assert buy(engine, 100, account="beta") == OK
    decision = engine.check("alpha", "ACME", BUY, 1, 100.0)
    assert decision.reason == Reason.REDUCE_ONLY and decision.node == "desk"


def test_reducing_symbol_rejects_orders_that_do_not_reduce_with_no_node(engine):
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.set_trading_state(TradingState.REDUCING, symbol="ACME")
    decision = engine.check("alpha", "ACME", BUY, 1, 100.0)
    assert decision.reason == Reason.REDUCE_ONLY and decision.node is None
    assert sell(engine, 100) == OK


def test_reducing_lets_a_modify_that_lowers_quantity_through_and_not_one_that_raises_it(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.set_trading_state(TradingState.REDUCING, account="alpha")
    assert engine.modify(1, 50).reason == OK
    assert engine.modify(1, 60).reason == Reason.REDUCE_ONLY
    assert engine.order(1).remaining == 50


def test_operator_reducing_survives_roll_day(engine):
    engine.set_trading_state(TradingState.REDUCING, account="alpha")
    engine.roll_day()
    assert engine.trading_state("alpha") == TradingState.REDUCING


# ------------------------------------------------------ 6. price checks


def test_no_reference_price_rejects_orders_when_a_reference_is_required(engine):
    engine.add_instrument(Instrument("NOREF", tick_size=0.01))
    assert engine.check("alpha", "NOREF", BUY, 1, 10.0).reason == Reason.NO_REFERENCE_PRICE
    assert engine.check("alpha", "NOREF", SELL, 1, None).reason == Reason.NO_REFERENCE_PRICE
    engine.update_price("NOREF", 10.0)
    assert engine.check("alpha", "NOREF", BUY, 1, 10.0).reason == OK


def test_no_reference_price_rejects_only_market_orders_when_no_reference_is_required(engine):
    engine.add_instrument(Instrument("LAX", tick_size=0.01, require_reference=False))
    assert engine.check("alpha", "LAX", BUY, 1, 10.0).reason == OK
    assert engine.check("alpha", "LAX", BUY, 1, None).reason == Reason.NO_REFERENCE_PRICE


def test_reference_older_than_its_max_age_rejects_stale_reference_price(engine, clock):
    engine.add_instrument(Instrument("STALE", reference_price=50.0, max_reference_age=5.0))
    clock.advance(5.0)  # exactly 5 s old: not older than the limit
    assert engine.check("alpha", "STALE", BUY, 1, 50.0).reason == OK
    clock.advance(1e-9)
    assert engine.check("alpha", "STALE", BUY, 1, 50.0).reason == Reason.STALE_REFERENCE_PRICE
    assert engine.check("alpha", "STALE", SELL, 1, None).reason == Reason.STALE_REFERENCE_PRICE


def test_stale_reference_message_names_its_age_and_the_limit(engine, clock):
    engine.add_instrument(Instrument("STALE", reference_price=50.0, max_reference_age=5.0))
    clock.advance(7.5)
    message = engine.check("alpha", "STALE", BUY, 1, 50.0).message
    assert "7.5" in message and "5" in message


def test_a_price_update_even_at_the_same_price_makes_a_stale_reference_fresh(engine, clock):
    engine.add_instrument(Instrument("STALE", reference_price=50.0, max_reference_age=5.0))
    clock.advance(7.5)
    engine.update_price("STALE", 50.0)
    assert engine.check("alpha", "STALE", BUY, 1, 50.0).reason == OK


def test_a_price_update_stamped_in_the_past_can_be_stale(engine, clock):
    engine.add_instrument(Instrument("STALE", max_reference_age=5.0))
    engine.update_price("STALE", 50.0, time_ns=T0 - 6 * SECOND)
    assert engine.check("alpha", "STALE", BUY, 1, 50.0).reason == Reason.STALE_REFERENCE_PRICE


def test_stale_reference_is_still_used_for_collar_and_market_price_when_not_required(engine, clock):
    engine.add_instrument(Instrument("LAX", reference_price=50.0, max_reference_age=5.0,
                                     require_reference=False, collar_ticks_buy=10))
    clock.advance(60.0)
    assert engine.check("alpha", "LAX", BUY, 1, 50.10).reason == OK
    assert engine.check("alpha", "LAX", BUY, 1, 50.11).reason == Reason.PRICE_COLLAR
    assert engine.submit(1, "alpha", "LAX", BUY, 10, None).reason == OK
    assert engine.aggregate("alpha").working_buy == 500.0  # 10 * 50.00


@pytest.mark.parametrize("side", [BUY, SELL])
def test_price_outside_the_absolute_band_rejects_price_out_of_range(engine, side):
    engine.add_instrument(Instrument("BAND", reference_price=100.0, min_price=90.0, max_price=110.0))
    for price, expected in ((89.99, Reason.PRICE_OUT_OF_RANGE), (90.0, OK), (110.0, OK),
                            (110.01, Reason.PRICE_OUT_OF_RANGE)):
        assert engine.check("alpha", "BAND", side, 1, price).reason == expected


def test_band_limits_that_fall_between_ticks_are_not_widened(engine):
    # max 100.2 / min 99.8 on a 0.25 grid: 100.25 is above the max and 99.75 below the min.
    engine.add_instrument(Instrument("QTR", tick_size=0.25, reference_price=100.0, min_price=99.8, max_price=100.2))
    assert engine.check("alpha", "QTR", BUY, 1, 100.0).reason == OK
    assert engine.check("alpha", "QTR", BUY, 1, 100.25).reason == Reason.PRICE_OUT_OF_RANGE
    assert engine.check("alpha", "QTR", SELL, 1, 99.75).reason == Reason.PRICE_OUT_OF_RANGE


def test_market_order_priced_at_a_reference_outside_the_band_rejects_price_out_of_range(engine):
    engine.add_instrument(Instrument("BAND", reference_price=100.0, max_price=110.0))
    engine.update_price("BAND", 120.0)
    assert engine.check("alpha", "BAND", BUY, 1, None).reason == Reason.PRICE_OUT_OF_RANGE


def test_collar_in_basis_points_rejects_a_buy_above_the_reference_plus_the_band(engine):
    # ref 10_000 ticks * 50 bps // 10_000 = 50 ticks: buys up to 100.50
    engine.add_instrument(Instrument("COL", reference_price=100.0, collar_bps_buy=50))
    assert engine.check("alpha", "COL", BUY, 1, 100.50).reason == OK
    assert engine.check("alpha", "COL", BUY, 1, 100.51).reason == Reason.PRICE_COLLAR
    assert engine.check("alpha", "COL", BUY, 1, 10.00).reason == OK
    assert engine.check("alpha", "COL", SELL, 1, 150.00).reason == OK  # the sell side has no collar


def test_collar_in_basis_points_rounds_the_band_down_to_whole_ticks(engine):
    # ref 10_001 ticks * 50 // 10_000 = 50 (50.005 floored): buys up to 100.51
    engine.add_instrument(Instrument("COL", reference_price=100.01, collar_bps_buy=50))
    assert engine.check("alpha", "COL", BUY, 1, 100.51).reason == OK
    assert engine.check("alpha", "COL", BUY, 1, 100.52).reason == Reason.PRICE_COLLAR


def test_collar_in_ticks_rejects_a_buy_above_the_reference_plus_the_ticks(engine):
    engine.add_instrument(Instrument("COL", reference_price=100.0, collar_ticks_buy=20))
    assert engine.check("alpha", "COL", BUY, 1, 100.20).reason == OK
    assert engine.check("alpha", "COL", BUY, 1, 100.21).reason == Reason.PRICE_COLLAR


@pytest.mark.parametrize("bps, ticks, highest_ok", [(50, 20, 100.20), (10, 20, 100.10), (50, 50, 100.50)])
def test_collar_with_both_bps_and_ticks_uses_the_tighter_band(engine, bps, ticks, highest_ok):
    engine.add_instrument(Instrument("COL", reference_price=100.0, collar_bps_buy=bps, collar_ticks_buy=ticks))
    assert engine.check("alpha", "COL", BUY, 1, highest_ok).reason == OK
    assert engine.check("alpha", "COL", BUY, 1, round(highest_ok + 0.01, 2)).reason == Reason.PRICE_COLLAR


def test_collar_on_the_sell_side_rejects_a_sell_below_the_reference_minus_the_band(engine):
    # 100 bps of 10_000 ticks = 100 ticks: sells down to 99.00
    engine.add_instrument(Instrument("COL", reference_price=100.0, collar_bps_sell=100, collar_ticks_sell=500))
    assert engine.check("alpha", "COL", SELL, 1, 99.00).reason == OK
    assert engine.check("alpha", "COL", SELL, 1, 98.99).reason == Reason.PRICE_COLLAR
    assert engine.check("alpha", "COL", BUY, 1, 101.50).reason == OK  # the buy side has no collar


def test_collar_in_ticks_on_a_quarter_grid(engine):
    engine.add_instrument(Instrument("QTR", tick_size=0.25, reference_price=100.0, collar_ticks_sell=2))
    assert engine.check("alpha", "QTR", SELL, 1, 99.50).reason == OK
    assert engine.check("alpha", "QTR", SELL, 1, 99.25).reason == Reason.PRICE_COLLAR


def test_zero_collar_allows_limit_orders_at_the_reference_and_does_not_apply_to_market_orders(engine):
    engine.add_instrument(Instrument("COL", reference_price=100.0, collar_ticks_buy=0))
    assert engine.check("alpha", "COL", BUY, 1, 100.00).reason == OK
    assert engine.check("alpha", "COL", BUY, 1, 100.01).reason == Reason.PRICE_COLLAR
    assert engine.check("alpha", "COL", BUY, 1, None).reason == OK


def test_collar_message_names_the_price_and_the_collar_edge(engine):
    engine.add_instrument(Instrument("COL", reference_price=100.0, collar_bps_buy=50))
    decision = engine.check("alpha", "COL", BUY, 1, 100.51)
    assert "100.51" in decision.message and "100.5" in decision.message
    assert decision.limit == pytest.approx(100.50)


# -------------------------------------------------------- 7. order size


def test_max_order_quantity_rejects_a_quantity_above_it(engine):
    engine.set_limits("alpha", Limits(max_order_quantity=500))
    assert buy(engine, 500) == OK
    decision = engine.check("alpha", "ACME", BUY, 501, 100.0)
    assert decision.reason == Reason.MAX_ORDER_QUANTITY and decision.node == "alpha"
    assert (decision.value, decision.limit) == (501.0, 500.0)
    assert engine.check("alpha", "ACME", SELL, 501, None).reason == Reason.MAX_ORDER_QUANTITY


def test_max_order_quantity_message_names_the_limit_the_values_and_the_node(engine):
    engine.set_limits("alpha", Limits(max_order_quantity=500))
    message = engine.check("alpha", "ACME", BUY, 501, 100.0).message
    for word in ("max_order_quantity", "501", "500", "alpha"):
        assert word in message


@pytest.mark.parametrize("alpha, desk, firm, node", [
    (1000, 500, 2000, "desk"), (300, 500, 2000, "alpha"), (1000, 2000, 200, "FIRM"),
])
def test_the_most_restrictive_order_quantity_limit_along_the_path_wins(engine, alpha, desk, firm, node):
    engine.set_limits("alpha", Limits(max_order_quantity=alpha))
    engine.set_limits("desk", Limits(max_order_quantity=desk))
    engine.set_limits("FIRM", Limits(max_order_quantity=firm))
    tightest = min(alpha, desk, firm)
    assert buy(engine, tightest) == OK
    decision = engine.check("alpha", "ACME", BUY, tightest + 1, 100.0)
    assert decision.reason == Reason.MAX_ORDER_QUANTITY and decision.node == node


def test_account_limit_is_reported_before_the_desk_limit_when_both_fail(engine):
    engine.set_limits("alpha", Limits(max_order_quantity=100))
    engine.set_limits("desk", Limits(max_order_quantity=50))
    assert engine.check("alpha", "ACME", BUY, 150, 100.0).node == "alpha"
    assert engine.check("alpha", "ACME", BUY, 80, 100.0).node == "desk"


def test_max_order_notional_rejects_a_notional_above_it(engine):
    engine.set_limits("alpha", Limits(max_order_notional=10_000.0))
    assert buy(engine, 100, 100.0) == OK                              # 10_000.00
    assert buy(engine, 101, 100.0) == Reason.MAX_ORDER_NOTIONAL       # 10_100.00
    assert buy(engine, 100, 100.01) == Reason.MAX_ORDER_NOTIONAL      # 10_001.00
    assert buy(engine, 101, None) == Reason.MAX_ORDER_NOTIONAL        # market, at the reference


def test_max_order_notional_message_names_the_notional_and_the_limit(engine):
    engine.set_limits("alpha", Limits(max_order_notional=10_000.0))
    message = engine.check("alpha", "ACME", BUY, 101, 100.0).message
    for word in ("max_order_notional", "10100.00", "10000.00", "alpha"):
        assert word in message


# ---------------------------------------------------- 8. position limits


def test_position_limit_rejects_a_buy_whose_worst_case_long_exceeds_max_long(engine):
    engine.set_position_limit("alpha", "ACME", max_long=100)
    assert buy(engine, 100) == OK
    decision = engine.check("alpha", "ACME", BUY, 101, 100.0)
    assert decision.reason == Reason.POSITION_LIMIT and decision.node == "alpha"
    assert (decision.value, decision.limit) == (101.0, 100.0)


def test_position_limit_counts_same_side_working_orders(engine):
    engine.set_position_limit("alpha", "ACME", max_long=100)
    assert engine.submit(1, "alpha", "ACME", BUY, 60, 99.0).reason == OK
    assert buy(engine, 40) == OK
    assert buy(engine, 41) == Reason.POSITION_LIMIT


def test_position_limit_counts_the_position_and_not_opposite_side_working_orders(engine):
    engine.book_fill("alpha", "ACME", BUY, 80, 100.0)
    engine.submit(1, "alpha", "ACME", SELL, 80, 101.0)
    engine.set_position_limit("alpha", "ACME", max_long=100)
    assert buy(engine, 20) == OK       # 80 + 0 + 20 = 100; the working sell does not help
    assert buy(engine, 21) == Reason.POSITION_LIMIT


def test_position_limit_rejects_a_sell_whose_worst_case_short_exceeds_max_short(engine):
    engine.set_position_limit("alpha", "ACME", max_short=50)
    assert sell(engine, 50) == OK
    assert sell(engine, 51) == Reason.POSITION_LIMIT
    engine.submit(1, "alpha", "ACME", SELL, 30, 101.0)
    assert sell(engine, 20) == OK      # -(0 - 30 - 20) = 50
    assert sell(engine, 21) == Reason.POSITION_LIMIT


def test_short_limit_starts_from_a_long_position(engine):
    engine.book_fill("alpha", "ACME", BUY, 30, 100.0)
    engine.set_position_limit("alpha", "ACME", max_short=50)
    assert sell(engine, 80) == OK      # -(30 - 0 - 80) = 50
    assert sell(engine, 81) == Reason.POSITION_LIMIT


def test_long_and_short_limits_are_separate(engine):
    engine.set_position_limit("alpha", "ACME", max_long=10, max_short=1000)
    assert sell(engine, 1000) == OK
    assert buy(engine, 11) == Reason.POSITION_LIMIT
    engine.set_position_limit("alpha", "ACME", max_long=1000, max_short=0)
    assert buy(engine, 1000) == OK
    assert sell(engine, 1) == Reason.POSITION_LIMIT


def test_zero_short_limit_still_lets_a_long_be_sold_down_to_flat(engine):
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.set_position_limit("alpha", "ACME", max_short=0)
    assert sell(engine, 100) == OK
    assert sell(engine, 101) == Reason.POSITION_LIMIT


def test_position_limit_at_a_desk_applies_to_the_sum_of_its_accounts(engine):
    engine.set_position_limit("desk", "ACME", max_long=150)
    assert engine.submit(1, "alpha", "ACME", BUY, 100, 99.0).reason == OK
    decision = engine.check("beta", "ACME", BUY, 51, 99.0)
    assert decision.reason == Reason.POSITION_LIMIT and decision.node == "desk"
    assert buy(engine, 50, 99.0, account="beta") == OK
    assert buy(engine, 1000, 99.0, account="solo") == OK


def test_position_limit_at_a_desk_sees_its_accounts_positions_netted(engine):
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.book_fill("beta", "ACME", SELL, 100, 100.0)
    engine.set_position_limit("desk", "ACME", max_long=150)
    assert buy(engine, 150, account="alpha") == OK   # desk: 0 + 0 + 150
    assert buy(engine, 151, account="alpha") == Reason.POSITION_LIMIT


def test_position_limit_is_per_symbol(engine):
    engine.add_instrument(Instrument("OTHER", reference_price=10.0))
    engine.set_position_limit("alpha", "ACME", max_long=10)
    assert engine.check("alpha", "OTHER", BUY, 1000, 10.0).reason == OK


# ------------------------------------------------- 9. gross and net notional


def test_max_gross_notional_counts_working_orders_on_both_sides(engine):
    engine.set_limits("alpha", Limits(max_gross_notional=10_000.0))
    assert engine.submit(1, "alpha", "ACME", BUY, 60, 99.0).reason == OK     # 5_940
    assert engine.submit(2, "alpha", "ACME", SELL, 40, 101.5).reason == OK   # + 4_060 = 10_000
    decision = engine.check("alpha", "ACME", SELL, 1, 101.5)                 # 10_101.50
    assert decision.reason == Reason.MAX_GROSS_NOTIONAL and decision.node == "alpha"
    assert buy(engine, 1, 99.0) == Reason.MAX_GROSS_NOTIONAL                # 10_099


def test_max_gross_notional_values_positions_at_the_reference_not_at_cost(engine):
    engine.book_fill("alpha", "ACME", BUY, 50, 90.0)   # long 50, valued at ref 100.00: 5_000
    engine.set_limits("alpha", Limits(max_gross_notional=10_000.0))
    assert buy(engine, 50) == OK                          # 5_000 + 5_000
    assert buy(engine, 51) == Reason.MAX_GROSS_NOTIONAL  # 10_100


def test_max_gross_notional_counts_short_positions(engine):
    engine.book_fill("alpha", "ACME", SELL, 50, 100.0)  # short 5_000
    engine.set_limits("alpha", Limits(max_gross_notional=10_000.0))
    assert sell(engine, 50) == OK
    assert sell(engine, 51) == Reason.MAX_GROSS_NOTIONAL
    assert buy(engine, 51) == Reason.MAX_GROSS_NOTIONAL  # gross adds, it does not net


def test_max_gross_notional_follows_the_reference_price(engine):
    engine.book_fill("alpha", "ACME", BUY, 50, 100.0)
    engine.set_limits("alpha", Limits(max_gross_notional=10_000.0))
    engine.update_price("ACME", 200.0)                    # long 50 * 200 = 10_000
    assert buy(engine, 1, 100.0) == Reason.MAX_GROSS_NOTIONAL


def test_max_gross_notional_at_a_desk_applies_to_the_sum_of_its_accounts(engine):
    engine.set_limits("desk", Limits(max_gross_notional=10_000.0))
    engine.submit(1, "alpha", "ACME", BUY, 60, 100.0)     # 6_000
    decision = engine.check("beta", "ACME", SELL, 41, 100.0)
    assert decision.reason == Reason.MAX_GROSS_NOTIONAL and decision.node == "desk"
    assert sell(engine, 40, account="beta") == OK
    assert sell(engine, 1000, account="solo") == OK


def test_max_gross_notional_message_names_the_values(engine):
    engine.set_limits("alpha", Limits(max_gross_notional=10_000.0))
    message = engine.check("alpha", "ACME", BUY, 101, 100.0).message
    for word in ("gross", "10100.00", "10000.00", "alpha"):
        assert word in message


def test_max_net_notional_on_a_buy_nets_positions_and_adds_working_buys(engine):
    engine.book_fill("alpha", "ACME", SELL, 50, 100.0)    # S = 5_000
    engine.set_limits("alpha", Limits(max_net_notional=10_000.0))
    assert buy(engine, 150) == OK                         # 0 - 5_000 + 0 + 15_000 = 10_000
    decision = engine.check("alpha", "ACME", BUY, 151, 100.0)
    assert decision.reason == Reason.MAX_NET_NOTIONAL and decision.node == "alpha"
    assert sell(engine, 50) == OK                         # 5_000 - 0 + 0 + 5_000
    assert sell(engine, 51) == Reason.MAX_NET_NOTIONAL


def test_max_net_notional_does_not_let_working_sells_offset_a_buy(engine):
    engine.set_limits("alpha", Limits(max_net_notional=20_000.0))
    assert engine.submit(1, "alpha", "ACME", SELL, 100, 101.0).reason == OK  # WS = 10_100
    assert buy(engine, 200, 100.0) == OK                  # L - S + WB + N = 20_000
    assert buy(engine, 201, 100.0) == Reason.MAX_NET_NOTIONAL


def test_max_net_notional_message_names_the_values(engine):
    engine.set_limits("alpha", Limits(max_net_notional=10_000.0))
    message = engine.check("alpha", "ACME", BUY, 101, 100.0).message
    for word in ("net", "10100.00", "10000.00", "alpha"):
        assert word in message


# ----------------------------------------------- 10. open orders and rates


def test_max_open_orders_rejects_the_order_beyond_it_until_one_finishes(engine):
    engine.set_limits("alpha", Limits(max_open_orders=2))
    assert engine.submit(1, "alpha", "ACME", BUY, 1, 99.0).reason == OK
    assert engine.submit(2, "alpha", "ACME", BUY, 1, 98.0).reason == OK
    decision = engine.submit(3, "alpha", "ACME", BUY, 1, 97.0)
    assert decision.reason == Reason.MAX_OPEN_ORDERS and decision.node == "alpha"
    assert (decision.value, decision.limit) == (3.0, 2.0)
    engine.on_fill(1, 1, 99.0, "X-1")
    assert engine.submit(4, "alpha", "ACME", BUY, 1, 97.0).reason == OK


def test_max_open_orders_at_a_desk_counts_all_its_accounts(engine):
    engine.set_limits("desk", Limits(max_open_orders=2))
    engine.submit(1, "alpha", "ACME", BUY, 1, 99.0)
    engine.submit(2, "beta", "ACME", BUY, 1, 99.0)
    decision = engine.check("beta", "ACME", BUY, 1, 98.0)
    assert decision.reason == Reason.MAX_OPEN_ORDERS and decision.node == "desk"
    engine.on_cancel(1)
    assert buy(engine, 1, 98.0, account="beta") == OK


def test_max_open_orders_does_not_count_a_modify(engine):
    engine.set_limits("alpha", Limits(max_open_orders=1))
    engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)
    assert engine.modify(1, 20, 98.0).reason == OK


def test_order_rate_limit_is_a_sliding_window_of_accepted_new_orders(engine, clock):
    engine.set_limits("alpha", Limits(new_order_rate=(2, 1.0)))
    assert engine.submit(1, "alpha", "ACME", BUY, 1, 99.0).reason == OK       # T0
    assert engine.submit(2, "alpha", "ACME", BUY, 1, 98.0).reason == OK       # T0
    decision = engine.submit(3, "alpha", "ACME", BUY, 1, 97.0)
    assert decision.reason == Reason.ORDER_RATE_LIMIT and decision.node == "alpha"
    clock.advance(0.999999999)
    assert engine.submit(4, "alpha", "ACME", BUY, 1, 97.0).reason == Reason.ORDER_RATE_LIMIT
    clock.advance(1e-9)  # T0 + 1 s: the window (T0, T0 + 1] no longer holds the first two
    assert engine.submit(5, "alpha", "ACME", BUY, 1, 97.0).reason == OK


def test_order_rate_limit_counts_neither_rejected_orders_nor_checks(engine):
    engine.set_limits("alpha", Limits(new_order_rate=(2, 1.0)))
    assert engine.submit(1, "alpha", "ACME", BUY, 1, NAN).reason == Reason.INVALID_PRICE
    for _ in range(5):
        assert buy(engine, 1) == OK
    assert engine.submit(2, "alpha", "ACME", BUY, 1, 99.0).reason == OK
    assert engine.submit(3, "alpha", "ACME", BUY, 1, 98.0).reason == OK
    assert engine.submit(4, "alpha", "ACME", BUY, 1, 97.0).reason == Reason.ORDER_RATE_LIMIT


def test_order_rate_limit_counts_messages_so_cancelling_does_not_free_it(engine):
    engine.set_limits("alpha", Limits(new_order_rate=(2, 1.0)))
    engine.submit(1, "alpha", "ACME", BUY, 1, 99.0)
    engine.submit(2, "alpha", "ACME", BUY, 1, 98.0)
    engine.on_cancel(1)
    engine.on_cancel(2)
    assert buy(engine, 1) == Reason.ORDER_RATE_LIMIT


def test_order_rate_window_records_messages_only_while_its_limit_is_set(engine):
    for k in range(5):
        engine.submit(k + 1, "alpha", "ACME", BUY, 1, 90.0 + k)
    engine.set_limits("alpha", Limits(new_order_rate=(2, 1.0)))
    assert engine.submit(10, "alpha", "ACME", BUY, 1, 80.0).reason == OK
    assert engine.submit(11, "alpha", "ACME", BUY, 1, 81.0).reason == OK
    assert engine.submit(12, "alpha", "ACME", BUY, 1, 82.0).reason == Reason.ORDER_RATE_LIMIT


def test_order_rate_limit_at_a_desk_counts_all_its_accounts(engine):
    engine.set_limits("desk", Limits(new_order_rate=(2, 1.0)))
    engine.submit(1, "alpha", "ACME", BUY, 1, 99.0)
    engine.submit(2, "beta", "ACME", BUY, 1, 99.0)
    decision = engine.check("alpha", "ACME", BUY, 1, 98.0)
    assert decision.reason == Reason.ORDER_RATE_LIMIT and decision.node == "desk"
    assert buy(engine, 1, account="solo") == OK


def test_modify_rate_limit_is_a_sliding_window_of_accepted_modifies(engine, clock):
    engine.set_limits("alpha", Limits(modify_rate=(1, 1.0)))
    engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)
    assert engine.modify(1, 20).reason == OK
    decision = engine.modify(1, 30)
    assert decision.reason == Reason.MODIFY_RATE_LIMIT and decision.node == "alpha"
    assert engine.order(1).remaining == 20
    assert engine.submit(2, "alpha", "ACME", BUY, 10, 98.0).reason == OK  # new orders are not modifies
    clock.advance(1.0)
    assert engine.modify(1, 30).reason == OK


def test_modify_rate_limit_at_a_desk_counts_modifies_of_all_its_accounts_and_not_new_orders(engine):
    engine.set_limits("desk", Limits(modify_rate=(1, 1.0)))
    for k, account in enumerate(("alpha", "alpha", "beta"), start=1):
        assert engine.submit(k, account, "ACME", BUY, 10, 90.0 + k).reason == OK
    assert engine.modify(1, 5).reason == OK
    decision = engine.modify(3, 5)
    assert decision.reason == Reason.MODIFY_RATE_LIMIT and decision.node == "desk"


def test_cancel_rate_limit_is_a_sliding_window_of_accepted_cancel_requests(engine, clock):
    engine.set_limits("alpha", Limits(cancel_rate=(1, 1.0)))
    engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)
    engine.submit(2, "alpha", "ACME", BUY, 10, 98.0)
    assert engine.request_cancel(1).reason == OK
    decision = engine.request_cancel(2)
    assert decision.reason == Reason.CANCEL_RATE_LIMIT and decision.node == "alpha"
    clock.advance(1.0)
    assert engine.request_cancel(2).reason == OK


def test_cancel_rate_limit_at_a_desk_counts_all_its_accounts(engine):
    engine.set_limits("desk", Limits(cancel_rate=(1, 1.0)))
    engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)
    engine.submit(2, "beta", "ACME", BUY, 10, 99.0)
    assert engine.request_cancel(1).reason == OK
    decision = engine.request_cancel(2)
    assert decision.reason == Reason.CANCEL_RATE_LIMIT and decision.node == "desk"


def test_request_cancel_releases_no_exposure_until_the_venue_confirms(engine):
    engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)
    assert engine.request_cancel(1).reason == OK
    assert engine.aggregate("alpha").working_buy == 990.0
    assert engine.order(1).status == OrderStatus.WORKING
    assert engine.on_cancel(1) is True
    assert engine.aggregate("alpha").working_buy == 0.0


# -------------------------------------------------- 11. duplicate orders


def test_identical_order_inside_the_duplicate_window_rejects_duplicate_order(dup_engine, clock):
    assert dup_engine.submit(1, "alpha", "ACME", BUY, 100, 99.0).reason == OK
    clock.advance(0.5)
    assert dup_engine.submit(2, "alpha", "ACME", BUY, 100, 99.0).reason == Reason.DUPLICATE_ORDER
    clock.advance(0.499999999)
    assert dup_engine.submit(3, "alpha", "ACME", BUY, 100, 99.0).reason == Reason.DUPLICATE_ORDER
    clock.advance(1e-9)  # exactly 1 s after the first: no longer less than the window
    assert dup_engine.submit(4, "alpha", "ACME", BUY, 100, 99.0).reason == OK


def test_orders_differing_in_any_term_are_not_duplicates(dup_engine):
    assert dup_engine.submit(1, "alpha", "ACME", BUY, 100, 99.0).reason == OK
    assert dup_engine.submit(2, "alpha", "ACME", BUY, 100, 98.99).reason == OK
    assert dup_engine.submit(3, "alpha", "ACME", BUY, 101, 99.0).reason == OK
    assert dup_engine.submit(4, "beta", "ACME", BUY, 100, 99.0).reason == OK
    assert dup_engine.submit(5, "alpha", "ACME", SELL, 100, 101.0).reason == OK
    assert dup_engine.submit(6, "alpha", "ACME", SELL, 100, 101.0).reason == Reason.DUPLICATE_ORDER


def test_duplicate_window_runs_from_the_last_accepted_identical_order(dup_engine, clock):
    dup_engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    clock.advance(1.0)
    assert dup_engine.submit(2, "alpha", "ACME", BUY, 100, 99.0).reason == OK
    clock.advance(0.5)
    assert dup_engine.submit(3, "alpha", "ACME", BUY, 100, 99.0).reason == Reason.DUPLICATE_ORDER


def test_cancelled_order_still_counts_as_a_duplicate(dup_engine):
    dup_engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    dup_engine.on_cancel(1)
    assert dup_engine.submit(2, "alpha", "ACME", BUY, 100, 99.0).reason == Reason.DUPLICATE_ORDER


def test_market_orders_of_a_side_share_one_price_for_duplicates(dup_engine):
    assert dup_engine.submit(1, "alpha", "ACME", BUY, 100, None).reason == OK
    dup_engine.update_price("ACME", 101.0)
    assert dup_engine.submit(2, "alpha", "ACME", BUY, 100, None).reason == Reason.DUPLICATE_ORDER
    assert dup_engine.submit(3, "alpha", "ACME", BUY, 100, 101.0).reason == OK


def test_zero_duplicate_window_turns_the_guard_off(engine):
    assert engine.submit(1, "alpha", "ACME", BUY, 100, 99.0).reason == OK
    assert engine.submit(2, "alpha", "ACME", BUY, 100, 99.0).reason == OK


def test_modify_is_not_subject_to_the_duplicate_guard(dup_engine):
    dup_engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    dup_engine.submit(2, "alpha", "ACME", BUY, 50, 99.0)
    assert dup_engine.modify(2, 100).reason == OK


# ------------------------------------------------------- 12. self-match


def test_buy_at_or_above_the_accounts_lowest_working_sell_rejects_self_match(engine):
    engine.submit(1, "alpha", "ACME", SELL, 10, 100.5)
    engine.submit(2, "alpha", "ACME", SELL, 10, 101.0)
    assert buy(engine, 1, 100.5) == Reason.SELF_MATCH
    assert buy(engine, 1, 100.75) == Reason.SELF_MATCH
    assert buy(engine, 1, 100.49) == OK
    decision = engine.check("alpha", "ACME", BUY, 1, 102.0)
    assert decision.reason == Reason.SELF_MATCH and decision.limit == pytest.approx(100.5)
    assert "100.5" in decision.message


def test_sell_at_or_below_the_accounts_highest_working_buy_rejects_self_match(engine):
    engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)
    engine.submit(2, "alpha", "ACME", BUY, 10, 99.5)
    assert sell(engine, 1, 99.5) == Reason.SELF_MATCH
    assert sell(engine, 1, 99.25) == Reason.SELF_MATCH
    assert sell(engine, 1, 99.51) == OK


def test_market_order_crosses_any_working_order_on_the_other_side(engine):
    engine.submit(1, "alpha", "ACME", SELL, 10, 150.0)
    engine.submit(2, "beta", "ACME", BUY, 10, 50.0)
    assert buy(engine, 1, None) == Reason.SELF_MATCH
    assert sell(engine, 1, None, account="beta") == Reason.SELF_MATCH
    assert buy(engine, 1, None, account="beta") == OK


def test_working_market_order_is_crossed_by_any_order_on_the_other_side(engine):
    engine.submit(1, "alpha", "ACME", BUY, 10, None)
    engine.submit(2, "beta", "ACME", SELL, 10, None)
    assert sell(engine, 1, 150.0) == Reason.SELF_MATCH
    assert buy(engine, 1, 50.0, account="beta") == Reason.SELF_MATCH


def test_orders_of_another_account_never_self_match(engine):
    engine.submit(1, "alpha", "ACME", SELL, 10, 100.0)
    assert buy(engine, 10, 100.0, account="beta") == OK


def test_finished_orders_no_longer_self_match(engine):
    engine.submit(1, "alpha", "ACME", SELL, 10, 100.0)
    engine.on_cancel(1)
    assert buy(engine, 10, 100.0) == OK


def test_modify_into_the_accounts_own_other_side_rejects_self_match(engine):
    engine.submit(1, "alpha", "ACME", SELL, 10, 100.5)
    engine.submit(2, "alpha", "ACME", BUY, 10, 99.0)
    assert engine.modify(2, 10, 100.5).reason == Reason.SELF_MATCH
    assert engine.modify(2, 10, 100.0).reason == OK


def test_self_match_follows_the_best_level_of_a_deep_book_as_levels_come_and_go(engine):
    # Far more price levels than the few the engine scans from the top, some with several orders.
    rng = np.random.default_rng(7)
    sell_ticks = {oid: int(t) for oid, t in enumerate(rng.integers(10_001, 10_080, 120), start=1)}
    buy_ticks = {oid: int(t) for oid, t in enumerate(rng.integers(9_920, 10_000, 120), start=1_001)}
    for oid, ticks in sell_ticks.items():
        assert engine.submit(oid, "alpha", "ACME", SELL, 1, ticks / 100).reason == OK
    for oid, ticks in buy_ticks.items():
        assert engine.submit(oid, "alpha", "ACME", BUY, 1, ticks / 100).reason == OK
    working = {**sell_ticks, **buy_ticks}
    for oid in rng.permutation(list(working)):
        engine.on_cancel(int(oid))
        del working[int(oid)]
        sells = [t for o, t in working.items() if o in sell_ticks]
        buys = [t for o, t in working.items() if o in buy_ticks]
        if sells:
            assert buy(engine, 1, min(sells) / 100) == Reason.SELF_MATCH
            assert buy(engine, 1, (min(sells) - 1) / 100) == OK
        if buys:
            assert sell(engine, 1, max(buys) / 100) == Reason.SELF_MATCH
            assert sell(engine, 1, (max(buys) + 1) / 100) == OK
    assert buy(engine, 1, 100.5) == OK and sell(engine, 1, 99.5) == OK


def test_orders_booked_by_a_large_batch_are_all_found_by_id_afterwards(engine):
    # Enough orders to grow the order index many times over, with ids anywhere in 64 bits.
    rng = np.random.default_rng(3)
    n = 50_000
    ids = rng.choice(np.iinfo(np.int64).max, n, replace=False) * rng.choice([-1, 1], n)
    account = engine.account_id("solo")
    codes = engine.submit_batch(ids, np.full(n, account, np.int32), np.zeros(n, np.int32),
                                np.full(n, BUY, np.int8), np.ones(n, np.int64), np.full(n, 99.0))
    assert (codes == OK).all()
    assert engine.submit(int(ids[123]), "solo", "ACME", BUY, 1, 99.0).reason == Reason.DUPLICATE_ORDER_ID
    for oid in rng.permutation(ids)[:5_000]:
        assert engine.order(int(oid)).remaining == 1
        engine.on_cancel(int(oid))
    assert engine.aggregate("solo").open_orders == n - 5_000


def test_check_batch_over_a_deep_book_leaves_every_row_and_level_as_it_was(engine):
    rng = np.random.default_rng(11)
    for oid, ticks in enumerate(rng.integers(10_001, 10_060, 80), start=1):
        engine.submit(oid, "alpha", "ACME", SELL, 1, int(ticks) / 100)
    before = engine.to_state()
    n = 5_000
    sides = rng.choice(np.array([BUY, SELL], dtype=np.int8), n)
    # Buys below the sells (no self-match), sells anywhere above: new levels and existing ones.
    ticks = np.where(sides == BUY, rng.integers(9_900, 10_000, n), rng.integers(10_001, 10_200, n))
    account = engine.account_id("alpha")
    codes = engine.check_batch(np.full(n, account, np.int32), np.zeros(n, np.int32), sides,
                               np.ones(n, np.int64), ticks / 100)
    assert (codes == OK).all()
    assert engine.to_state() == before


def test_modify_does_not_see_the_order_it_replaces(engine):
    engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)
    assert engine.modify(1, 10, 101.0).reason == OK
    engine.submit(2, "alpha", "ACME", SELL, 10, 102.0)
    assert engine.modify(2, 10, 101.5).reason == OK
    assert engine.modify(2, 10, 101.0).reason == Reason.SELF_MATCH


# ------------------------------------- the first failing check is the reason


def test_invalid_side_is_reported_before_invalid_quantity_and_price(engine):
    assert engine.check("alpha", "ACME", 0, 0, NAN).reason == Reason.INVALID_SIDE


def test_invalid_quantity_is_reported_before_invalid_price(engine):
    assert engine.check("alpha", "ACME", BUY, 0, NAN).reason == Reason.INVALID_QUANTITY


def test_invalid_price_is_reported_before_duplicate_order_id(engine):
    engine.submit(1, "alpha", "ACME", BUY, 1, 99.0)
    assert engine.submit(1, "alpha", "ACME", BUY, 1, NAN).reason == Reason.INVALID_PRICE


def test_duplicate_order_id_is_reported_before_unknown_symbol_and_account(engine):
    engine.submit(1, "alpha", "ACME", BUY, 1, 99.0)
    assert engine.submit(1, "nobody", "NOPE", BUY, 1, 10.0).reason == Reason.DUPLICATE_ORDER_ID


def test_unknown_symbol_is_reported_before_unknown_account(engine):
    assert engine.check("nobody", "NOPE", BUY, 1, 10.0).reason == Reason.UNKNOWN_SYMBOL


def test_symbol_restricted_is_reported_before_unknown_account(engine):
    engine.add_instrument(Instrument("RSTR", reference_price=10.0, tradable=False))
    assert engine.check("nobody", "RSTR", BUY, 1, 10.0).reason == Reason.SYMBOL_RESTRICTED


def test_account_not_tradable_is_reported_before_symbol_not_permitted(engine):
    engine.set_allowed_symbols("desk", [])
    assert engine.check("desk", "ACME", BUY, 1, 100.0).reason == Reason.ACCOUNT_NOT_TRADABLE


def test_symbol_not_permitted_is_reported_before_lot_size(engine):
    engine.add_instrument(Instrument("LOT", lot_size=100, reference_price=10.0))
    engine.set_allowed_symbols("desk", ["ACME"])
    assert engine.check("alpha", "LOT", BUY, 150, 10.0).reason == Reason.SYMBOL_NOT_PERMITTED


def test_lot_size_is_reported_before_tick_size(engine):
    engine.add_instrument(Instrument("LOT", lot_size=100, reference_price=10.0))
    assert engine.check("alpha", "LOT", BUY, 150, 10.005).reason == Reason.LOT_SIZE


def test_tick_size_is_reported_before_the_trading_state(engine):
    engine.set_trading_state(TradingState.HALTED)
    assert buy(engine, 1, 100.015) == Reason.TICK_SIZE


def test_the_symbols_state_is_reported_before_the_accounts_state(engine):
    engine.set_trading_state(TradingState.HALTED, account="alpha")
    engine.set_trading_state(TradingState.HALTED, symbol="ACME")
    assert engine.check("alpha", "ACME", BUY, 1, 100.0).node is None
    engine.set_trading_state(TradingState.REDUCING, symbol="ACME")
    decision = engine.check("alpha", "ACME", BUY, 1, 100.0)
    assert decision.reason == Reason.REDUCE_ONLY and decision.node is None


def test_trading_states_on_the_path_are_checked_from_the_account_up(engine):
    engine.set_trading_state(TradingState.REDUCING, account="alpha")
    engine.set_trading_state(TradingState.HALTED)
    decision = engine.check("alpha", "ACME", BUY, 1, 100.0)
    assert (decision.reason, decision.node) == (Reason.REDUCE_ONLY, "alpha")
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    decision = engine.check("alpha", "ACME", SELL, 50, 100.0)  # reduces, so alpha lets it by
    assert (decision.reason, decision.node) == (Reason.TRADING_HALTED, "FIRM")


def test_trading_state_is_reported_before_the_reference_price(engine):
    engine.add_instrument(Instrument("NOREF"))
    engine.set_trading_state(TradingState.HALTED, account="alpha")
    assert engine.check("alpha", "NOREF", BUY, 1, 10.0).reason == Reason.TRADING_HALTED


def test_stale_reference_is_reported_before_price_out_of_range(engine, clock):
    engine.add_instrument(Instrument("S", reference_price=100.0, max_reference_age=5.0, max_price=110.0))
    clock.advance(6.0)
    assert engine.check("alpha", "S", BUY, 1, 120.0).reason == Reason.STALE_REFERENCE_PRICE


def test_price_out_of_range_is_reported_before_the_collar(engine):
    engine.add_instrument(Instrument("S", reference_price=100.0, max_price=100.03, collar_ticks_buy=5))
    assert engine.check("alpha", "S", BUY, 1, 100.10).reason == Reason.PRICE_OUT_OF_RANGE


def test_price_collar_is_reported_before_notional_overflow(engine):
    # tick 1.0, tick value 1e6 micros: 1e12 units at 1_010 ticks is 1.01e21 micros, beyond 2**62
    engine.add_instrument(Instrument("HUGE", tick_size=1.0, reference_price=1000.0, collar_ticks_buy=10))
    assert engine.check("alpha", "HUGE", BUY, 10**12, 1011.0).reason == Reason.PRICE_COLLAR
    assert engine.check("alpha", "HUGE", BUY, 10**12, 1010.0).reason == Reason.NOTIONAL_OVERFLOW


def test_notional_overflow_is_reported_before_the_order_size_limits(engine):
    engine.add_instrument(Instrument("HUGE", tick_size=1.0, reference_price=1000.0))
    engine.set_limits("alpha", Limits(max_order_quantity=1, max_order_notional=1.0))
    assert engine.check("alpha", "HUGE", BUY, 10**12, 1000.0).reason == Reason.NOTIONAL_OVERFLOW


def test_order_size_limits_are_reported_before_the_position_limit(engine):
    engine.set_position_limit("alpha", "ACME", max_long=5)
    engine.set_limits("alpha", Limits(max_order_quantity=10))
    assert buy(engine, 20) == Reason.MAX_ORDER_QUANTITY
    engine.set_limits("alpha", Limits(max_order_notional=100.0))
    assert buy(engine, 6) == Reason.MAX_ORDER_NOTIONAL


def test_position_limit_is_reported_before_gross_notional(engine):
    engine.set_position_limit("alpha", "ACME", max_long=5)
    engine.set_limits("alpha", Limits(max_gross_notional=100.0))
    assert buy(engine, 6) == Reason.POSITION_LIMIT


def test_gross_notional_is_reported_before_net_notional(engine):
    engine.set_limits("alpha", Limits(max_gross_notional=100.0, max_net_notional=100.0))
    assert buy(engine, 2) == Reason.MAX_GROSS_NOTIONAL


def test_net_notional_is_reported_before_open_orders(engine):
    engine.set_limits("alpha", Limits(max_net_notional=100.0, max_open_orders=0))
    assert buy(engine, 2) == Reason.MAX_NET_NOTIONAL
    assert buy(engine, 1) == Reason.MAX_OPEN_ORDERS


def test_open_orders_is_reported_before_the_order_rate(engine):
    engine.set_limits("alpha", Limits(max_open_orders=1, new_order_rate=(1, 10.0)))
    engine.submit(1, "alpha", "ACME", BUY, 1, 99.0)
    assert buy(engine, 1, 98.0) == Reason.MAX_OPEN_ORDERS


def test_order_rate_is_reported_before_duplicate_order(dup_engine):
    dup_engine.set_limits("alpha", Limits(new_order_rate=(1, 10.0)))
    dup_engine.submit(1, "alpha", "ACME", BUY, 1, 99.0)
    assert dup_engine.submit(2, "alpha", "ACME", BUY, 1, 99.0).reason == Reason.ORDER_RATE_LIMIT


def test_duplicate_order_is_reported_before_self_match(dup_engine):
    dup_engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)
    dup_engine.on_cancel(1)
    dup_engine.submit(2, "alpha", "ACME", SELL, 10, 98.0)
    # identical to order 1, accepted 0 s ago, and crossing the working sell at 98.00
    assert dup_engine.submit(3, "alpha", "ACME", BUY, 10, 99.0).reason == Reason.DUPLICATE_ORDER


def test_an_earlier_step_at_the_firm_is_reported_before_a_later_step_at_the_account(engine):
    engine.set_limits("alpha", Limits(max_gross_notional=100.0))
    engine.set_limits("FIRM", Limits(max_order_quantity=1))
    decision = engine.check("alpha", "ACME", BUY, 2, 100.0)
    assert (decision.reason, decision.node) == (Reason.MAX_ORDER_QUANTITY, "FIRM")


# ------------------------------------------------------------ utilisation


def test_utilisation_rises_toward_one_as_an_order_approaches_its_quantity_limit(engine):
    engine.set_limits("alpha", Limits(max_order_quantity=1000))
    for quantity, expected in ((250, 0.25), (500, 0.5), (999, 0.999), (1000, 1.0)):
        decision = engine.check("alpha", "ACME", BUY, quantity, 1.0)
        assert decision.accepted and decision.utilisation == pytest.approx(expected)


def test_utilisation_counts_exposure_already_used(engine):
    engine.set_limits("alpha", Limits(max_gross_notional=20_000.0))
    engine.submit(1, "alpha", "ACME", BUY, 100, 100.0)   # 10_000
    assert engine.check("alpha", "ACME", BUY, 50, 100.0).utilisation == pytest.approx(0.75)
    assert engine.check("alpha", "ACME", BUY, 100, 100.0).utilisation == pytest.approx(1.0)


def test_utilisation_is_the_highest_ratio_among_the_limits_on_the_path(engine):
    engine.set_limits("alpha", Limits(max_order_quantity=1000))       # 100 / 1000
    engine.set_limits("desk", Limits(max_order_notional=20_000.0))    # 10_000 / 20_000
    engine.set_limits("FIRM", Limits(max_open_orders=4))              # 1 / 4
    assert engine.check("alpha", "ACME", BUY, 100, 100.0).utilisation == pytest.approx(0.5)


def test_utilisation_includes_position_and_net_limits(engine):
    engine.set_position_limit("desk", "ACME", max_long=200)
    engine.submit(1, "beta", "ACME", BUY, 100, 99.0)
    assert engine.check("alpha", "ACME", BUY, 50, 99.0).utilisation == pytest.approx(0.75)
    engine.set_position_limit("desk", "ACME")
    engine.set_limits("alpha", Limits(max_net_notional=10_000.0))
    assert engine.check("alpha", "ACME", BUY, 80, 100.0).utilisation == pytest.approx(0.8)


def test_utilisation_is_zero_without_limits(engine):
    assert engine.check("alpha", "ACME", BUY, 10**6, 100.0).utilisation == 0.0


def test_utilisation_climbs_to_one_as_open_orders_fill_the_limit(engine):
    engine.set_limits("alpha", Limits(max_open_orders=4))
    seen = [engine.submit(k, "alpha", "ACME", BUY, 1, 90.0 + k).utilisation for k in range(1, 5)]
    assert seen == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert engine.submit(5, "alpha", "ACME", BUY, 1, 95.0).reason == Reason.MAX_OPEN_ORDERS


def test_engine_utilisation_reports_each_set_limit_of_a_node(engine):
    engine.set_limits("alpha", Limits(max_gross_notional=20_000.0, max_open_orders=4, new_order_rate=(10, 1.0)))
    engine.submit(1, "alpha", "ACME", BUY, 100, 100.0)
    report = engine.utilisation("alpha")
    assert report["max_gross_notional"] == pytest.approx((10_000.0, 20_000.0, 0.5))
    assert report["max_open_orders"] == pytest.approx((1, 4, 0.25))
    assert report["new_order_rate"] == pytest.approx((1, 10, 0.1))
    assert "max_net_notional" not in report


# ------------------------------------------------------- check() is a what-if


def test_check_changes_nothing(dup_engine, clock):
    engine = dup_engine
    engine.set_limits("alpha", Limits(new_order_rate=(2, 1.0), max_open_orders=3, max_gross_notional=50_000.0,
                                      max_daily_loss=10_000.0))
    engine.set_position_limit("alpha", "ACME", max_long=500)
    engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)
    fill(engine, SELL, 5, 100.0)
    before = engine.to_state()
    probes = [(BUY, 10, 98.0), (BUY, 10, 99.0), (SELL, 10, 99.0), (BUY, 600, 98.0), (BUY, 10, None),
              (SELL, 10, None), (BUY, 0, 98.0), (BUY, 10, 98.005), (SELL, 10, 101.0)]
    for side, quantity, price in probes:
        engine.check("alpha", "ACME", side, quantity, price)
    assert engine.to_state() == before
    # and what comes next behaves as if the checks never happened
    assert engine.submit(2, "alpha", "ACME", BUY, 10, 98.0).reason == OK
    assert engine.submit(3, "alpha", "ACME", SELL, 10, 101.0).reason == Reason.ORDER_RATE_LIMIT


def test_check_of_a_new_account_and_symbol_leaves_every_figure_unchanged(engine):
    engine.add_instrument(Instrument("OTHER", reference_price=10.0))
    aggregates = engine.aggregates().tolist()
    assert engine.check("beta", "OTHER", BUY, 10, 10.0).reason == OK
    assert engine.aggregates().tolist() == aggregates
    assert engine.position("beta", "OTHER").quantity == 0
    assert len(engine.positions()) == 0 and len(engine.open_orders()) == 0
    engine.add_account("beta-sub", parent="beta")   # beta still has no orders or positions
