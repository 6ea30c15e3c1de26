"""The numeric domain (bounds.pxd, README "Bounds"): every entry point at its bound
and one past it, and the fail-open cases of issue 11 that this domain closes.

Worlds here use a one-micro-unit tick value where capacity is the point (tick
size 1e-6, multiplier 1), so a quantity times a price in ticks is the money in
micro-units and 2^62 is reached with round numbers: 2^22 units at 2^40 ticks.
"""
import numpy as np
import pytest

from riskcore import (
    BUY,
    SELL,
    CapacityError,
    Instrument,
    InvalidConfigError,
    InvalidInputError,
    Limits,
    ManualClock,
    Reason,
    RiskEngine,
    TradingState,
)
from riskcore import config as cfg
from riskcore import engine as compiled

CAP = 2**62
MICRO = 1e-6


def world(reference_price=100.0, tick_size=0.01, multiplier=1.0):
    """FIRM - desk - {alpha, beta}; one instrument SYM."""
    engine = RiskEngine(clock=ManualClock(0))
    engine.add_instrument(Instrument("SYM", tick_size=tick_size, multiplier=multiplier,
                                     reference_price=reference_price, require_reference=False))
    engine.add_account("desk")
    engine.add_account("alpha", parent="desk")
    engine.add_account("beta", parent="desk")
    return engine


def micro_world(reference_price=None):
    """As :func:`world`, with a tick of one micro-unit: q * ticks is the money in micro-units."""
    return world(reference_price=reference_price, tick_size=MICRO)


def snapshot(engine):
    """Everything a refused call must leave as it was."""
    return (engine.aggregates().tolist(), engine.positions().tolist(), engine.reference_price("SYM"),
            engine.trading_state(symbol="SYM"))


# ------------------------------------------------------------------ the constants

def test_python_bounds_equal_the_compiled_ones():
    assert cfg.MAX_QUANTITY == compiled.MAX_ORDER_QUANTITY == 10**12
    assert cfg.MAX_PRICE_TICKS == compiled.PRICE_TICKS_LIMIT == 10**15
    assert cfg.CAPACITY == compiled.CAPACITY_MICROS == CAP


# ------------------------------------------------------------- issue 11, case 1

def test_fill_whose_money_passes_capacity_is_refused_and_halts_the_account():
    engine = world()
    engine.set_limits("alpha", Limits(max_gross_notional=1000))
    # 184_467_440_738 at 100.00 is 1.8e19 micro-units: it wrapped the long notional to 90.45.
    with pytest.raises(CapacityError, match="alpha"):
        engine.book_fill("alpha", "SYM", BUY, 184_467_440_738, 100.0, "x")
    assert engine.position("alpha", "SYM").quantity == 0
    assert engine.aggregate("alpha").long == 0.0
    assert engine.trading_state(account="alpha") == TradingState.HALTED
    assert engine.check("alpha", "SYM", BUY, 5, 100.0).reason == Reason.TRADING_HALTED
    [event] = engine.drain_events()
    assert (event.account, event.reason, event.limit) == ("alpha", Reason.NOTIONAL_OVERFLOW, CAP / 1e6)
    assert engine.book_fill("alpha", "SYM", BUY, 1, 100.0, "x") is True    # the refused fill used no exec id


def test_mark_that_would_take_a_total_past_capacity_is_refused_and_halts_the_symbol():
    engine = world()
    engine.set_limits("FIRM", Limits(max_order_quantity=10**12))
    assert engine.submit(1, "alpha", "SYM", BUY, 40_000_000_000, 100.0).accepted   # 4e12 in money
    engine.on_fill(1, 40_000_000_000, 100.0, "f")
    before = engine.aggregates().tolist()
    with pytest.raises(CapacityError, match="SYM"):
        engine.update_price("SYM", 300.0)       # 1.2e13 in money: it wrapped FIRM long to -6.45e12
    assert engine.aggregates().tolist() == before
    assert engine.reference_price("SYM") == 100.0
    assert engine.trading_state(symbol="SYM") == TradingState.HALTED
    [event] = engine.drain_events()
    assert (event.symbol, event.reason) == ("SYM", Reason.NOTIONAL_OVERFLOW)
    assert engine.verify()


