"""Snapshots: to_state / from_state round trips and the states they refuse."""
import struct

import numpy as np
import pytest

from riskcore import (
    BUY,
    SELL,
    Instrument,
    Limits,
    ManualClock,
    Reason,
    RiskEngine,
    StateError,
    TradingState,
)
from riskcore.engine import STATE_VERSION
from tests.riskcore.world import T0, build


# ------------------------------------------------------------ snapshots


def busy_engine(clock):
    engine = build(clock, duplicate_window=2.0)
    engine.add_instrument(Instrument("OTHER", tick_size=0.05, lot_size=10, reference_price=10.0,
                                     collar_bps_buy=500, max_reference_age=60.0))
    engine.set_limits("alpha", Limits(max_open_orders=10, new_order_rate=(5, 10.0), modify_rate=(5, 10.0),
                                      cancel_rate=(5, 10.0), fill_throttle=(10, 10.0), max_daily_loss=1_000.0))
    engine.set_limits("desk", Limits(max_gross_notional=1_000_000.0))
    engine.set_position_limit("alpha", "ACME", max_long=1000, max_short=500)
    engine.set_allowed_symbols("desk", ["ACME", "OTHER"])
    engine.set_trading_state(TradingState.REDUCING, account="solo")
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.submit(2, "alpha", "ACME", SELL, 50, 101.0)
    engine.submit(3, "beta", "OTHER", BUY, 10, None)
    engine.on_fill(1, 40, 99.0, "X-1")
    engine.book_fill("beta", "OTHER", SELL, 20, 10.05, exec_id="X-2")
    engine.modify(2, 60)
    engine.request_cancel(2)
    clock.advance(0.5)
    engine.update_price("ACME", 98.0)
    engine.submit(4, "alpha", "ACME", BUY, 10, 97.0)
    engine.on_cancel(4)
    return engine


PROBES = [
    lambda e: e.submit(10, "alpha", "ACME", BUY, 10, 97.0).reason,          # duplicate of order 4
    lambda e: e.submit(11, "alpha", "ACME", BUY, 1000, 97.0).reason,        # position limit
    lambda e: e.submit(12, "alpha", "ACME", SELL, 10, 99.0).reason,         # self-match with order 1
    lambda e: e.submit(13, "beta", "OTHER", BUY, 10, 10.5).reason,          # within 500 bps
    lambda e: e.submit(14, "beta", "OTHER", BUY, 10, 10.55).reason,         # collar
    lambda e: e.submit(15, "solo", "ACME", BUY, 1, 98.0).reason,            # reduce-only
    lambda e: e.modify(1, 30, 98.5).reason,
    lambda e: e.request_cancel(2).reason,
    lambda e: e.on_fill(1, 5, 98.5, "X-1"),                                 # repeated exec id
    lambda e: e.on_fill(2, 60, 101.0, "X-3"),
    lambda e: e.on_cancel(3),
    lambda e: e.on_cancel(4),
    lambda e: e.submit(4, "alpha", "ACME", BUY, 1, 90.0).reason,            # id used before
]


def test_snapshot_round_trip_restores_an_engine_that_behaves_identically(clock):
    original = busy_engine(clock)
    restored = RiskEngine.from_state(original.to_state(), clock=clock)
    assert restored.verify()
    assert restored.accounts == original.accounts and restored.symbols == original.symbols
    for field in original.aggregates().dtype.names:
        assert np.array_equal(restored.aggregates()[field], original.aggregates()[field])
    assert restored.positions().tolist() == original.positions().tolist()
    assert restored.open_orders().tolist() == original.open_orders().tolist()
    for account in original.accounts:
        assert restored.limits(account) == original.limits(account)
        assert restored.trading_state(account) == original.trading_state(account)
    assert restored.position_limit("alpha", "ACME") == (1000, 500)
    assert restored.instrument("OTHER") == original.instrument("OTHER")
    for probe in PROBES:
        assert probe(restored) == probe(original)
    assert restored.verify()
    assert restored.drain_events() == original.drain_events()
    assert restored.aggregates().tolist() == original.aggregates().tolist()


