"""Fills, marks and what they move: positions and P&L, aggregates, the daily loss and the execution throttle after the fact, and breach events."""
import struct

import numpy as np
import pytest

from riskcore import (
    BUY,
    SELL,
    Instrument,
    InvalidInputError,
    Limits,
    ManualClock,
    OrderStatus,
    Reason,
    RiskEngine,
    RiskError,
    StateError,
    TradingState,
    UnknownOrderError,
)
from tests.riskcore.world import T0, SECOND, NAN, INF, OK, build, buy, sell, fill


# --------------------------------------------------- daily loss (after the fact)


def test_loss_exactly_at_the_daily_limit_leaves_the_account_active(engine):
    engine.set_limits("alpha", Limits(max_daily_loss=1000.0))
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.update_price("ACME", 90.0)  # 100 * (90 - 100) = -1000: at the limit, not below it
    assert engine.trading_state("alpha") == TradingState.ACTIVE
    assert engine.drain_events() == []
    assert buy(engine, 1) == OK


def test_loss_beyond_the_daily_limit_after_a_price_move_makes_the_account_reduce_only(engine, clock):
    engine.set_limits("alpha", Limits(max_daily_loss=1000.0))
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    clock.advance(3.0)
    engine.update_price("ACME", 89.99)  # 100 * (89.99 - 100) = -1001 < -1000
    assert engine.trading_state("alpha") == TradingState.REDUCING
    assert engine.aggregate("alpha").daily_pnl == -1001.0
    decision = engine.check("alpha", "ACME", BUY, 1, 89.99)
    assert decision.reason == Reason.DAILY_LOSS_LIMIT and decision.node == "alpha"
    assert sell(engine, 100, 89.99) == OK
    assert sell(engine, 101, 89.99) == Reason.DAILY_LOSS_LIMIT
    events = engine.drain_events()
    assert [(e.time, e.account, e.symbol, e.reason) for e in events] == [
        (T0 + 3 * SECOND, "alpha", None, Reason.DAILY_LOSS_LIMIT)]
    assert engine.drain_events() == []


def test_daily_loss_breach_event_reports_money_in_currency_units(engine):
    # README: "Public getters return money as micros / 1e6."
    engine.set_limits("alpha", Limits(max_daily_loss=1000.0))
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.update_price("ACME", 89.99)
    (event,) = engine.drain_events()
    assert (event.value, event.limit) == (1001.0, 1000.0)


def test_realized_loss_from_a_fill_beyond_the_daily_limit_makes_the_account_reduce_only(engine):
    engine.set_limits("alpha", Limits(max_daily_loss=1000.0))
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.book_fill("alpha", "ACME", SELL, 100, 89.99)  # realized 100 * -10.01 = -1001
    assert engine.aggregate("alpha").realized == -1001.0
    assert engine.trading_state("alpha") == TradingState.REDUCING
    assert [e.reason for e in engine.drain_events()] == [Reason.DAILY_LOSS_LIMIT]


def test_lowering_the_daily_loss_limit_below_the_current_loss_takes_effect_at_once(engine):
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.update_price("ACME", 95.0)  # -500
    engine.set_limits("alpha", Limits(max_daily_loss=500.0))
    assert engine.trading_state("alpha") == TradingState.ACTIVE
    engine.set_limits("alpha", Limits(max_daily_loss=400.0))
    assert engine.trading_state("alpha") == TradingState.REDUCING
    assert [(e.account, e.reason) for e in engine.drain_events()] == [("alpha", Reason.DAILY_LOSS_LIMIT)]


def test_daily_loss_at_a_desk_makes_every_account_below_it_reduce_only(engine):
    engine.set_limits("desk", Limits(max_daily_loss=1000.0))
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.update_price("ACME", 89.99)
    assert engine.trading_state("desk") == TradingState.REDUCING
    assert engine.trading_state("alpha") == TradingState.ACTIVE
    decision = engine.check("beta", "ACME", BUY, 1, 89.99)
    assert decision.reason == Reason.DAILY_LOSS_LIMIT and decision.node == "desk"
    assert buy(engine, 1, 89.99, account="solo") == OK


