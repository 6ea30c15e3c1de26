"""A stateful search for fail-open holes at the edges of the numeric domain.

A hypothesis state machine drives the whole kernel API (orders, modifies,
cancels, fills of working orders, drop-copy fills, marks, limits, trading
states, day rolls) with quantities up to 10^12 and prices up to 10^15 ticks,
on instruments whose tick values span one micro-unit to 12.5 in currency,
against the reference model, which keeps every total as an exact Python int.
After every step: the engine's aggregates equal the model's exact ones (so no
total wrapped), ``verify()`` holds, and every decision equals the model's (so
no order was accepted that the exact model rejects).

CI runs ``derandomize``d (the same examples every run); RISKCORE_EXAMPLE_SCALE
scales the number of runs for a longer hunt.
"""
from __future__ import annotations

import os
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from riskcore import (
    CapacityError,
    Instrument,
    InvalidInputError,
    Limits,
    ManualClock,
    RiskEngine,
    RiskError,
    TradingState,
    UnknownOrderError,
)
from tests.riskcore import reference as ref
from tests.riskcore.test_properties import scaled

START_NS = 1_700_000_000 * 10**9
LEAVES = ["a", "b", "solo"]
NODES = ["FIRM", "desk"] + LEAVES
# symbol -> (tick size, multiplier): tick values of 1, 10_000 and 12_500_000 micro-units
SYMBOLS = {"U": (1e-6, 1.0), "V": (0.01, 1.0), "F": (0.25, 50.0)}
MAX_WORKING = 12

quantities = st.one_of(
    st.sampled_from([1, 2, 2**21, 2**22, 2**22 + 1, 10**9, 10**12 - 1, 10**12, 10**12 + 1]),
    st.integers(1, 10**12))
ticks = st.one_of(
    st.sampled_from([1, 2, 2**20, 2**40, 2**40, 2**40 + 1, 10**12, 10**15 - 1, 10**15]),
    st.integers(1, 10**15 - 1))
money_limits = st.one_of(st.none(), st.sampled_from([0.0, 1.0, 1e6, 4.6e12, 9.0e12]),
                         st.floats(0.0, 9.0e12, allow_nan=False))
limits = st.builds(
    Limits,
    max_order_quantity=st.one_of(st.none(), st.sampled_from([1, 2**22, 10**12])),
    max_gross_notional=money_limits,
    max_net_notional=money_limits,
    max_daily_loss=money_limits,
    max_open_orders=st.one_of(st.none(), st.sampled_from([0, 1, 5])),
)


def price(symbol: str, t: int) -> float:
    return t * SYMBOLS[symbol][0]


def outcome(call, target):
    """("ok", result) or ("raise", the error class), a Decision reduced to its code."""
    try:
        result = call(target)
    except ref.ModelCapacity:
        return "raise", CapacityError
    except ref.ModelUnknownOrder:
        return "raise", UnknownOrderError
    except ref.ModelInvalidInput:
        return "raise", InvalidInputError
    except RiskError as exc:
        return "raise", type(exc)
    return "ok", getattr(result, "code", result)


