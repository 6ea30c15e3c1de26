"""The Python boundary: errors, their messages and types, and a check path that leaves nothing for the garbage collector."""
import gc

import pytest

from riskcore import (
    BUY,
    Instrument,
    InvalidConfigError,
    InvalidInputError,
    Limits,
    RiskEngine,
    RiskError,
    TradingState,
    UnknownAccountError,
    UnknownSymbolError,
)
from tests.riskcore.world import NAN, INF, OK, fill


# ------------------------------------------------------ errors at the boundary


def test_admin_calls_naming_an_unknown_account_raise_unknown_account_error_and_change_nothing(engine):
    calls = [
        lambda: engine.set_limits("nobody", Limits(max_open_orders=1)),
        lambda: engine.set_position_limit("nobody", "ACME", max_long=1),
        lambda: engine.set_allowed_symbols("nobody", ["ACME"]),
        lambda: engine.set_trading_state(TradingState.HALTED, account="nobody"),
        lambda: engine.add_account("child", parent="nobody"),
        lambda: engine.book_fill("nobody", "ACME", BUY, 1, 100.0),
        lambda: engine.aggregate("nobody"),
        lambda: engine.utilisation("nobody"),
        lambda: engine.limits("nobody"),
        lambda: engine.account_id("nobody"),
        lambda: engine.trading_state("nobody"),
    ]
    before = engine.to_state()
    for call in calls:
        with pytest.raises(UnknownAccountError) as info:
            call()
        assert isinstance(info.value, KeyError) and isinstance(info.value, RiskError)
        assert "nobody" in str(info.value)
        assert engine.to_state() == before


def test_admin_calls_naming_an_unknown_symbol_raise_unknown_symbol_error_and_change_nothing(engine):
    calls = [
        lambda: engine.update_price("NOPE", 1.0),
        lambda: engine.set_position_limit("alpha", "NOPE", max_long=1),
        lambda: engine.set_allowed_symbols("desk", ["ACME", "NOPE"]),
        lambda: engine.set_trading_state(TradingState.HALTED, symbol="NOPE"),
        lambda: engine.book_fill("alpha", "NOPE", BUY, 1, 1.0),
        lambda: engine.instrument("NOPE"),
        lambda: engine.reference_price("NOPE"),
        lambda: engine.symbol_id("NOPE"),
        lambda: engine.update_prices([0, 7], [101.0, 2.0]),
    ]
    before = engine.to_state()
    for call in calls:
        with pytest.raises(UnknownSymbolError) as info:
            call()
        assert isinstance(info.value, KeyError) and isinstance(info.value, RiskError)
        assert engine.to_state() == before
    assert engine.reference_price("ACME") == 100.0


@pytest.mark.parametrize("price", [NAN, INF, -INF, 0.0, -1.0])
def test_price_update_that_is_not_finite_and_positive_raises_invalid_input_error_and_changes_nothing(engine, price):
    fill(engine, BUY, 10, 100.0)
    before = engine.to_state()
    with pytest.raises(InvalidInputError) as info:
        engine.update_price("ACME", price)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RiskError)
    assert engine.to_state() == before
    assert engine.reference_price("ACME") == 100.0


def test_batch_price_update_with_one_bad_row_applies_none_of_them(engine):
    engine.add_instrument(Instrument("OTHER", reference_price=10.0))
    before = engine.to_state()
    with pytest.raises(InvalidInputError):
        engine.update_prices([engine.symbol_id("ACME"), engine.symbol_id("OTHER")], [101.0, NAN])
    with pytest.raises(InvalidInputError):
        engine.update_prices([engine.symbol_id("ACME")], [101.0, 11.0])
    assert engine.to_state() == before
    assert (engine.reference_price("ACME"), engine.reference_price("OTHER")) == (100.0, 10.0)


def test_changing_the_tick_value_of_a_symbol_with_positions_raises_and_keeps_the_definition(engine):
    fill(engine, BUY, 10, 100.0)
    before = engine.to_state()
    with pytest.raises(InvalidConfigError):
        engine.add_instrument(Instrument("ACME", tick_size=0.05, reference_price=100.0))
    assert engine.to_state() == before
    assert engine.instrument("ACME").tick_size == 0.01


def test_adding_a_sub_account_under_an_account_with_orders_or_positions_raises(engine):
    engine.submit(1, "alpha", "ACME", BUY, 1, 99.0)
    fill(engine, BUY, 1, 100.0, account="solo")
    before = engine.to_state()
    for parent in ("alpha", "solo"):
        with pytest.raises(InvalidConfigError):
            engine.add_account(f"{parent}-sub", parent=parent)
    assert engine.to_state() == before
    assert engine.accounts == ["FIRM", "desk", "alpha", "beta", "solo"]