def test_fills_that_would_sum_past_capacity_are_refused_and_verify_holds():
    engine = world(tick_size=1.0)
    engine.set_trading_state(TradingState.ACTIVE)
    refused = 0
    for n in range(3):      # three fills of 10^12 at 10^9: each 10^21 in tick-units, it ended at -1.85e12
        try:
            engine.book_fill(f"{'alpha' if n % 2 else 'beta'}", "SYM", BUY, 10**12, 1e9)
        except CapacityError:
            refused += 1
    assert refused == 3
    assert engine.aggregate("FIRM").long == 0.0
    assert engine.verify()


# ------------------------------------------------------------- issue 11, case 2

@pytest.mark.parametrize("price", [1e17, 1e300, float("inf"), float("nan"), 0.0, -1.0])
def test_fill_and_mark_prices_outside_the_domain_raise_and_change_nothing(price):
    engine = world()
    assert engine.submit(1, "alpha", "SYM", BUY, 10, 100.0).accepted
    before = snapshot(engine)
    with pytest.raises(InvalidInputError, match="price"):
        engine.book_fill("alpha", "SYM", BUY, 1, price)
    with pytest.raises(InvalidInputError, match="price"):
        engine.on_fill(1, 1, price, "x")
    with pytest.raises(InvalidInputError, match="price"):
        engine.update_price("SYM", price)
    with pytest.raises(InvalidInputError, match="price"):
        engine.update_prices(np.array([0], dtype=np.int32), np.array([price]))
    assert snapshot(engine) == before
    assert engine.order(1).remaining == 10


def test_fill_and_mark_prices_at_the_last_tick_below_the_bound_are_applied():
    engine = world(tick_size=1.0, multiplier=MICRO, reference_price=None)     # a tick is one micro-unit
    top = 10**15 - 1
    assert engine.book_fill("alpha", "SYM", BUY, 1, float(top)) is True
    engine.update_price("SYM", float(top))
    assert engine.reference_price("SYM") == top
    with pytest.raises(InvalidInputError):
        engine.update_price("SYM", float(top + 1))
    with pytest.raises(InvalidInputError):
        engine.book_fill("alpha", "SYM", BUY, 1, float(top + 1))


def test_order_price_at_the_bound_is_off_the_grid_and_one_tick_below_is_not():
    engine = world(tick_size=1.0, multiplier=MICRO, reference_price=None)
    engine.set_limits("FIRM", Limits())
    assert engine.check("alpha", "SYM", BUY, 1, float(10**15 - 1)).reason == Reason.OK
    assert engine.check("alpha", "SYM", BUY, 1, float(10**15)).reason == Reason.TICK_SIZE


# ------------------------------------------------------------- issue 11, case 3

def test_fills_without_an_exec_id_are_each_applied():
    engine = world()
    assert engine.submit(1, "alpha", "SYM", BUY, 10, 100.0).accepted
    assert engine.on_fill(1, 1, 100.0, None) is True
    assert engine.on_fill(1, 1, 100.0, None) is True
    assert engine.book_fill("alpha", "SYM", BUY, 1, 100.0, None) is True
    assert engine.book_fill("alpha", "SYM", BUY, 1, 100.0, None) is True
    assert engine.position("alpha", "SYM").quantity == 4


@pytest.mark.parametrize("exec_id", [True, 1.0, b"1", ("a",)])
def test_exec_ids_are_str_or_int_only(exec_id):
    engine = world()
    with pytest.raises(InvalidInputError, match="exec_id"):
        engine.book_fill("alpha", "SYM", BUY, 1, 100.0, exec_id)
    assert engine.position("alpha", "SYM").quantity == 0