class Extremes(RuleBasedStateMachine):
    """The compiled engine and the exact model, step by step."""

    @initialize()
    def build(self):
        self.clocks = (ManualClock(START_NS), ManualClock(START_NS))
        self.engine, self.model = RiskEngine(clock=self.clocks[0]), ref.ReferenceModel(self.clocks[1])
        self.next_id = 1
        self.next_exec = 1
        for target in (self.engine, self.model):
            for symbol, (tick, multiplier) in SYMBOLS.items():
                # U starts marked at 2^40 ticks: 2^21 or 2^22 units there are half or all of the capacity.
                target.add_instrument(Instrument(symbol, tick_size=tick, multiplier=multiplier,
                                                 reference_price=2**40 * tick if symbol == "U" else None,
                                                 require_reference=False))
            target.add_account("desk")
            target.add_account("a", parent="desk")
            target.add_account("b", parent="desk")
            target.add_account("solo")

    def same(self, what, call):
        expected, got = outcome(call, self.model), outcome(call, self.engine)
        assert got == expected, f"{what}: model {expected}, engine {got}"
        return expected

    def working(self):
        return sorted(i for i, o in self.model.orders.items() if o.status == ref.WORKING)

    # -- orders
    @precondition(lambda self: len(self.working()) < MAX_WORKING)
    @rule(account=st.sampled_from(LEAVES + ["desk"]), symbol=st.sampled_from(list(SYMBOLS)),
          side=st.sampled_from([1, -1]), q=quantities, t=st.one_of(st.none(), ticks))
    def submit(self, account, symbol, side, q, t):
        oid, self.next_id = self.next_id, self.next_id + 1
        p = None if t is None else price(symbol, t)
        self.same(f"submit({oid}, {account}, {symbol}, {side}, {q}, {p})",
                  lambda e: e.submit(oid, account, symbol, side, q, p))

    @precondition(lambda self: self.working())
    @rule(data=st.data(), q=quantities, t=st.one_of(st.none(), ticks))
    def modify(self, data, q, t):
        oid = data.draw(st.sampled_from(self.working()))
        p = None if t is None else price(self.model.orders[oid].symbol, t)
        self.same(f"modify({oid}, {q}, {p})", lambda e: e.modify(oid, q, p))

    @precondition(lambda self: self.working())
    @rule(data=st.data())
    def cancel(self, data):
        oid = data.draw(st.sampled_from(self.working()))
        self.same(f"on_cancel({oid})", lambda e: e.on_cancel(oid))

    # -- fills and marks
    @precondition(lambda self: self.model.orders)
    @rule(data=st.data(), q=quantities, t=ticks, with_id=st.booleans())
    def fill(self, data, q, t, with_id):
        oid = data.draw(st.sampled_from(self.working() or sorted(self.model.orders)))
        xid = None
        if with_id:
            xid, self.next_exec = f"X{self.next_exec}", self.next_exec + 1
        p = price(self.model.orders[oid].symbol, t)
        self.same(f"on_fill({oid}, {q}, {p}, {xid})", lambda e: e.on_fill(oid, q, p, xid))

    @rule(account=st.sampled_from(LEAVES), symbol=st.sampled_from(list(SYMBOLS)), side=st.sampled_from([1, -1]),
          q=quantities, t=ticks)
    def book_fill(self, account, symbol, side, q, t):
        p = price(symbol, t)
        self.same(f"book_fill({account}, {symbol}, {side}, {q}, {p})",
                  lambda e: e.book_fill(account, symbol, side, q, p))

    @rule(symbol=st.sampled_from(list(SYMBOLS)), t=ticks)
    def mark(self, symbol, t):
        p = price(symbol, t)
        self.same(f"update_price({symbol}, {p})", lambda e: e.update_price(symbol, p))

    # -- limits, states, days
    @rule(node=st.sampled_from(NODES), lim=limits)
    def set_limits(self, node, lim):
        self.same(f"set_limits({node}, {lim})", lambda e: e.set_limits(node, lim))

    @rule(node=st.one_of(st.none(), st.sampled_from(NODES)), symbol=st.sampled_from(list(SYMBOLS)))
    def reactivate(self, node, symbol):
        # Capacity refusals halt accounts and symbols: put them back so the search goes on.
        if node is None:
            self.same(f"activate {symbol}", lambda e: e.set_trading_state(TradingState.ACTIVE, symbol=symbol))
        else:
            self.same(f"activate {node}", lambda e: e.set_trading_state(TradingState.ACTIVE, account=node))

    @rule()
    def roll_day(self):
        self.same("roll_day()", lambda e: e.roll_day())

    @rule(seconds=st.sampled_from([0.001, 1.0, 3600.0]))
    def advance(self, seconds):
        for clock in self.clocks:
            clock.advance(seconds)

    # -- after every step
    @invariant()
    def totals_are_exact(self):
        if not hasattr(self, "engine"):
            return
        assert self.engine.aggregates().tolist() == self.model.aggregate_rows()
        assert self.engine.verify() is True

    @invariant()
    def breach_events_agree(self):
        if not hasattr(self, "engine"):
            return
        got = sorted((e.time, e.account, e.symbol, int(e.reason), e.value, e.limit) for e in self.engine.drain_events())
        expected = sorted(self.model.drain_events())
        assert got == expected


# 4,000 runs of 50 steps: 200k steps in CI, the same ones every run; a scaled hunt is random.
Extremes.TestCase.settings = settings(
    max_examples=scaled(int(os.environ.get("RISKCORE_EXTREME_RUNS", "4000"))), stateful_step_count=50,
    deadline=None, derandomize="RISKCORE_EXAMPLE_SCALE" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
TestExtremes = Extremes.TestCase
