"""Property tests: the compiled engine against the pure-Python reference model.

The model (reference.py, next to this file) is written from the README's "Risk
model" section alone. Every test drives the engine and the model with the same
random operations over a small universe and requires them to agree on every
decision, position, P&L figure, aggregate, open order, trading state and breach
event, with ``verify()`` proving the engine's incremental aggregates after each
step.
"""
from __future__ import annotations

import math
import os
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from riskcore import (
    CapacityError,
    Instrument,
    InvalidInputError,
    Limits,
    ManualClock,
    RiskEngine,
    Reason,
    RiskError,
    StateError,
    TradingState,
    UnknownOrderError,
)
from tests.riskcore import reference as ref

settings.register_profile(
    "riskcore-properties",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    # The same examples on every run, so a CI failure is never intermittent;
    # RISKCORE_EXAMPLE_SCALE (a longer hunt) draws new ones.
    derandomize="RISKCORE_EXAMPLE_SCALE" not in os.environ,
    # Shrinking long operation sequences can take minutes; the failure message
    # already lists the last operations. RISKCORE_SHRINK=1 turns it back on.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    + ([Phase.shrink] if os.environ.get("RISKCORE_SHRINK") == "1" else []),
)
PROFILE = settings.get_profile("riskcore-properties")


def scaled(examples: int) -> int:
    """Examples per test; RISKCORE_EXAMPLE_SCALE=10 runs a longer hunt."""
    return int(examples * float(os.environ.get("RISKCORE_EXAMPLE_SCALE", "1")))

# --------------------------------------------------------------------- universe
START_NS = 1_700_000_000 * 10**9
FIRM = "FIRM"
TREE = [("deskA", FIRM), ("a1", "deskA"), ("a2", "deskA"),
        ("deskB", FIRM), ("b1", "deskB"), ("subB", "deskB"), ("b2", "subB"), ("b3", "subB")]
NODES = [FIRM] + [name for name, _ in TREE]
LEAVES = ["a1", "a2", "b1", "b2", "b3"]
# symbol -> (tick size, lot size, multiplier, base price in ticks, tradable)
UNIVERSE = {
    "AAA": (0.01, 1, 1.0, 10_000, True),
    "ESF": (0.25, 1, 50.0, 16_000, True),
    "LOT": (0.05, 100, 1.0, 400, True),
    "RST": (0.01, 1, 1.0, 1_000, False),
}
SYMBOLS = list(UNIVERSE)
TRADED = ["AAA", "ESF", "LOT"]
WINDOW_SECONDS = [0.5, 1.0, 2.0, 5.0]


# ------------------------------------------------------------------- strategies
def opt(strategy, none_weight=2):
    """``strategy`` or None (unset), None ``none_weight`` times as likely."""
    return st.one_of(*([st.none()] * none_weight), strategy)