def test_adding_an_account_with_a_name_in_use_raises(engine):
    with pytest.raises(InvalidConfigError):
        engine.add_account("alpha", parent="solo")
    assert engine.parent("alpha") == "desk"


def test_account_tree_deeper_than_eight_levels_raises(engine):
    parent = "FIRM"
    for level in range(2, 9):   # the firm is level 1
        engine.add_account(f"level{level}", parent=parent)
        parent = f"level{level}"
    with pytest.raises(InvalidConfigError):
        engine.add_account("level9", parent=parent)
    assert engine.check("level8", "ACME", BUY, 1, 100.0).reason == OK


@pytest.mark.parametrize("account", ["desk", "FIRM"])
def test_book_fill_into_a_node_that_is_not_a_leaf_raises_invalid_input_error(engine, account):
    before = engine.to_state()
    with pytest.raises(InvalidInputError):
        engine.book_fill(account, "ACME", BUY, 1, 100.0)
    assert engine.to_state() == before


def test_set_trading_state_for_an_account_and_a_symbol_at_once_raises(engine):
    with pytest.raises(InvalidInputError):
        engine.set_trading_state(TradingState.HALTED, account="alpha", symbol="ACME")
    assert engine.trading_state("alpha") == TradingState.ACTIVE
    assert engine.trading_state(symbol="ACME") == TradingState.ACTIVE


@pytest.mark.parametrize("window", [-1.0, NAN, INF])
def test_engine_with_a_negative_or_non_finite_duplicate_window_raises(clock, window):
    with pytest.raises(InvalidConfigError):
        RiskEngine(clock=clock, duplicate_window=window)


@pytest.mark.parametrize("kwargs", [
    dict(tick_size=NAN), dict(tick_size=0.0), dict(tick_size=-0.01), dict(tick_size=1e-7),
    dict(tick_size=0.01, multiplier=0.00005),
])
def test_bad_instrument_definition_raises_invalid_config_error_before_reaching_the_engine(engine, kwargs):
    with pytest.raises(InvalidConfigError):
        engine.add_instrument(Instrument("BAD", **kwargs))
    assert engine.symbols == ["ACME"]


def test_set_position_limit_with_a_bad_value_raises_invalid_config_error_and_changes_nothing(engine):
    before = engine.to_state()
    for value in (-1, 1.5, True):
        with pytest.raises(InvalidConfigError):
            engine.set_position_limit("alpha", "ACME", max_long=value)
    assert engine.to_state() == before


# ------------------------------------------------- the hot path and the GC


def test_decisions_are_not_tracked_by_the_garbage_collector(engine):
    engine.set_limits("alpha", Limits(max_order_quantity=500))
    assert not gc.is_tracked(engine.check("alpha", "ACME", BUY, 100, 100.0))
    assert not gc.is_tracked(engine.check("alpha", "ACME", BUY, 600, 100.0))


def test_ten_thousand_checks_in_a_plain_loop_leave_the_gc_count_unchanged(engine):
    # Fails if check() leaves any GC-tracked object behind (a cache entry, a list
    # of messages, a tracked attribute on the engine): each one adds 1 to the
    # youngest generation's count, and with the collector disabled nothing resets it.
    engine.set_limits("alpha", Limits(max_order_quantity=500))
    check = engine.check
    check("alpha", "ACME", BUY, 100, 100.0)
    check("alpha", "ACME", BUY, 600, 100.0)
    gc.collect()
    gc.disable()
    try:
        gc.get_count()  # prime the tuple free list: reading the count then allocates nothing
        before = gc.get_count()[0]
        for _ in range(10_000):
            check("alpha", "ACME", BUY, 100, 100.0)
            check("alpha", "ACME", BUY, 600, 100.0)
        after = gc.get_count()[0]
    finally:
        gc.enable()
    assert after == before


class _Tracked:
    """An ordinary instance: GC-tracked, as a Decision must not be."""


def _gc_count_while_keeping(make, n=10_000):
    keep = [None] * n          # allocated before counting; filling slots allocates nothing
    gc.collect()
    gc.disable()
    try:
        gc.get_count()  # prime the tuple free list: reading the count then allocates nothing
        before = gc.get_count()[0]
        for i in range(n):
            keep[i] = make()
        after = gc.get_count()[0]
    finally:
        gc.enable()
    del keep
    return after - before


def test_ten_thousand_decisions_kept_alive_add_nothing_for_the_gc_to_collect(engine):
    # An object freed right away nets 0 on CPython's count, so the plain loop above
    # cannot see a tracked Decision; keeping every Decision alive does. The control
    # proves the harness counts tracked objects (it would read 10_000 for a tracked
    # Decision too).
    assert _gc_count_while_keeping(_Tracked) == 10_000
    engine.check("alpha", "ACME", BUY, 100, 100.0)
    assert _gc_count_while_keeping(lambda: engine.check("alpha", "ACME", BUY, 100, 100.0)) == 0