def test_roll_day_returns_a_daily_loss_node_to_active_and_takes_a_new_baseline(engine):
    engine.set_limits("alpha", Limits(max_daily_loss=1000.0))
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.update_price("ACME", 89.99)
    assert engine.trading_state("alpha") == TradingState.REDUCING
    engine.roll_day()
    assert engine.trading_state("alpha") == TradingState.ACTIVE
    assert engine.aggregate("alpha").daily_pnl == 0.0
    assert buy(engine, 1, 89.99) == OK
    engine.update_price("ACME", 80.0)   # since the roll: 100 * (80 - 89.99) = -999
    assert engine.aggregate("alpha").daily_pnl == -999.0
    assert engine.trading_state("alpha") == TradingState.ACTIVE
    engine.update_price("ACME", 79.98)  # 100 * (79.98 - 89.99) = -1001
    assert engine.trading_state("alpha") == TradingState.REDUCING


def test_operator_reactivating_a_daily_loss_node_is_overruled_by_the_next_losing_price(engine):
    engine.set_limits("alpha", Limits(max_daily_loss=1000.0))
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.update_price("ACME", 89.99)
    engine.set_trading_state(TradingState.ACTIVE, account="alpha")
    assert buy(engine, 1, 89.99) == OK
    engine.update_price("ACME", 89.98)
    assert engine.trading_state("alpha") == TradingState.REDUCING


# ------------------------------------------------------- execution throttle