def test_an_int_exec_id_and_its_string_are_different_ids():
    engine = world()
    assert engine.book_fill("alpha", "SYM", BUY, 1, 100.0, 1) is True
    assert engine.book_fill("alpha", "SYM", BUY, 1, 100.0, "1") is True
    assert engine.book_fill("alpha", "SYM", BUY, 1, 100.0, 1) is False
    assert engine.position("alpha", "SYM").quantity == 2


# ------------------------------------------------------------- issue 11, case 4

def test_first_mark_rechecks_daily_loss_of_a_parent_that_nets_to_flat():
    engine = world(reference_price=None)
    engine.set_limits("desk", Limits(max_daily_loss=0.05))
    engine.book_fill("alpha", "SYM", BUY, 10, 101.0)
    engine.book_fill("beta", "SYM", SELL, 10, 100.0)
    engine.update_price("SYM", 100.5)       # desk: flat, cost 10.00 -> daily P&L -10.00
    assert engine.aggregate("desk").daily_pnl == -10.0
    assert engine.trading_state(account="desk") == TradingState.REDUCING
    assert [(e.account, e.reason) for e in engine.drain_events()] == [("desk", Reason.DAILY_LOSS_LIMIT)]


# --------------------------------------------------------- capacity at the bound

def test_fill_that_reaches_capacity_exactly_is_applied_and_one_more_unit_is_refused():
    engine = micro_world()
    assert engine.book_fill("alpha", "SYM", BUY, 2**22, 2**40 * MICRO) is True     # cost 2^62 micro-units
    assert engine.verify()
    before = snapshot(engine)
    with pytest.raises(CapacityError):
        engine.book_fill("alpha", "SYM", BUY, 1, 2**40 * MICRO)
    assert snapshot(engine)[1:3] == before[1:3]       # positions and reference; the state is HALTED now
    assert engine.trading_state(account="alpha") == TradingState.HALTED


def test_fill_of_a_working_order_counts_its_released_notional_out_of_the_gross():
    engine = micro_world(reference_price=2**40 * MICRO)
    # The order's notional is the whole capacity; its fill turns it into a long of the same size.
    assert engine.submit(1, "alpha", "SYM", BUY, 2**22, 2**40 * MICRO).accepted
    assert engine.aggregate("FIRM").gross == CAP / 1e6
    assert engine.on_fill(1, 2**22, 2**40 * MICRO, "f") is True
    assert engine.aggregate("FIRM").long == CAP / 1e6
    assert engine.aggregate("FIRM").working_buy == 0.0
    assert engine.verify()


def test_fill_that_keeps_long_and_short_within_capacity_but_not_their_gross_is_refused():
    engine = micro_world(reference_price=2**40 * MICRO)
    assert engine.submit(1, "alpha", "SYM", BUY, 2**21, 2**40 * MICRO).accepted      # working 2^61
    engine.book_fill("beta", "SYM", BUY, 2**21, 2**40 * MICRO)                      # desk long 2^61: gross 2^62
    with pytest.raises(CapacityError, match="beta"):
        engine.book_fill("beta", "SYM", BUY, 1, 2**40 * MICRO)
    assert engine.aggregate("desk").gross == CAP / 1e6
    assert engine.verify()


def test_mark_that_reaches_capacity_exactly_is_applied_and_one_tick_more_is_refused():
    engine = micro_world(reference_price=1 * MICRO)
    engine.book_fill("alpha", "SYM", BUY, 2**22, 1 * MICRO)
    engine.update_price("SYM", 2**40 * MICRO)
    assert engine.aggregate("FIRM").long == CAP / 1e6
    with pytest.raises(CapacityError):
        engine.update_price("SYM", (2**40 + 1) * MICRO)
    assert engine.reference_price("SYM") == pytest.approx(2**40 * MICRO)
    assert engine.verify()