def test_snapshot_holds_the_expected_business_state(clock):
    # Hand-checked numbers, so the round trip cannot pass by losing the same thing twice.
    restored = RiskEngine.from_state(busy_engine(clock).to_state(), clock=clock)
    assert restored.order(1).remaining == 60
    assert restored.order(2).remaining == 60
    assert restored.position("alpha", "ACME").quantity == 40
    assert restored.position("beta", "OTHER").quantity == -20
    assert restored.aggregate("alpha").working_buy == 5_940.0          # 60 * 99.00
    assert restored.aggregate("alpha").working_sell == 6_060.0         # 60 * 101.00
    assert restored.trading_state("solo") == TradingState.REDUCING
    assert restored.submit(20, "alpha", "ACME", BUY, 10, 97.0).reason == Reason.DUPLICATE_ORDER


def test_snapshot_of_version_2_converts_tick_costs_to_micro_units():
    # Version 2 kept a position's cost in tick-units: write one as that build did.
    engine = RiskEngine(clock=ManualClock(0))
    engine.add_instrument(Instrument("ES", tick_size=0.25, multiplier=50.0, reference_price=4000.0))
    engine.add_account("alpha")
    engine.book_fill("alpha", "ES", BUY, 3, 4000.25)
    state = engine.to_state()
    slot_size = state["layout"][2]
    slots = bytearray(state["slots"])
    cost_at = 24           # node, symbol, parent_slot (3 x i32), 3 flags, padding, then pos and cost (i64)
    for j in range(len(slots) // slot_size):
        pos, cost = struct.unpack_from("<qq", slots, j * slot_size + cost_at - 8)
        assert cost == pos * 16_001 * 12_500_000            # micro-units now
        struct.pack_into("<q", slots, j * slot_size + cost_at, pos * 16_001)
    state["slots"], state["version"] = bytes(slots), 2
    restored = RiskEngine.from_state(state, clock=ManualClock(0))
    assert restored.position("alpha", "ES") == engine.position("alpha", "ES")
    assert restored.aggregate("FIRM") == engine.aggregate("FIRM")


@pytest.mark.parametrize("version", [1, STATE_VERSION + 1, None, str(STATE_VERSION)])
def test_snapshot_of_another_version_raises_state_error(engine, version):
    state = engine.to_state()
    state["version"] = version
    with pytest.raises(StateError):
        RiskEngine.from_state(state, clock=ManualClock(T0))


def test_snapshot_that_is_not_a_dict_raises_state_error(engine):
    with pytest.raises(StateError):
        RiskEngine.from_state(list(engine.to_state().items()), clock=ManualClock(T0))


def test_snapshot_from_a_build_with_another_struct_layout_raises_state_error(engine):
    state = engine.to_state()
    state["layout"] = tuple(size + 8 for size in state["layout"])
    with pytest.raises(StateError):
        RiskEngine.from_state(state, clock=ManualClock(T0))


@pytest.mark.parametrize("table", ["instruments", "nodes", "slots", "orders", "events"])
def test_snapshot_with_a_table_cut_mid_record_raises_state_error(clock, table):
    engine = busy_engine(clock)
    engine.set_limits("beta", Limits(fill_throttle=(0, 1.0)))
    engine.book_fill("beta", "ACME", BUY, 1, 98.0)        # an event, so every table has rows
    state = engine.to_state()
    assert len(state[table]) > 0
    state[table] = state[table][:-1]
    with pytest.raises(StateError):
        RiskEngine.from_state(state, clock=ManualClock(T0))


@pytest.mark.parametrize("table", ["instruments", "nodes", "slots", "orders"])
def test_snapshot_with_a_table_missing_its_last_record_raises_state_error(clock, table):
    # busy_engine's last order (id 4) is cancelled, its last slot is beta's OTHER position.
    state = busy_engine(clock).to_state()
    size = dict(zip(("instruments", "nodes", "slots", "orders", "events"), state["layout"]))[table]
    state[table] = state[table][:-size]
    with pytest.raises(StateError):
        RiskEngine.from_state(state, clock=ManualClock(T0))