def test_fill_throttle_halts_the_account_on_the_fill_beyond_its_count(engine, clock):
    engine.set_limits("alpha", Limits(fill_throttle=(3, 1.0)))
    engine.submit(1, "alpha", "ACME", BUY, 100, 100.0)
    for k in range(3):
        engine.on_fill(1, 10, 100.0, f"F{k}")
    assert engine.trading_state("alpha") == TradingState.ACTIVE
    assert engine.drain_events() == []
    clock.advance(0.5)
    engine.on_fill(1, 10, 100.0, "F3")
    assert engine.trading_state("alpha") == TradingState.HALTED
    assert engine.position("alpha", "ACME").quantity == 40  # the fill itself is never lost
    decision = engine.check("alpha", "ACME", BUY, 1, 100.0)
    assert decision.reason == Reason.EXECUTION_THROTTLE and decision.node == "alpha"
    assert [(e.time, e.account, e.reason) for e in engine.drain_events()] == [
        (T0 + SECOND // 2, "alpha", Reason.EXECUTION_THROTTLE)]


def test_fill_throttle_counts_only_fills_inside_the_sliding_window(engine, clock):
    engine.set_limits("alpha", Limits(fill_throttle=(2, 1.0)))
    engine.submit(1, "alpha", "ACME", BUY, 100, 100.0)
    engine.on_fill(1, 1, 100.0, "F0")   # T0
    clock.advance(0.5)
    engine.on_fill(1, 1, 100.0, "F1")   # T0 + 0.5
    clock.advance(0.5)
    engine.on_fill(1, 1, 100.0, "F2")   # T0 + 1.0: window (T0, T0 + 1] holds 2 fills
    assert engine.trading_state("alpha") == TradingState.ACTIVE
    clock.advance(0.4)
    engine.on_fill(1, 1, 100.0, "F3")   # T0 + 1.4: window (T0 + 0.4, T0 + 1.4] holds 3
    assert engine.trading_state("alpha") == TradingState.HALTED


def test_only_set_trading_state_re_enables_a_throttled_account(engine, clock):
    engine.set_limits("alpha", Limits(fill_throttle=(1, 1.0)))
    engine.submit(1, "alpha", "ACME", BUY, 100, 100.0)
    engine.on_fill(1, 1, 100.0, "F0")
    engine.on_fill(1, 1, 100.0, "F1")
    engine.roll_day()
    clock.advance(60.0)
    assert buy(engine, 1) == Reason.EXECUTION_THROTTLE
    engine.set_trading_state(TradingState.ACTIVE, account="alpha")
    assert buy(engine, 1) == OK


def test_fill_throttle_on_a_desk_counts_fills_of_all_its_accounts(engine):
    engine.set_limits("desk", Limits(fill_throttle=(2, 10.0)))
    engine.book_fill("alpha", "ACME", BUY, 1, 100.0)
    engine.book_fill("beta", "ACME", BUY, 1, 100.0)
    assert engine.trading_state("desk") == TradingState.ACTIVE
    engine.book_fill("alpha", "ACME", BUY, 1, 100.0)
    assert engine.trading_state("desk") == TradingState.HALTED
    decision = engine.check("beta", "ACME", BUY, 1, 100.0)
    assert decision.reason == Reason.EXECUTION_THROTTLE and decision.node == "desk"


def test_a_fill_visits_the_path_from_the_account_up(engine):
    engine.set_limits("alpha", Limits(fill_throttle=(0, 10.0)))
    engine.set_limits("desk", Limits(fill_throttle=(0, 10.0)))
    engine.set_limits("FIRM", Limits(fill_throttle=(0, 10.0)))
    engine.book_fill("alpha", "ACME", BUY, 1, 100.0)
    assert [e.account for e in engine.drain_events()] == ["alpha", "desk", "FIRM"]


def test_a_fill_checks_the_throttle_before_the_daily_loss_at_each_node(engine):
    # The fill trips both; once the throttle has HALTED the node it is no longer
    # ACTIVE, so the daily loss must not move it (or record a breach).
    engine.book_fill("alpha", "ACME", BUY, 100, 100.0)
    engine.set_limits("alpha", Limits(fill_throttle=(0, 10.0), max_daily_loss=10.0))
    engine.book_fill("alpha", "ACME", SELL, 100, 99.0)  # realized -100
    assert [e.reason for e in engine.drain_events()] == [Reason.EXECUTION_THROTTLE]
    assert engine.trading_state("alpha") == TradingState.HALTED


# ------------------------------------------------------------- events


def test_partial_fill_reduces_the_remaining_quantity_and_keeps_the_order_working(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    assert engine.on_fill(1, 40, 99.0, "X-1") is True
    info = engine.order(1)
    assert (info.remaining, info.filled, info.status) == (60, 40, OrderStatus.WORKING)
    assert engine.position("alpha", "ACME").quantity == 40
    agg = engine.aggregate("alpha")
    assert (agg.working_buy, agg.open_orders, agg.long) == (5_940.0, 1, 4_000.0)  # 60 * 99; 40 * ref 100
    assert engine.verify()


def test_fill_of_the_whole_remaining_quantity_finishes_the_order(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.on_fill(1, 40, 99.0, "X-1")
    engine.on_fill(1, 60, 98.0, "X-2")
    info = engine.order(1)
    assert (info.remaining, info.filled, info.status) == (0, 100, OrderStatus.FILLED)
    agg = engine.aggregate("alpha")
    assert (agg.working_buy, agg.open_orders) == (0.0, 0)
    assert engine.position("alpha", "ACME").quantity == 100
    assert engine.verify()


def test_fill_larger_than_the_remaining_quantity_is_applied_in_full_and_finishes_the_order(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.on_fill(1, 150, 99.0, "X-1")
    info = engine.order(1)
    assert (info.remaining, info.filled, info.status) == (0, 150, OrderStatus.FILLED)
    assert engine.position("alpha", "ACME").quantity == 150
    assert engine.aggregate("desk").working_buy == 0.0
    assert engine.aggregate("desk").open_orders == 0
    assert engine.verify()


def test_fill_on_a_filled_order_is_still_applied_to_the_position(engine):
    engine.submit(1, "alpha", "ACME", SELL, 100, 101.0)
    engine.on_fill(1, 100, 101.0, "X-1")
    assert engine.on_fill(1, 10, 101.0, "X-2") is True
    assert engine.position("alpha", "ACME").quantity == -110
    assert engine.order(1).status == OrderStatus.FILLED
    assert engine.verify()


def test_fill_after_a_cancel_is_applied_to_the_position_and_leaves_nothing_working(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.on_cancel(1)
    assert engine.on_fill(1, 30, 99.0, "X-1") is True
    assert engine.position("alpha", "ACME").quantity == 30
    assert engine.order(1).status == OrderStatus.CANCELLED
    agg = engine.aggregate("alpha")
    assert (agg.working_buy, agg.open_orders) == (0.0, 0)
    assert engine.verify()


def test_fill_after_a_cancel_leaves_the_order_with_nothing_remaining(engine):
    # README: "A fill on an order that is no longer working ... is still applied to
    # the position in full ...; the order's remaining goes to 0."
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.on_cancel(1)
    engine.on_fill(1, 30, 99.0, "X-1")
    assert engine.order(1).remaining == 0


def test_fill_with_a_repeated_exec_id_is_ignored_and_returns_false(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    assert engine.on_fill(1, 10, 99.0, "X-1") is True
    assert engine.on_fill(1, 10, 99.0, "X-1") is False
    info = engine.order(1)
    assert (info.remaining, info.filled) == (90, 10)
    assert engine.position("alpha", "ACME").quantity == 10


def test_exec_ids_are_shared_by_order_fills_and_booked_fills(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    assert engine.book_fill("alpha", "ACME", BUY, 10, 99.0, exec_id="X-1") is True
    assert engine.on_fill(1, 10, 99.0, "X-1") is False
    assert engine.book_fill("alpha", "ACME", BUY, 10, 99.0, exec_id="X-1") is False
    assert engine.position("alpha", "ACME").quantity == 10
    assert engine.order(1).remaining == 100


def test_booked_fills_without_an_exec_id_all_apply(engine):
    assert engine.book_fill("alpha", "ACME", BUY, 10, 99.0) is True
    assert engine.book_fill("alpha", "ACME", BUY, 10, 99.0) is True
    assert engine.position("alpha", "ACME").quantity == 20


@pytest.mark.parametrize("finish, status", [
    ("on_cancel", OrderStatus.CANCELLED), ("on_expire", OrderStatus.EXPIRED), ("on_reject", OrderStatus.REJECTED)])
def test_cancel_expire_and_reject_release_the_remaining_exposure_once(engine, finish, status):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.submit(2, "beta", "ACME", SELL, 10, 101.0)
    engine.on_fill(1, 40, 99.0, "X-1")
    assert getattr(engine, finish)(1) is True
    assert engine.order(1).status == status
    alpha, desk = engine.aggregate("alpha"), engine.aggregate("desk")
    assert (alpha.working_buy, alpha.open_orders) == (0.0, 0)
    assert (desk.working_buy, desk.working_sell, desk.open_orders) == (0.0, 1_010.0, 1)
    assert engine.position("alpha", "ACME").quantity == 40
    before = engine.to_state()
    for again in ("on_cancel", "on_expire", "on_reject"):
        assert getattr(engine, again)(1) is False
    assert engine.to_state() == before
    assert engine.verify()


@pytest.mark.parametrize("finish", ["on_cancel", "on_expire", "on_reject"])
def test_finishing_a_filled_order_changes_nothing_and_returns_false(engine, finish):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.on_fill(1, 100, 99.0, "X-1")
    before = engine.to_state()
    assert getattr(engine, finish)(1) is False
    assert engine.order(1).status == OrderStatus.FILLED
    assert engine.to_state() == before


@pytest.mark.parametrize("call", [
    lambda e: e.on_fill(999, 1, 100.0, "X-9"),
    lambda e: e.on_cancel(999),
    lambda e: e.on_expire(999),
    lambda e: e.on_reject(999),
    lambda e: e.order(999),
], ids=["on_fill", "on_cancel", "on_expire", "on_reject", "order"])
def test_events_for_an_order_id_never_booked_raise_unknown_order_error(engine, call):
    before = engine.to_state()
    with pytest.raises(UnknownOrderError) as info:
        call(engine)
    assert isinstance(info.value, KeyError) and isinstance(info.value, RiskError)
    assert "999" in str(info.value)
    assert engine.to_state() == before


@pytest.mark.parametrize("quantity, price", [
    (0, 99.0), (-5, 99.0), (1.5, 99.0), (NAN, 99.0), (10, NAN), (10, 0.0), (10, -1.0), (10, INF)])
def test_fill_with_a_bad_quantity_or_price_raises_invalid_input_error_and_changes_nothing(engine, quantity, price):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    before = engine.to_state()
    with pytest.raises(InvalidInputError):
        engine.on_fill(1, quantity, price, "X-1")
    assert engine.to_state() == before
    assert engine.on_fill(1, 10, 99.0, "X-1") is True  # the exec id was not used up


def test_roll_day_keeps_working_orders(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.submit(2, "alpha", "ACME", BUY, 10, 98.0)
    engine.on_fill(2, 10, 98.0, "X-1")
    engine.roll_day()
    assert engine.order(1).status == OrderStatus.WORKING
    assert engine.on_fill(1, 10, 99.0, "X-2") is True
    assert engine.order(1).remaining == 90
    assert engine.on_cancel(1) is True
    assert engine.aggregate().working_buy == 0.0
    assert engine.verify()


def test_roll_day_compacts_interleaved_orders_and_keeps_each_working_one_findable(engine):
    # Orders 1..40, every third one filled before the roll: the 27 working ones move down the table.
    for oid in range(1, 41):
        assert engine.submit(oid, "alpha", "ACME", BUY, oid, 99.0).accepted
    for oid in range(3, 41, 3):
        engine.on_fill(oid, oid, 99.0, f"X-{oid}")
    engine.roll_day()
    for oid in range(1, 41):
        if oid % 3 == 0:
            with pytest.raises(UnknownOrderError):
                engine.order(oid)
        else:
            assert engine.order(oid).remaining == oid
    assert engine.aggregate("alpha").open_orders == 27
    assert engine.on_cancel(40) is True and engine.on_fill(1, 1, 99.0, "Y-1") is True
    assert engine.submit(41, "alpha", "ACME", BUY, 1, 99.0).accepted
    assert engine.order(41).remaining == 1
    assert engine.verify()


def test_reserve_orders_changes_no_decision_and_the_tables_grow_past_it(clock):
    sized, unsized = build(clock), build(clock)
    sized.reserve_orders(8)
    for engine in (sized, unsized):
        for oid in range(1, 21):        # 20 orders: past the 8 reserved
            engine.submit(oid, "alpha", "ACME", BUY if oid % 2 else SELL, 10, 99.0 if oid % 2 else 101.0)
        engine.on_fill(5, 10, 99.0, "X-5")
        engine.roll_day()
        engine.reserve_orders(0)
    assert sized.to_state() == unsized.to_state()
    assert sized.verify()


@pytest.mark.parametrize("n", [-1, 1.5, "10", None, True, 2**31])
def test_reserve_orders_with_a_bad_count_raises_invalid_input_error(engine, n):
    with pytest.raises(InvalidInputError, match="reserve_orders"):
        engine.reserve_orders(n)


@pytest.mark.parametrize("tick, price, expected", [
    (0.01, 100.005, 100.01), (0.01, 100.004, 100.0), (0.25, 100.125, 100.25), (0.25, 100.124, 100.0),
    (0.25, 100.375, 100.5)])
def test_fill_prices_are_rounded_to_the_nearest_tick_half_away_from_zero(engine, tick, price, expected):
    engine.add_instrument(Instrument("R", tick_size=tick, reference_price=100.0))
    engine.book_fill("alpha", "R", BUY, 1, price)
    assert engine.position("alpha", "R").average_price == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("tick, price, expected", [
    (0.01, 100.005, 100.01), (0.01, 100.004, 100.0), (0.25, 100.125, 100.25), (0.25, 100.124, 100.0),
    (0.25, 100.375, 100.5)])
def test_reference_prices_are_rounded_to_the_nearest_tick_half_away_from_zero(engine, tick, price, expected):
    engine.add_instrument(Instrument("R", tick_size=tick))
    engine.update_price("R", price)
    assert engine.reference_price("R") == pytest.approx(expected, abs=1e-9)


# ------------------------------------------------------ positions and P&L


def test_average_cost_of_two_buys_is_their_quantity_weighted_price(engine):
    fill(engine, BUY, 100, 10.00)
    fill(engine, BUY, 100, 10.50)
    position = engine.position("alpha", "ACME")
    assert (position.quantity, position.realized) == (200, 0.0)
    assert position.average_price == pytest.approx(10.25)   # (1_000 + 1_050) * 100 / 200 ticks


def test_average_cost_keeps_fractions_of_a_tick(engine):
    fill(engine, BUY, 1, 10.00)
    fill(engine, BUY, 2, 10.01)     # cost 3_002 ticks / 3 = 1_000.67 ticks
    assert engine.position("alpha", "ACME").average_price == pytest.approx(30.02 / 3)
    (row,) = engine.positions()
    assert row["average_price"] == pytest.approx(30.02 / 3)


def test_partial_close_realizes_against_the_average_cost(engine):
    fill(engine, BUY, 100, 10.00)
    fill(engine, BUY, 100, 10.50)
    fill(engine, SELL, 50, 11.00)   # 50 * (11.00 - 10.25)
    position = engine.position("alpha", "ACME")
    assert (position.quantity, position.realized) == (150, 37.5)
    assert position.average_price == pytest.approx(10.25)


def test_partial_close_of_a_long_removes_cost_truncated_to_the_micro_unit(engine):
    fill(engine, BUY, 1, 10.00)
    fill(engine, BUY, 2, 10.01)     # tick value 10_000 micros: cost 10_000_000 + 20_020_000 = 30_020_000
    fill(engine, SELL, 2, 10.00)    # removed = 30_020_000 * 2 / 3 = 20_013_333.3 -> 20_013_333
    position = engine.position("alpha", "ACME")
    assert (position.quantity, position.realized) == (1, -0.013333)     # 20_000_000 - 20_013_333
    assert position.average_price == pytest.approx(10.006667)           # 10_006_667 micros left


def test_partial_close_of_a_short_removes_cost_truncated_toward_zero(engine):
    fill(engine, SELL, 1, 10.00)
    fill(engine, SELL, 2, 10.01)    # cost -30_020_000 micros
    fill(engine, BUY, 2, 10.00)     # removed = tdiv(-60_040_000, 3) = -20_013_333 (floor would be -20_013_334)
    position = engine.position("alpha", "ACME")
    assert (position.quantity, position.realized) == (-1, 0.013333)     # -20_000_000 + 20_013_333
    assert position.average_price == pytest.approx(10.006667)


def test_realized_pnl_is_exact_to_the_micro_unit_where_whole_ticks_would_truncate():
    # Issue 11, case 5: three contracts at 4000.00, 4000.25, 4000.25 (tick value $12.50),
    # one sold at 4001.00: average cost gives 4 * 12.50 - 0.6667 * 12.50 = 41.666667, not 50.00.
    engine = RiskEngine(clock=ManualClock(0))
    engine.add_instrument(Instrument("ES", tick_size=0.25, multiplier=50.0))
    engine.add_account("alpha")
    for price in (4000.00, 4000.25, 4000.25):
        engine.book_fill("alpha", "ES", BUY, 1, price)
    engine.book_fill("alpha", "ES", SELL, 1, 4001.00)
    assert engine.position("alpha", "ES").realized == 41.666667
    engine.book_fill("alpha", "ES", SELL, 2, 4001.00)     # the rest: the whole round trip is exact
    assert engine.position("alpha", "ES").realized == 125.0
    assert engine.verify()


def test_fill_through_zero_closes_the_position_and_opens_the_rest_at_the_fill_price(engine):
    fill(engine, BUY, 100, 10.00)
    fill(engine, SELL, 150, 11.00)  # closes 100 at +1.00, opens short 50 at 11.00
    position = engine.position("alpha", "ACME")
    assert (position.quantity, position.realized) == (-50, 100.0)
    assert position.average_price == pytest.approx(11.00)
    fill(engine, BUY, 80, 10.50)    # closes 50 at +0.50, opens long 30 at 10.50
    position = engine.position("alpha", "ACME")
    assert (position.quantity, position.realized) == (30, 125.0)
    assert position.average_price == pytest.approx(10.50)


def test_short_position_realizes_a_profit_when_bought_back_lower(engine):
    fill(engine, SELL, 100, 20.00)
    fill(engine, BUY, 40, 18.00)    # 40 * (20.00 - 18.00)
    position = engine.position("alpha", "ACME")
    assert (position.quantity, position.realized) == (-60, 80.0)
    assert position.average_price == pytest.approx(20.00)


def test_unrealized_pnl_is_the_position_marked_at_the_reference(engine):
    fill(engine, SELL, 100, 20.00)
    fill(engine, BUY, 40, 18.00)
    engine.update_price("ACME", 19.00)
    assert engine.position("alpha", "ACME").unrealized == 60.0   # (-60 * 1_900 + 120_000) ticks
    fill(engine, BUY, 100, 10.00, account="beta")
    engine.update_price("ACME", 10.25)
    assert engine.position("beta", "ACME").unrealized == 25.0
    assert engine.aggregate("beta").unrealized == 25.0


def test_closing_the_whole_position_leaves_no_cost_behind(engine):
    fill(engine, BUY, 1, 10.01)
    fill(engine, BUY, 1, 10.02)
    fill(engine, BUY, 1, 10.04)
    fill(engine, SELL, 3, 10.00)    # (3_000 - 3_007) ticks
    position = engine.position("alpha", "ACME")
    assert (position.quantity, position.realized, position.unrealized) == (0, -0.07, 0.0)
    fill(engine, BUY, 1, 5.00)
    assert engine.position("alpha", "ACME").average_price == pytest.approx(5.00)


def test_contract_multiplier_scales_notional_and_pnl(engine):
    # ES: tick 0.25 * multiplier 50 = 12.50 per tick per contract
    engine.add_instrument(Instrument("ES", tick_size=0.25, multiplier=50.0, reference_price=5000.0))
    fill(engine, BUY, 2, 5000.00, symbol="ES")
    engine.update_price("ES", 5001.25)
    assert engine.position("alpha", "ES").unrealized == 125.0         # 2 * 5 ticks * 12.50
    assert engine.aggregate("alpha").long == 500_125.0                # 2 * 5_001.25 * 50
    fill(engine, SELL, 1, 5002.50, symbol="ES")
    assert engine.position("alpha", "ES").realized == 125.0           # 1 * 10 ticks * 12.50


def test_position_without_a_reference_has_zero_unrealized_pnl_and_notional(engine):
    engine.add_instrument(Instrument("NOREF", require_reference=False))
    fill(engine, BUY, 10, 5.00, symbol="NOREF")
    position = engine.position("alpha", "NOREF")
    assert (position.quantity, position.unrealized) == (10, 0.0)
    assert position.average_price == pytest.approx(5.00)
    agg = engine.aggregate("alpha")
    assert (agg.long, agg.short, agg.gross, agg.unrealized) == (0.0, 0.0, 0.0, 0.0)
    engine.update_price("NOREF", 6.00)
    assert engine.aggregate("alpha").long == 60.0
    assert engine.aggregate("alpha").unrealized == 10.0
    assert engine.verify()


def test_position_of_a_parent_is_the_net_of_its_accounts(engine):
    fill(engine, BUY, 100, 10.00, account="alpha")
    fill(engine, SELL, 30, 11.00, account="beta")
    desk = engine.position("desk", "ACME")
    assert desk.quantity == 70
    assert desk.average_price == pytest.approx((100_000 - 33_000) / 70 * 0.01)


def test_positions_lists_the_leaf_positions(engine):
    fill(engine, BUY, 100, 10.00, account="alpha")
    fill(engine, SELL, 30, 11.00, account="beta")
    rows = {(int(r["account"]), int(r["symbol"])): (int(r["quantity"]), float(r["realized"]))
            for r in engine.positions()}
    acme = engine.symbol_id("ACME")
    assert rows == {(engine.account_id("alpha"), acme): (100, 0.0), (engine.account_id("beta"), acme): (-30, 0.0)}


# ------------------------------------------------------------ aggregates


def test_aggregates_net_positions_up_the_tree_and_add_working_notional(engine):
    engine.add_instrument(Instrument("OTHER", reference_price=10.0))
    fill(engine, BUY, 100, 100.0, account="alpha")            # alpha long 10_000
    fill(engine, SELL, 30, 100.0, account="beta")             # beta short 3_000
    fill(engine, SELL, 50, 10.0, account="solo", symbol="OTHER")  # solo short 500
    engine.submit(1, "alpha", "ACME", BUY, 10, 99.0)          # 990
    engine.submit(2, "beta", "ACME", SELL, 20, 101.0)         # 2_020
    fields = lambda a: (a.long, a.short, a.net, a.working_buy, a.working_sell, a.gross, a.open_orders)
    assert fields(engine.aggregate("alpha")) == (10_000.0, 0.0, 10_000.0, 990.0, 0.0, 10_990.0, 1)
    assert fields(engine.aggregate("beta")) == (0.0, 3_000.0, -3_000.0, 0.0, 2_020.0, 5_020.0, 1)
    # the desk nets alpha +100 and beta -30 into +70 before valuing: long 7_000, short 0
    assert fields(engine.aggregate("desk")) == (7_000.0, 0.0, 7_000.0, 990.0, 2_020.0, 10_010.0, 2)
    assert fields(engine.aggregate("solo")) == (0.0, 500.0, -500.0, 0.0, 0.0, 500.0, 0)
    assert fields(engine.aggregate()) == (7_000.0, 500.0, 6_500.0, 990.0, 2_020.0, 10_510.0, 2)
    assert engine.verify()
    engine.update_price("ACME", 101.0)
    assert (engine.aggregate("alpha").long, engine.aggregate("alpha").unrealized) == (10_100.0, 100.0)
    assert (engine.aggregate("beta").short, engine.aggregate("beta").unrealized) == (3_030.0, -30.0)
    assert (engine.aggregate("desk").long, engine.aggregate("desk").unrealized) == (7_070.0, 70.0)
    assert engine.aggregate().unrealized == 70.0
    assert engine.verify()


def test_realized_and_daily_pnl_of_a_node_are_the_sums_over_its_accounts(engine):
    fill(engine, BUY, 10, 100.0, account="alpha")
    fill(engine, SELL, 10, 101.0, account="alpha")    # +10
    fill(engine, SELL, 10, 100.0, account="beta")
    fill(engine, BUY, 10, 103.0, account="beta")      # -30
    fill(engine, BUY, 10, 100.0, account="solo")
    engine.update_price("ACME", 100.5)                # solo unrealized +5
    assert engine.aggregate("desk").realized == -20.0
    assert engine.aggregate().realized == -20.0
    assert engine.aggregate().unrealized == 5.0
    assert engine.aggregate().daily_pnl == -15.0
    engine.roll_day()
    engine.update_price("ACME", 101.0)
    assert engine.aggregate().daily_pnl == 5.0
    assert engine.verify()


def test_aggregates_array_matches_a_full_recompute_after_a_busy_session(engine, clock):
    engine.add_instrument(Instrument("OTHER", reference_price=10.0))
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.submit(2, "beta", "OTHER", SELL, 50, 10.5)
    engine.submit(3, "solo", "ACME", BUY, 10, None)
    engine.on_fill(1, 30, 99.0, "X-1")
    engine.on_fill(2, 80, 10.4, "X-2")                # overfill
    engine.modify(1, 50, 98.5)
    engine.update_price("ACME", 97.0)
    engine.on_expire(3)
    engine.on_fill(3, 10, 101.0, "X-3")               # late fill after expiry
    engine.book_fill("alpha", "OTHER", BUY, 7, 9.9)
    engine.update_prices([engine.symbol_id("ACME"), engine.symbol_id("OTHER")], [98.0, 11.0])
    assert engine.verify()
    kept, fresh = engine.aggregates(), engine.recompute()
    for field in kept.dtype.names:
        assert np.array_equal(kept[field], fresh[field]), field
    assert engine.aggregate("alpha").working_buy == 4_925.0     # 50 * 98.50
    assert engine.aggregate().open_orders == 1


def test_corrupted_kept_aggregate_fails_verify_in_from_state(engine):
    fill(engine, BUY, 100, 100.0)
    state = engine.to_state()
    pattern = struct.pack("=q", 10_000 * 10**6)       # someone's long notional of 10_000.00, in micros
    assert pattern in state["nodes"]
    state["nodes"] = state["nodes"].replace(pattern, struct.pack("=q", 9_999 * 10**6), 1)
    with pytest.raises(StateError):
        RiskEngine.from_state(state, clock=ManualClock(T0))