def test_mark_whose_largest_move_is_exactly_capacity_is_refused_whole():
    # |position| x move x tick value == CAPACITY: the mark's unchecked fast path needs it below.
    engine = micro_world(reference_price=1 * MICRO)
    engine.book_fill("alpha", "SYM", BUY, 2**22, 1 * MICRO)
    before = snapshot(engine)
    with pytest.raises(CapacityError, match="SYM"):
        engine.update_price("SYM", (2**40 + 1) * MICRO)      # long 2^62 + 2^22
    assert snapshot(engine)[:3] == before[:3]
    assert engine.trading_state(symbol="SYM") == TradingState.HALTED
    assert engine.verify()


def mark_past_64_bits(engine):
    """Mark SYM so that beta's 2^22 units move by 2^64 + 2^22 micro-units: wrapped, that is +2^22."""
    with pytest.raises(CapacityError, match="SYM"):
        engine.update_price("SYM", (1 + 2**42 + 1) * MICRO)
    assert engine.reference_price("SYM") == pytest.approx(1 * MICRO)
    assert engine.verify()


def test_mark_that_would_wrap_a_later_fills_position_is_refused():
    # The first fill sets the symbol's position bound to 1; the second must raise it.
    engine = micro_world(reference_price=1 * MICRO)
    engine.book_fill("alpha", "SYM", BUY, 1, 1 * MICRO)
    engine.book_fill("beta", "SYM", BUY, 2**22, 1 * MICRO)
    mark_past_64_bits(engine)


def test_mark_that_would_wrap_a_restored_position_is_refused():
    engine = micro_world(reference_price=1 * MICRO)
    engine.book_fill("beta", "SYM", BUY, 2**22, 1 * MICRO)
    mark_past_64_bits(RiskEngine.from_state(engine.to_state(), clock=ManualClock(0)))


def test_batch_of_marks_applies_the_rows_that_fit_and_halts_the_symbol_of_the_one_that_does_not():
    engine = micro_world(reference_price=1 * MICRO)
    engine.add_instrument(Instrument("OTH", tick_size=0.01, reference_price=10.0))
    engine.book_fill("alpha", "SYM", BUY, 2**22, 1 * MICRO)
    with pytest.raises(CapacityError, match="row 0"):
        engine.update_prices(np.array([0, 1], dtype=np.int32), np.array([(2**40 + 1) * MICRO, 11.0]))
    assert engine.reference_price("SYM") == pytest.approx(1 * MICRO)
    assert engine.reference_price("OTH") == 11.0
    assert engine.trading_state(symbol="SYM") == TradingState.HALTED
    assert engine.trading_state(symbol="OTH") == TradingState.ACTIVE


# ------------------------------------------------------- orders, modifies, batches

def test_order_quantity_at_the_bound_is_valid_and_one_more_is_not():
    engine = world()
    assert engine.check("alpha", "SYM", BUY, 10**12, 0.01).reason == Reason.OK
    assert engine.check("alpha", "SYM", BUY, 10**12 + 1, 0.01).reason == Reason.INVALID_QUANTITY


def test_modify_quantity_at_the_bound_is_valid_and_one_more_is_not():
    engine = world()
    assert engine.submit(1, "alpha", "SYM", BUY, 1, 0.01).accepted
    assert engine.modify(1, 10**12 + 1).reason == Reason.INVALID_QUANTITY
    assert engine.modify(1, 10**12).reason == Reason.OK


def test_order_whose_notional_passes_capacity_rejects_notional_overflow():
    engine = micro_world(reference_price=2**40 * MICRO)
    assert engine.check("alpha", "SYM", BUY, 2**22, 2**40 * MICRO).reason == Reason.OK
    assert engine.check("alpha", "SYM", BUY, 2**22 + 1, 2**40 * MICRO).reason == Reason.NOTIONAL_OVERFLOW


def test_batch_quantities_at_and_past_the_bound():
    engine = world()
    reasons = engine.check_batch(np.array([1, 1], dtype=np.int32) * engine.account_id("alpha"),
                                 np.zeros(2, dtype=np.int32), np.array([1, 1], dtype=np.int8),
                                 np.array([10**12, 10**12 + 1], dtype=np.int64), np.array([0.01, 0.01]))
    assert list(reasons) == [Reason.OK, Reason.INVALID_QUANTITY]