def weighted(*choices):
    """Pick a strategy with integer weights, ``weighted((3, a), (1, b))``, then draw from it."""
    table = [i for i, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(table).flatmap(lambda i: choices[i][1])


@st.composite
def instruments(draw, symbol):
    tick, lot, mult, base, tradable = UNIVERSE[symbol]
    has_ref = draw(st.integers(0, 9)) > 0
    # The price band, in ticks either side of the base (on the grid).
    lo = draw(opt(st.integers(5, 300).map(lambda t: min(t, base // 2)), 3))
    hi = draw(opt(st.integers(5, 300), 3))
    return Instrument(
        symbol, tick_size=tick, lot_size=lot, multiplier=mult,
        reference_price=base * tick if has_ref else None, tradable=tradable,
        collar_bps_buy=draw(opt(st.sampled_from([0, 10, 50, 300]))),
        collar_bps_sell=draw(opt(st.sampled_from([0, 10, 50, 300]))),
        collar_ticks_buy=draw(opt(st.sampled_from([0, 3, 20, 100]))),
        collar_ticks_sell=draw(opt(st.sampled_from([0, 3, 20, 100]))),
        min_price=None if lo is None else (base - lo) * tick,
        max_price=None if hi is None else (base + hi) * tick,
        max_reference_age=draw(opt(st.sampled_from([1.0, 5.0, 30.0]), 3)),
        require_reference=draw(st.sampled_from([True, True, True, False])),
    )


windows = st.tuples(st.integers(0, 4), st.sampled_from(WINDOW_SECONDS))
limits = st.builds(
    Limits,
    max_order_quantity=opt(st.sampled_from([0, 5, 20, 100, 500, 2000]), 4),
    max_order_notional=opt(st.sampled_from([0, 1_000, 5_000, 50_000, 500_000, 5_000_000]), 4),
    max_gross_notional=opt(st.sampled_from([0, 5_000, 50_000, 500_000, 5_000_000]), 4),
    max_net_notional=opt(st.sampled_from([0, 5_000, 50_000, 500_000, 5_000_000]), 4),
    max_open_orders=opt(st.sampled_from([0, 1, 2, 4, 8]), 4),
    max_daily_loss=opt(st.sampled_from([0, 10, 200, 2_000, 20_000]), 3),
    new_order_rate=opt(windows, 4),
    modify_rate=opt(windows, 3),
    cancel_rate=opt(windows, 3),
    fill_throttle=opt(windows, 5),
)

# Mostly valid: leaves, traded symbols, BUY/SELL; sometimes a node, an unknown name or a bad side.
accounts_st = weighted((2, st.sampled_from(LEAVES)), (1, st.sampled_from(LEAVES + NODES + ["ghost"])))
symbols_st = weighted((2, st.sampled_from(TRADED)), (1, st.sampled_from(SYMBOLS + ["ZZZ"])))
sides_st = weighted((3, st.sampled_from([1, -1])), (1, st.sampled_from([0, 2])))

# Quantities: a number of lots, or a raw (often invalid) value.
quantities_st = st.one_of(
    st.tuples(st.just("lots"), st.integers(1, 20)),
    st.tuples(st.just("lots"), st.integers(1, 5)),
    st.tuples(st.just("raw"), st.sampled_from([0, -1, 7, 2.5, 150.0, 10**12, 10**12 + 1])),
)
# Order prices: ticks off the reference, a market order, or a bad value.
order_prices_st = st.one_of(
    st.tuples(st.just("ticks"), st.integers(-30, 30)),
    st.tuples(st.just("ticks"), st.integers(-3, 3)),
    st.tuples(st.just("ticks"), st.integers(-3, 3)),
    st.just(None),
    st.tuples(st.just("bad"), st.sampled_from(["nan", "inf", "zero", "neg", "offgrid", "tiny", "huge"])),
)
# Fill and mark prices: ticks off the reference plus a fraction of a tick to round.
# (A few are not prices at all: the call must raise and change nothing.)
bad_prices_st = st.tuples(st.just("bad"), st.sampled_from([math.nan, math.inf, 0.0, -1.0]))
fill_prices_st = weighted((12, st.tuples(st.integers(-40, 40), st.sampled_from([0.0, 0.0, 0.3, 0.7, 0.5]))),
                          (1, bad_prices_st))
mark_prices_st = weighted((12, st.tuples(st.integers(-400, 400), st.sampled_from([0.0, 0.0, 0.3, 0.7, 0.5]))),
                          (1, bad_prices_st))
# Orders are referred to as the k-th working order, the k-th id ever submitted, or an unknown id.
order_refs = st.one_of(st.tuples(st.just("working"), st.integers(0, 10**6)),
                       st.tuples(st.just("working"), st.integers(0, 10**6)),
                       st.tuples(st.just("any"), st.integers(0, 10**6)), st.just("unknown"))
# Exec ids: a fresh one, one seen before, or none at all.
exec_refs = weighted((3, st.just("new")), (1, st.integers(0, 10**6)), (1, st.none()))
fill_sizes = st.sampled_from(["part", "part", "full", "full", "full", "over", "over", "one", "zero", "frac", "whole"])

position_limits_st = st.tuples(st.just("position_limit"), st.sampled_from(NODES), st.sampled_from(TRADED),
                               opt(st.sampled_from([0, 10, 100, 1000, 5000]), 1),
                               opt(st.sampled_from([0, 10, 100, 1000, 5000]), 1))
allow_lists_st = st.tuples(st.just("allow"), st.sampled_from(NODES),
                           opt(st.sets(st.sampled_from(SYMBOLS)).map(lambda s: s | {"AAA"}), 1))
set_limits_st = st.tuples(st.just("set_limits"), st.sampled_from(NODES), limits)
ops_st = weighted(
    (3, st.tuples(st.just("submit"), weighted((3, st.just("new")), (1, st.integers(0, 10**6))),
                  accounts_st, symbols_st, sides_st, quantities_st, order_prices_st)),
    (6, st.tuples(st.just("submit"), st.just("new"), st.sampled_from(LEAVES), st.sampled_from(TRADED),
                  st.sampled_from([1, -1]), st.tuples(st.just("lots"), st.integers(1, 5)),
                  st.one_of(st.just(None), st.tuples(st.just("ticks"), st.integers(-2, 2))))),
    (1, st.tuples(st.just("check"), accounts_st, symbols_st, sides_st, quantities_st, order_prices_st)),
    (3, st.tuples(st.just("modify"), order_refs, quantities_st,
                  weighted((2, st.just("keep")), (1, order_prices_st)))),
    # Price-only: the working order's own quantity at a new price.
    (2, st.tuples(st.just("modify"), st.tuples(st.just("working"), st.integers(0, 10**6)), st.just(("same", 0)),
                  st.tuples(st.just("ticks"), st.integers(-5, 5)))),
    (1, st.tuples(st.just("request_cancel"), order_refs)),
    (5, st.tuples(st.just("fill"), order_refs, fill_sizes, fill_prices_st, exec_refs)),
    (1, st.tuples(st.just("finish"), st.sampled_from(["cancel", "expire", "reject"]), order_refs)),
    (1, st.tuples(st.just("book_fill"), weighted((5, st.sampled_from(LEAVES)), (1, st.sampled_from(NODES))),
                  st.sampled_from(SYMBOLS),
                  st.sampled_from([1, -1]), st.integers(1, 10), fill_prices_st, exec_refs)),
    (3, st.tuples(st.just("mark"), st.sampled_from(SYMBOLS), mark_prices_st)),
    (1, st.tuples(st.just("marks"), st.lists(st.tuples(st.sampled_from(SYMBOLS), mark_prices_st), max_size=4))),
    (3, st.tuples(st.just("advance"), st.sampled_from([0.0, 1e-9, 0.001, 0.25, 0.5, 1.0, 2.0, 5.0, 31.0]))),
    (1, set_limits_st),
    (2, st.tuples(st.just("state"), st.sampled_from(["node", "symbol"]), st.sampled_from(NODES),
                  st.sampled_from(SYMBOLS), st.sampled_from([0, 0, 0, 1, 2]))),
    (1, st.tuples(st.just("roll_day"))),
    (1, st.tuples(st.just("reserve_orders"), st.integers(0, 64))),
    (1, position_limits_st),
    (1, allow_lists_st),
)


@st.composite
def universes(draw):
    """A random instrument set, duplicate window and starting limits."""
    config = [draw(instruments(symbol)) for symbol in SYMBOLS]
    duplicate_window = draw(st.sampled_from([0.0, 0.0, 0.5, 2.0]))
    setup = draw(st.lists(weighted((3, set_limits_st), (2, position_limits_st), (1, allow_lists_st)), max_size=5))
    return config, duplicate_window, setup, draw(id_patterns)


# New order ids as (first, step): in sequence (the direct index), strided and
# scattered (the hash map), and at both ends of int64.
id_patterns = st.one_of(
    st.just((1, 1)), st.just((1, 1)), st.just((7, 16)), st.just((1, 2**32)),
    st.just((-(2**63), 1)), st.just((2**63 - 1, -1)), st.just((-5, 1)),
    st.tuples(st.integers(-(2**62), 2**62), st.integers(2**40, 2**44)))


# ---------------------------------------------------------------------- harness
class Harness:
    """Applies each operation to the model and to one or more engines, and
    requires every engine to answer exactly as the model does."""

    def __init__(self, config, duplicate_window, engines=1, ids=(1, 1)):
        self.clocks = [ManualClock(START_NS) for _ in range(engines)]
        self.model = ref.ReferenceModel(self.clocks[0], firm=FIRM, duplicate_window=duplicate_window)
        self.engines = [RiskEngine(firm=FIRM, clock=c, duplicate_window=duplicate_window) for c in self.clocks]
        self.ids: list[int] = []  # every id ever submitted (accepted or not)
        self.exec_ids: list[str] = []
        self.next_id, self.id_step = ids
        self.next_exec = 1
        self.log: list[str] = []
        for ins in config:
            self.apply_all(lambda t: t.add_instrument(ins))
        for name, parent in TREE:
            self.apply_all(lambda t: t.add_account(name, parent=parent))

    # -- plumbing
    def apply_all(self, call):
        """Run ``call`` on the model, then on every engine; return the model's result."""
        call(self.model)
        for engine in self.engines:
            call(engine)

    def both(self, what, model_call, engine_call):
        """Run a call on the model and the engines; results (or exceptions) must agree."""
        self.log.append(what)
        try:
            expected = ("ok", model_call(self.model))
        except ref.ModelUnknownOrder:
            expected = ("raise", UnknownOrderError)
        except ref.ModelInvalidInput:
            expected = ("raise", InvalidInputError)
        for engine in self.engines:
            try:
                got = ("ok", engine_call(engine))
            except RiskError as exc:
                got = ("raise", type(exc), str(exc))
            if expected[0] == "raise":
                assert got[0] == "raise" and issubclass(got[1], expected[1]), self.explain(what, expected, got)
            else:
                assert got[0] == "ok", self.explain(what, expected, got)
                result = got[1]
                if hasattr(result, "code"):  # a Decision
                    assert (result.code, result.accepted) == (expected[1], expected[1] == 0), \
                        self.explain(what, ref_reason(expected[1]), repr(result))
                    detail = self.model.last_detail
                    if not result.accepted and detail is not None:
                        assert (result.node, result.value, result.limit) == detail, \
                            self.explain(what, f"{ref_reason(expected[1])} at {detail}",
                                         f"{result.reason.name} at {(result.node, result.value, result.limit)}")
                    u = self.model.last_utilisation
                    if result.accepted and u is not None:
                        assert math.isclose(result.utilisation, u, rel_tol=1e-9, abs_tol=1e-12), \
                            self.explain(what, f"utilisation {u}", f"utilisation {result.utilisation}")
                else:
                    assert result == expected[1], self.explain(what, expected, got)
        return expected

    def explain(self, what, expected, got):
        tail = "\n  ".join(self.log if os.environ.get("RISKCORE_FULL_LOG") else self.log[-25:])
        return f"{what}: model {expected}, engine {got}\nlast operations:\n  {tail}"

    # -- argument builders (they read the model, which the engine must match)
    def base_ticks(self, symbol):
        ins = self.model.instruments.get(symbol)
        if ins is not None and ins.ref is not None:
            return ins.ref
        return UNIVERSE.get(symbol, UNIVERSE["AAA"])[3]

    def tick(self, symbol):
        return UNIVERSE.get(symbol, UNIVERSE["AAA"])[0]

    def quantity(self, symbol, spec, order=None):
        kind, value = spec
        if kind == "same":
            return order.remaining if order is not None else 1
        return value * UNIVERSE.get(symbol, UNIVERSE["AAA"])[1] if kind == "lots" else value

    def order_price(self, symbol, spec):
        if spec is None:
            return None
        kind, value = spec
        tick, base = self.tick(symbol), self.base_ticks(symbol)
        if kind == "ticks":
            return (base + value) * tick
        return {"nan": math.nan, "inf": math.inf, "zero": 0.0, "neg": -tick * base, "offgrid": (base + 0.37) * tick,
                "tiny": 1e-12, "huge": 1e15}[value]

    def fill_price(self, symbol, spec):
        if spec[0] == "bad":
            return spec[1]
        ticks, frac = spec
        tick = self.tick(symbol)
        if frac == 0.5 and tick != 0.25:
            frac = 0.0  # a half tick is only exact in binary for the 0.25 grid
        return (max(self.base_ticks(symbol) + ticks, 1) + frac) * tick

    def order_id(self, spec):
        working = sorted(i for i, o in self.model.orders.items() if o.status == ref.WORKING)
        if spec == "unknown" or not self.ids:
            return 10**15 + 7
        kind, k = spec
        known = sorted(self.model.orders)
        pool = (working or known if kind == "working" else self.ids) or self.ids
        return pool[k % len(pool)]

    def exec_id(self, spec):
        if spec is None:
            return None
        if spec == "new" or not self.exec_ids:
            self.exec_ids.append(f"E{self.next_exec}")
            self.next_exec += 1
            return self.exec_ids[-1]
        return self.exec_ids[spec % len(self.exec_ids)]

    # -- operations
    def run(self, op):
        getattr(self, "op_" + op[0])(*op[1:])
        self.assert_same()

    def op_submit(self, id_spec, account, symbol, side, qty, price):
        if id_spec == "new" or not self.ids:
            oid = self.next_id
            self.next_id += self.id_step
        else:
            oid = self.ids[id_spec % len(self.ids)]
        self.ids.append(oid)
        q, p = self.quantity(symbol, qty), self.order_price(symbol, price)
        self.both(f"submit({oid}, {account!r}, {symbol!r}, {side}, {q!r}, {p!r})",
                  lambda t: t.submit(oid, account, symbol, side, q, p),
                  lambda t: t.submit(oid, account, symbol, side, q, p))

    def op_check(self, account, symbol, side, qty, price):
        q, p = self.quantity(symbol, qty), self.order_price(symbol, price)
        self.both(f"check({account!r}, {symbol!r}, {side}, {q!r}, {p!r})",
                  lambda t: t.check(account, symbol, side, q, p),
                  lambda t: t.check(account, symbol, side, q, p))

    def op_modify(self, order_spec, qty, price):
        oid = self.order_id(order_spec)
        order = self.model.orders.get(oid)
        symbol = order.symbol if order else "AAA"
        q = self.quantity(symbol, qty, order)
        p = None if price == "keep" else self.order_price(symbol, price)
        self.both(f"modify({oid}, {q!r}, {p!r})", lambda t: t.modify(oid, q, p), lambda t: t.modify(oid, q, p))

    def op_request_cancel(self, order_spec):
        oid = self.order_id(order_spec)
        self.both(f"request_cancel({oid})", lambda t: t.request_cancel(oid), lambda t: t.request_cancel(oid))

    def op_fill(self, order_spec, size, price, exec_spec):
        oid = self.order_id(order_spec)
        order = self.model.orders.get(oid)
        symbol = order.symbol if order else "AAA"
        lot = UNIVERSE[symbol][1]
        remaining = order.remaining if order else 0
        qty = {"part": max(remaining // 2, 1), "full": max(remaining, lot), "over": remaining + lot,
               "one": 1, "zero": 0, "frac": 2.5, "whole": float(lot)}[size]
        p = self.fill_price(symbol, price)
        xid = self.exec_id(exec_spec)
        self.both(f"on_fill({oid}, {qty}, {p!r}, {xid!r})",
                  lambda t: t.on_fill(oid, qty, p, xid), lambda t: t.on_fill(oid, qty, p, xid))

    def op_finish(self, kind, order_spec):
        oid = self.order_id(order_spec)
        self.both(f"on_{kind}({oid})", lambda t: getattr(t, "on_" + kind)(oid),
                  lambda t: getattr(t, "on_" + kind)(oid))

    def op_book_fill(self, account, symbol, side, lots, price, exec_spec):
        qty = lots * UNIVERSE[symbol][1]
        p = self.fill_price(symbol, price)
        xid = self.exec_id(exec_spec)
        self.both(f"book_fill({account!r}, {symbol!r}, {side}, {qty}, {p!r}, {xid!r})",
                  lambda t: t.book_fill(account, symbol, side, qty, p, xid),
                  lambda t: t.book_fill(account, symbol, side, qty, p, xid))

    def op_mark(self, symbol, price):
        p = self.fill_price(symbol, price)
        self.both(f"update_price({symbol!r}, {p!r})",
                  lambda t: t.update_price(symbol, p), lambda t: t.update_price(symbol, p))

    def op_marks(self, rows):
        ids = np.array([SYMBOLS.index(symbol) for symbol, _ in rows], dtype=np.int32)
        prices = np.array([self.fill_price(symbol, spec) for symbol, spec in rows], dtype=np.float64)

        self.both(f"update_prices({ids.tolist()}, {prices.tolist()})",
                  lambda t: t.update_prices([SYMBOLS[i] for i in ids.tolist()], prices.tolist()),
                  lambda t: t.update_prices(ids, prices))

    def op_advance(self, seconds):
        self.log.append(f"clock.advance({seconds})")
        for clock in self.clocks:
            clock.advance(seconds)

    def op_set_limits(self, node, lim):
        self.both(f"set_limits({node!r}, {lim!r})",
                  lambda t: t.set_limits(node, lim), lambda t: t.set_limits(node, lim))

    def op_state(self, kind, node, symbol, state):
        if kind == "node":
            self.both(f"set_trading_state({state}, account={node!r})",
                      lambda t: t.set_trading_state(state, account=node),
                      lambda t: t.set_trading_state(TradingState(state), account=node))
        else:
            self.both(f"set_trading_state({state}, symbol={symbol!r})",
                      lambda t: t.set_trading_state(state, symbol=symbol),
                      lambda t: t.set_trading_state(TradingState(state), symbol=symbol))

    def op_roll_day(self):
        self.both("roll_day()", lambda t: t.roll_day(), lambda t: t.roll_day())

    def op_reserve_orders(self, n):
        # Sizing only: the model has nothing to do, and the engines must answer as before.
        self.both(f"reserve_orders({n})", lambda t: None, lambda t: t.reserve_orders(n))

    def op_position_limit(self, node, symbol, max_long, max_short):
        self.both(f"set_position_limit({node!r}, {symbol!r}, {max_long}, {max_short})",
                  lambda t: t.set_position_limit(node, symbol, max_long, max_short),
                  lambda t: t.set_position_limit(node, symbol, max_long, max_short))

    def op_allow(self, node, symbols):
        syms = None if symbols is None else sorted(symbols)
        self.both(f"set_allowed_symbols({node!r}, {syms})",
                  lambda t: t.set_allowed_symbols(node, syms), lambda t: t.set_allowed_symbols(node, syms))

    # -- the comparison after every operation
    def assert_same(self):
        model = self.model
        expected_events = sorted((t, account, reason, value, limit)
                                 for t, account, _s, reason, value, limit in model.drain_events())
        rows = model.aggregate_rows()
        node_positions = model.node_positions()
        for engine in self.engines:
            context = "\n  ".join(self.log[-25:])
            got_rows = engine.aggregates().tolist()
            for expected, got in zip(rows, got_rows):
                assert tuple(got) == expected, (
                    f"aggregate of {NODES[expected[0]]} differs:\n  fields {AGG_FIELDS}\n  model  {expected}\n"
                    f"  engine {tuple(got)}\nlast operations:\n  {context}")
            assert len(got_rows) == len(rows)
            try:
                assert engine.verify() is True
            except StateError as exc:
                raise AssertionError(f"verify(): {exc}\nlast operations:\n  {context}") from exc
            got_positions = {(int(r["account"]), int(r["symbol"]), int(r["quantity"]), round(r["realized"] * 1e6))
                             for r in engine.positions()}
            assert got_positions == model.leaf_positions(), (
                f"positions() differ:\n  model  {sorted(model.leaf_positions())}\n  engine {sorted(got_positions)}"
                f"\nlast operations:\n  {context}")
            for (node, symbol), (quantity, realized, unrealized, cost) in node_positions.items():
                pos = engine.position(node, symbol)
                got = (pos.quantity, round(pos.realized * 1e6), round(pos.unrealized * 1e6))
                assert got == (quantity, realized, unrealized), \
                    f"position({node}, {symbol}): model {(quantity, realized, unrealized)}, engine {got}\n  {context}"
                average = cost / quantity / model.instruments[symbol].tv * UNIVERSE[symbol][0] if quantity else 0.0
                assert math.isclose(pos.average_price, average, rel_tol=1e-12), \
                    f"position({node}, {symbol}).average_price: model {average}, engine {pos.average_price}"
            for oid in model.used_ids:
                order = model.orders.get(oid)
                if order is None:  # forgotten by roll_day
                    with pytest.raises(UnknownOrderError):
                        engine.order(oid)
                    continue
                info = engine.order(oid)
                got = (info.account, info.symbol, info.side, round(info.price / UNIVERSE[info.symbol][0]),
                       info.remaining, info.filled, info.market, int(info.status))
                expected = (NODES[order.account], order.symbol, order.side, order.price, order.remaining,
                            order.filled, order.market, order.status)
                assert got == expected, f"order({oid}): model {expected}, engine {got}\n  {context}"
            got_orders = {(int(r["order_id"]), int(r["account"]), int(r["symbol"]), int(r["side"]), bool(r["market"]),
                           round(r["price"] / UNIVERSE[SYMBOLS[r["symbol"]]][0]), int(r["remaining"]),
                           int(r["filled"])) for r in engine.open_orders()}
            assert got_orders == model.open_order_rows(), (
                f"open orders differ:\n  model  {sorted(model.open_order_rows())}\n  engine {sorted(got_orders)}"
                f"\nlast operations:\n  {context}")
            for symbol in SYMBOLS:
                assert int(engine.trading_state(symbol=symbol)) == model.trading_state(symbol=symbol), \
                    f"trading state of {symbol} differs\n  {context}"
            for row in rows:  # aggregate(): the same figures in currency, with net and gross
                n, _parent, long, short, wb, ws, realized, unrealized, daily, open_orders, state = row
                a = engine.aggregate(NODES[n])
                got = (a.long, a.short, a.net, a.gross, a.working_buy, a.working_sell, a.realized, a.unrealized,
                       a.daily_pnl, a.open_orders, int(a.state))
                # Exact micro-units divided once, as the engine does: equal floats even beyond 2**53.
                expected = tuple(v / 1e6 for v in (long, short, long - short, long + short + wb + ws, wb, ws,
                                                    realized, unrealized, daily)) + (open_orders, state)
                assert got == expected, f"aggregate({NODES[n]!r}) differs\n  {context}"
            got_events = sorted((ev.time, ev.account, int(ev.reason), ev.value, ev.limit) for ev in engine.drain_events())
            assert got_events == expected_events, (
                f"breach events: model {expected_events}, engine {got_events}\nlast operations:\n  {context}")


AGG_FIELDS = ("account", "parent", "long", "short", "working_buy", "working_sell", "realized", "unrealized",
              "daily_pnl", "open_orders", "state")


def ref_reason(code):
    return Reason(code).name


def build(universe, prefix, engines=1):
    """A harness with the universe configured and ``prefix`` operations applied."""
    config, duplicate_window, setup, ids = universe
    harness = Harness(config, duplicate_window, engines=engines, ids=ids)
    for op in setup + list(prefix):
        harness.run(op)
    return harness


# ------------------------------------------------------------------------ tests
@settings(PROFILE, max_examples=scaled(600))
@given(universe=universes(), ops=st.lists(ops_st, min_size=20, max_size=80))
def test_engine_matches_reference_model_over_random_operations(universe, ops):
    """Every decision, position, aggregate, order, state and event after every
    operation (the harness compares them all after each step)."""
    build(universe, ops)


order_calls = st.tuples(accounts_st, symbols_st, sides_st, quantities_st, order_prices_st)


@settings(PROFILE, max_examples=scaled(100))
@given(universe=universes(), ops=st.lists(ops_st, max_size=40), what_if=order_calls,
       continuation=st.lists(ops_st, max_size=15))
def test_check_changes_nothing_and_agrees_with_the_model(universe, ops, what_if, continuation):
    """Two identical engines; only the first runs the check. Observable state
    must not move, and both must go on answering alike (rate windows and the
    duplicate guard must not have seen the what-if)."""
    harness = build(universe, ops, engines=2)
    engine, twin = harness.engines

    def observable():
        return (engine.aggregates().tolist(), engine.positions().tolist(), engine.open_orders().tolist(),
                [engine.position(n, s) for n in NODES for s in SYMBOLS])

    before = observable()
    account, symbol, side, qty, price = what_if
    q, p = harness.quantity(symbol, qty), harness.order_price(symbol, price)
    harness.engines = [engine]
    harness.both(f"check({account!r}, {symbol!r}, {side}, {q!r}, {p!r})",
                 lambda t: t.check(account, symbol, side, q, p), lambda t: t.check(account, symbol, side, q, p))
    harness.engines = [engine, twin]
    assert observable() == before
    harness.assert_same()
    for op in continuation:
        harness.run(op)


batch_rows = st.lists(st.tuples(
    weighted((4, st.just("new")), (1, st.integers(0, 10**6))),  # a fresh id, or one used before
    st.one_of(st.sampled_from([NODES.index(a) for a in LEAVES]), st.integers(0, len(NODES))),
    st.one_of(st.sampled_from([0, 1, 2]), st.integers(0, len(SYMBOLS))),
    sides_st,
    st.one_of(st.tuples(st.just("lots"), st.integers(1, 10)),
              st.tuples(st.just("raw"), st.sampled_from([0, -1, 7, 10**12 + 1]))),
    st.one_of(st.tuples(st.just("ticks"), st.integers(-5, 5)), st.just(None),
              st.tuples(st.just("bad"), st.sampled_from(["nan", "zero", "offgrid"]))),
), min_size=1, max_size=12)


@settings(PROFILE, max_examples=scaled(100))
@given(universe=universes(), ops=st.lists(ops_st, max_size=30), rows=batch_rows)
def test_batches_equal_sequential_single_calls_and_check_batch_books_nothing(universe, ops, rows):
    """Three identical engines: one runs check_batch then submit_batch, one the
    same orders as single submits, and one the what-if batch as single
    submits with fresh ids (taken back by discarding that engine). The model
    runs the batch both ways."""
    harness = build(universe, ops, engines=3)
    batch_engine, single_engine, what_if_engine = harness.engines
    model = harness.model
    id_list = []
    for spec, *_ in rows:
        used = harness.ids + id_list
        fresh = harness.next_id + len(id_list) * harness.id_step
        id_list.append(used[spec % len(used)] if spec != "new" and used else fresh)
    ids = np.array(id_list, dtype=np.int64)
    accounts = np.array([r[1] for r in rows], dtype=np.int32)
    symbols = np.array([r[2] for r in rows], dtype=np.int32)
    sides = np.array([r[3] for r in rows], dtype=np.int8)
    names = [SYMBOLS[s] if s < len(SYMBOLS) else "AAA" for s in symbols.tolist()]
    quantities = np.array([harness.quantity(n, r[4]) for n, r in zip(names, rows)], dtype=np.int64)
    prices_list = [harness.order_price(n, r[5]) for n, r in zip(names, rows)]
    market = np.array([p is None for p in prices_list], dtype=np.bool_)
    prices = np.array([math.nan if p is None else p for p in prices_list], dtype=np.float64)
    args = (accounts.tolist(), symbols.tolist(), sides.tolist(), quantities.tolist(), prices.tolist(),
            market.tolist())

    # check_batch must book nothing: the observable state stays, and the
    # submits below (on this engine) must answer as on the twin that never saw
    # the what-if batch (so no rate window or duplicate record kept it either).
    checked = batch_engine.check_batch(accounts, symbols, sides, quantities, prices, market).tolist()
    assert checked == model.batch(None, *args, book=False)
    harness.engines = [batch_engine, single_engine]
    harness.assert_same()
    fresh = 10**12
    one_by_one = [what_if_engine.submit(fresh + i, int(accounts[i]), names[i] if symbols[i] < len(SYMBOLS) else "ZZZ",
                                        int(sides[i]), int(quantities[i]),
                                        None if market[i] else float(prices[i])).code for i in range(len(rows))]
    assert checked == one_by_one

    submitted = batch_engine.submit_batch(ids, accounts, symbols, sides, quantities, prices, market).tolist()
    singles = []
    for i, oid in enumerate(ids.tolist()):
        price = None if market[i] else float(prices[i])
        singles.append(single_engine.submit(oid, int(accounts[i]), names[i] if symbols[i] < len(SYMBOLS) else "ZZZ",
                                            int(sides[i]), int(quantities[i]), price).code)
    assert submitted == singles
    assert model.batch(ids.tolist(), *args, book=True) == submitted
    harness.assert_same()


@settings(PROFILE, max_examples=scaled(100))
@given(universe=universes(), ops=st.lists(ops_st, max_size=40), continuation=st.lists(ops_st, max_size=30))
def test_state_round_trip_gives_an_engine_that_behaves_the_same(universe, ops, continuation):
    """from_state(to_state()) answers every later operation as the original and the model do."""
    harness = build(universe, ops)
    engine = harness.engines[0]
    state = engine.to_state()
    clock = ManualClock(harness.clocks[0].time_ns)
    restored = RiskEngine.from_state(state, clock)
    state_again = restored.to_state()
    harness.engines.append(restored)
    harness.clocks.append(clock)
    harness.assert_same()
    for op in continuation:
        harness.run(op)
    # Last, so that a difference in behaviour is reported first: a snapshot
    # of the restored engine is the snapshot it was restored from.
    assert state_again == state


@settings(PROFILE, max_examples=5)
@given(seed=st.integers(0, 2**32 - 1), mult=st.sampled_from([1.0, 50.0]))
def test_twenty_thousand_fills_are_exact_and_a_round_trip_leaves_no_cost(seed, mult):
    """realized - cost only ever moves by the fill's cash flow (-s * p), so once
    flat the cost is 0 and realized is the exact sum of the cash flows."""
    rng = random.Random(seed)
    clock = ManualClock(START_NS)
    # A micro-unit tick keeps P&L in range while prices near 10^9 ticks and
    # positions in the millions make cost * closed quantity overflow 64 bits
    # unless the engine widens it (the README's tdiv is on the exact product).
    tick = 1e-6 if mult == 1.0 else 0.25
    base = 10**9 if mult == 1.0 else 16_000
    ins = Instrument("X", tick_size=tick, multiplier=mult, reference_price=base * tick)
    engine, model = RiskEngine(clock=clock), ref.ReferenceModel(clock)
    for t in (engine, model):
        t.add_instrument(ins)
        t.add_account("desk")
        t.add_account("leaf", parent="desk")
    leaf = 2
    cash_ticks = 0
    for i in range(20_000):
        side = rng.choice([1, -1])
        qty = rng.randint(1, 100_000 if mult == 1.0 else 20)
        ticks = base + rng.randint(-base // 10, base // 10)
        for t in (engine, model):
            t.book_fill("leaf", "X", side, qty, ticks * tick)
        cash_ticks -= side * qty * ticks
        if i % 2000 == 0:
            assert engine.aggregates().tolist() == model.aggregate_rows()
    assert engine.aggregates().tolist() == model.aggregate_rows()
    assert engine.verify() is True
    pos = model.leaves[(leaf, "X")].pos
    if pos:
        for t in (engine, model):
            t.book_fill("leaf", "X", -1 if pos > 0 else 1, abs(pos), base * tick)
        cash_ticks += pos * base
    row = engine.aggregates()[leaf]
    tick_value = ins.tick_value
    assert engine.position("leaf", "X").quantity == 0
    assert int(row["unrealized"]) == 0  # (0 * ref - cost) * tv: the cost is gone
    assert int(row["realized"]) == cash_ticks * tick_value
    assert engine.aggregates().tolist() == model.aggregate_rows()


big_quantities = st.one_of(st.integers(2**20, 2**22), st.sampled_from([2**21, 2**22]))
# Fills past the capacity (2^62 micro-units) are refused whole: quantities up
# to 2^24 at up to 2^40 ticks reach it from either side.
fill_quantities = st.one_of(st.integers(1, 2**18), st.integers(2**21, 2**24))
big_prices = st.one_of(st.integers(2**39, 2**40), st.just(2**40))


@settings(PROFILE, max_examples=scaled(30))
@given(
    ops=st.lists(st.one_of(
        st.tuples(st.just("submit"), st.sampled_from(["l1", "l2", "l3"]), st.sampled_from([1, -1]),
                  big_quantities, big_prices),
        st.tuples(st.just("fill"), st.sampled_from(["l1", "l2", "l3"]), st.sampled_from([1, -1]),
                  fill_quantities, big_prices)), min_size=2, max_size=8),
    gross=st.sampled_from([None, None, 1.0, 10**6, 5 * 10**12]),
)
def test_aggregates_stay_exact_for_orders_and_positions_up_to_the_notional_cap(ops, gross):
    """README: an order is refused (NOTIONAL_OVERFLOW) when its notional, or a
    node's gross notional with it, would exceed 2^62 micro-units, a fill that
    would take a total past it is refused whole (the account halted), and money
    is exact integer arithmetic; so orders and fills near the cap must still sum
    exactly and a gross limit must keep seeing the true sum. A one-micro-unit tick value keeps
    each order under the cap: q <= 2^22 units at p <= 2^40 ticks."""
    clock = ManualClock(START_NS)
    ins = Instrument("U", tick_size=1e-6, multiplier=1.0, reference_price=2**39 * 1e-6)
    engine, model = RiskEngine(clock=clock), ref.ReferenceModel(clock)
    for t in (engine, model):
        t.add_instrument(ins)
        t.add_account("desk")
        for leaf in ("l1", "l2", "l3"):
            t.add_account(leaf, parent="desk")
        t.set_limits(FIRM, Limits(max_gross_notional=gross))
    for i, (kind, leaf, side, qty, ticks) in enumerate(ops):
        price = ticks * 1e-6
        if kind == "submit":
            expected = model.submit(i + 1, leaf, "U", side, qty, price)
            got = engine.submit(i + 1, leaf, "U", side, qty, price)
            assert got.code == expected, f"op {i} {ops[i]}: model {ref_reason(expected)}, engine {got!r}"
        else:
            outcomes = []
            for t, refused in ((model, ref.ModelCapacity), (engine, CapacityError)):
                try:
                    outcomes.append(t.book_fill(leaf, "U", side, qty, price))
                except refused:
                    outcomes.append("refused")
            assert outcomes[0] == outcomes[1], f"op {i} {ops[i]}: model {outcomes[0]}, engine {outcomes[1]}"
        assert engine.verify() is True
        assert engine.aggregates().tolist() == model.aggregate_rows(), f"after op {i} {ops[i]}"


def plain_universe(with_references: bool):
    """The universe's instruments with no collars or bands (and no reference
    prices at all, when asked): nothing but positions and P&L."""
    return [Instrument(symbol, tick_size=tick, lot_size=lot, multiplier=mult, tradable=tradable,
                       reference_price=base * tick if with_references else None, require_reference=False)
            for symbol, (tick, lot, mult, base, tradable) in UNIVERSE.items()]


fills_st = st.tuples(st.just("book_fill"), st.sampled_from(LEAVES), st.sampled_from(TRADED),
                     st.sampled_from([1, -1]), st.integers(1, 10),
                     st.tuples(st.integers(-40, 40), st.sampled_from([0.0, 0.3, 0.7])),
                     weighted((1, st.just("new")), (3, st.integers(0, 10**6))))


@settings(PROFILE, max_examples=scaled(60))
@given(ops=st.lists(weighted((3, fills_st), (2, st.tuples(st.just("roll_day"))),
                            (1, st.tuples(st.just("advance"), st.sampled_from([1.0, 86_400.0])))),
                    min_size=6, max_size=25))
def test_repeated_exec_ids_are_ignored_for_the_day_they_arrive_and_the_next(ops):
    """README: a repeated exec_id is ignored while it is remembered, for the day it
    arrived and the day after; roll_day forgets older ones and finished orders.
    Exec ids are drawn from a small pool so that most fills repeat one."""
    harness = Harness(plain_universe(with_references=True), 0.0)
    for op in ops:
        harness.run(op)


@settings(PROFILE, max_examples=scaled(60))
@given(fills=st.lists(st.tuples(st.just("book_fill"), st.sampled_from(LEAVES), st.sampled_from(["AAA", "ESF"]),
                                st.sampled_from([1, -1]), st.integers(1, 2),
                                st.tuples(st.integers(-40, 40), st.just(0.0)), st.just("new")),
                      min_size=2, max_size=12),
       marks=st.lists(st.tuples(st.just("mark"), st.sampled_from(["AAA", "ESF"]),
                                st.tuples(st.integers(-50, 50), st.just(0.0))), min_size=1, max_size=3))
def test_the_first_reference_price_revalues_every_node_including_flat_ones(fills, marks):
    """Without a reference the unrealized P&L is 0; the first reference makes it
    (pos * ref - cost) * tv at every node, which is -cost * tv at a node whose
    leaves net to a flat position but not to a zero cost."""
    harness = Harness(plain_universe(with_references=False), 0.0)
    for op in fills + marks:
        harness.run(op)


@settings(PROFILE, max_examples=scaled(60))
@given(exec_ids=st.lists(st.text("EX0123456789", min_size=1, max_size=6), min_size=2, max_size=40, unique=True))
def test_a_snapshot_of_a_restored_engine_is_the_snapshot_it_was_restored_from(exec_ids):
    """to_state() is "plain data (for snapshots)": restoring it and taking a
    snapshot again must give the same data, whatever the fills seen so far."""
    harness = Harness(plain_universe(with_references=True), 0.0)
    for i, exec_id in enumerate(exec_ids):
        harness.exec_ids.append(exec_id)
        harness.run(("book_fill", LEAVES[i % len(LEAVES)], "AAA", 1, 1, (0, 0.0), i))
    state = harness.engines[0].to_state()
    assert RiskEngine.from_state(state, ManualClock(harness.clocks[0].time_ns)).to_state() == state