def test_fill_quantity_at_the_bound_is_valid_and_one_more_is_not():
    engine = world(tick_size=1.0, reference_price=None)
    assert engine.book_fill("alpha", "SYM", BUY, 10**12, 1.0) is True
    with pytest.raises(InvalidInputError, match="quantity"):
        engine.book_fill("alpha", "SYM", BUY, 10**12 + 1, 1.0)


def test_modify_that_lowers_quantity_at_the_same_price_passes_a_collar_and_a_stale_reference():
    clock = ManualClock(0)
    engine = RiskEngine(clock=clock)
    engine.add_instrument(Instrument("SYM", tick_size=0.01, reference_price=100.0, collar_bps_buy=100,
                                     max_reference_age=1.0))
    engine.add_account("alpha")
    assert engine.submit(1, "alpha", "SYM", BUY, 10, 100.5).accepted
    engine.update_price("SYM", 90.0)        # the order's price is now outside the collar
    clock.advance(5.0)                      # and the reference is stale
    assert engine.modify(1, 5).reason == Reason.OK
    assert engine.modify(1, 5, 100.5).reason == Reason.OK
    assert engine.modify(1, 6).reason == Reason.STALE_REFERENCE_PRICE     # more quantity is checked in full
    assert engine.modify(1, 4, 100.4).reason == Reason.STALE_REFERENCE_PRICE  # so is a new price


def test_modify_that_lowers_a_market_orders_quantity_passes_a_stale_reference_and_keeps_its_booked_price():
    clock = ManualClock(0)
    engine = RiskEngine(clock=clock)
    engine.add_instrument(Instrument("SYM", tick_size=0.01, reference_price=100.0, max_reference_age=1.0))
    engine.add_account("alpha")
    assert engine.submit(1, "alpha", "SYM", BUY, 100, None).accepted        # booked at the reference, 100.00
    engine.update_price("SYM", 120.0)
    clock.advance(5.0)
    assert engine.modify(1, 50).reason == Reason.OK
    assert (engine.order(1).price, engine.order(1).market) == (100.0, True)
    assert engine.aggregate("alpha").working_buy == 5_000.0     # 50 at 100.00: the notional only fell
    assert engine.modify(1, 60).reason == Reason.STALE_REFERENCE_PRICE


# --------------------------------------------------------------------- limits

@pytest.mark.parametrize("field, good, bad", [
    ("max_order_quantity", 10**12, 10**12 + 1),
    ("max_open_orders", 2**31 - 1, 2**31),
    ("max_gross_notional", 9.0e12, 9.1e12),
    ("max_daily_loss", 9.0e12, float("inf")),
    ("new_order_rate", (2**31 - 1, 1e9), (2**31, 1.0)),
    ("fill_throttle", (1, 1e9), (1, 1e9 + 1)),
])
def test_limits_at_their_bound_are_accepted_and_past_it_refused(field, good, bad):
    engine = world()
    engine.set_limits("alpha", Limits(**{field: good}))
    assert getattr(engine.limits("alpha"), field) == good
    with pytest.raises(InvalidConfigError, match=field):
        Limits(**{field: bad})


@pytest.mark.parametrize("kwargs", [
    {"tick_size": 1.0, "multiplier": 10_001.0},      # tick value past 10^10 micro-units
    {"tick_size": 0.01, "reference_price": 1e13},    # 10^15 ticks
    {"tick_size": 0.01, "max_price": 1e13},
    {"tick_size": 0.01, "lot_size": 10**12 + 1},
    {"tick_size": 0.01, "max_reference_age": 1e9 + 1},
])
def test_instrument_outside_the_domain_is_refused(kwargs):
    with pytest.raises(InvalidConfigError):
        Instrument("X", **kwargs)


def test_instrument_at_the_largest_tick_value_is_accepted():
    assert Instrument("X", tick_size=1.0, multiplier=10_000.0).tick_value == 10**10
