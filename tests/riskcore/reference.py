"""An independent pure-Python model of the README's "Risk model" section.

It is written from the README text alone, to be obviously correct rather than
fast: plain ints, dicts and lists, and every aggregate is recomputed from the
leaves whenever it is needed (the engine keeps them incrementally; agreeing
with a from-scratch sum is the point). Money is integer micro-units, prices
integer ticks, time integer nanoseconds, exactly as the README specifies.

Where the README leaves a choice open, the choice made here is marked
"AMBIGUITY" in a comment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

# Reason codes, by name, as the README lists them (values from _types.pxd).
OK = 0
INVALID_SIDE, INVALID_QUANTITY, INVALID_PRICE, DUPLICATE_ORDER_ID, UNKNOWN_ORDER = 1, 2, 3, 4, 5
UNKNOWN_SYMBOL, SYMBOL_RESTRICTED, UNKNOWN_ACCOUNT, ACCOUNT_NOT_TRADABLE, SYMBOL_NOT_PERMITTED = 6, 7, 8, 9, 10
LOT_SIZE, TICK_SIZE, NOTIONAL_OVERFLOW, TRADING_HALTED, REDUCE_ONLY = 11, 12, 13, 14, 15
DAILY_LOSS_LIMIT, EXECUTION_THROTTLE, NO_REFERENCE_PRICE, STALE_REFERENCE_PRICE = 16, 17, 18, 19
PRICE_OUT_OF_RANGE, PRICE_COLLAR, MAX_ORDER_QUANTITY, MAX_ORDER_NOTIONAL, POSITION_LIMIT = 20, 21, 22, 23, 24
MAX_GROSS_NOTIONAL, MAX_NET_NOTIONAL, MAX_OPEN_ORDERS, ORDER_RATE_LIMIT = 25, 26, 27, 28
MODIFY_RATE_LIMIT, CANCEL_RATE_LIMIT, DUPLICATE_ORDER, SELF_MATCH = 29, 30, 31, 32

ACTIVE, REDUCING, HALTED = 0, 1, 2
WORKING, FILLED, CANCELLED, EXPIRED, REJECTED = 0, 1, 2, 3, 4
BUY, SELL = 1, -1

MAX_QUANTITY = 10**12
MAX_TICKS = 10**15
MAX_NOTIONAL = 2**62
MARKET = "MARKET"  # the one "price" all market orders of a side share for the duplicate guard


class ModelUnknownOrder(KeyError):
    """The model's counterpart of the engine's UnknownOrderError."""


class ModelInvalidInput(ValueError):
    """The model's counterpart of the engine's InvalidInputError."""


class ModelCapacity(ModelInvalidInput):
    """The model's counterpart of the engine's CapacityError."""


def seconds_to_ns(seconds) -> int:
    """README: configuration seconds become ``round(seconds * 1e9)`` nanoseconds."""
    return round(seconds * 1e9)


def money_to_micros(value) -> int:
    """Money in currency to integer micro-units."""
    return round(value * 1e6)


def tdiv(a: int, b: int) -> int:
    """Integer division truncated toward zero (Python's // floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def sign(x: int) -> int:
    return (x > 0) - (x < 0)


def round_half_away(x: float) -> int:
    """Nearest integer, halves away from zero (README: marks and fill prices)."""
    return sign(x) * math.floor(abs(x) + 0.5) if x else 0


def is_whole_quantity(q) -> bool:
    """README step 1: a whole number in 1..10^12 (an integral float counts)."""
    if isinstance(q, bool) or not isinstance(q, (int, float)):
        return False
    if isinstance(q, float) and not (math.isfinite(q) and q.is_integer()):
        return False
    return 1 <= q <= MAX_QUANTITY


@dataclass
class Inst:
    symbol: str
    tick_size: float
    lot: int
    tv: int  # tick value, micro-units per tick per unit
    ref: Optional[int]  # reference in ticks, None = no reference
    ref_time: int
    max_age: Optional[int]  # ns
    require_ref: bool
    tradable: bool
    collar_bps: dict  # side -> bps or None
    collar_ticks: dict  # side -> ticks or None
    min_ticks: Optional[int]
    max_ticks: Optional[int]
    state: int = ACTIVE


@dataclass
class NodeLimits:
    """Node limits in engine units: quantities, micro-units, (count, ns) windows."""

    max_order_quantity: Optional[int] = None
    max_order_notional: Optional[int] = None
    max_gross_notional: Optional[int] = None
    max_net_notional: Optional[int] = None
    max_open_orders: Optional[int] = None
    max_daily_loss: Optional[int] = None
    new_order_rate: Optional[tuple] = None
    modify_rate: Optional[tuple] = None
    cancel_rate: Optional[tuple] = None
    fill_throttle: Optional[tuple] = None

    @classmethod
    def from_limits(cls, limits) -> "NodeLimits":
        def money(v):
            return None if v is None else money_to_micros(v)

        def window(w):
            return None if w is None else (w[0], seconds_to_ns(w[1]))

        return cls(
            max_order_quantity=limits.max_order_quantity,
            max_order_notional=money(limits.max_order_notional),
            max_gross_notional=money(limits.max_gross_notional),
            max_net_notional=money(limits.max_net_notional),
            max_open_orders=limits.max_open_orders,
            max_daily_loss=money(limits.max_daily_loss),
            new_order_rate=window(limits.new_order_rate),
            modify_rate=window(limits.modify_rate),
            cancel_rate=window(limits.cancel_rate),
            fill_throttle=window(limits.fill_throttle),
        )


@dataclass
class Node:
    name: str
    parent: Optional[int]
    children: int = 0
    active: bool = False  # has had orders or positions: may not get children
    limits: NodeLimits = field(default_factory=NodeLimits)
    allow: Optional[set] = None
    state: int = ACTIVE
    cause: int = 0  # reason that set the state automatically; 0 = set by hand
    sod: int = 0  # realized + unrealized at the last roll_day
    # Message times per window kind ("new", "modify", "cancel", "fill").
    windows: dict = field(default_factory=lambda: {"new": [], "modify": [], "cancel": [], "fill": []})
    position_limits: dict = field(default_factory=dict)  # symbol -> (max_long, max_short)


@dataclass
class Order:
    order_id: int
    account: int
    symbol: str
    side: int
    market: bool
    price: int  # ticks; the reference at acceptance for a market order
    remaining: int
    filled: int = 0
    status: int = WORKING


@dataclass
class Leaf:
    """One (leaf account, symbol) position."""

    pos: int = 0
    cost: int = 0  # signed micro-units of the open position
    realized: int = 0  # micro-units


@dataclass
class Agg:
    """A node's aggregate, recomputed from scratch (README "Aggregates")."""

    long: int = 0
    short: int = 0
    working_buy: int = 0
    working_sell: int = 0
    realized: int = 0
    unrealized: int = 0
    open_orders: int = 0
    # per symbol: [pos, cost, wb quantity, ws quantity, realized]
    per_symbol: dict = field(default_factory=dict)

    def sym(self, symbol):
        return self.per_symbol.setdefault(symbol, [0, 0, 0, 0, 0])


class ReferenceModel:
    """The risk model of the README, one obvious step at a time."""

    def __init__(self, clock, firm: str = "FIRM", duplicate_window: float = 0.0):
        self.clock = clock  # anything with a ``time_ns`` attribute
        self.nodes: list[Node] = [Node(firm, None)]
        self.by_name = {firm: 0}
        self.instruments: dict[str, Inst] = {}
        self.leaves: dict[tuple[int, str], Leaf] = {}
        self.orders: dict[int, Order] = {}
        self.used_ids: set[int] = set()
        # Exec ids of the current day and of the day before (README: remembered two days).
        self.exec_ids: set = set()
        self.exec_ids_before: set = set()
        self.dup_window = seconds_to_ns(duplicate_window)
        self.dup_last: dict[tuple, int] = {}
        self.events: list[tuple] = []  # (time, account, symbol, reason, value, limit)
        self.last_utilisation: Optional[float] = None  # of the last accepted order or modify
        self.last_detail: Optional[tuple] = None  # (node, value, limit) of the last rejection at a node

    @property
    def now(self) -> int:
        return self.clock.time_ns

    # ----------------------------------------------------------- configuration
    def add_instrument(self, ins) -> None:
        ref = None if ins.reference_price is None else round_half_away(ins.reference_price / ins.tick_size)
        self.instruments[ins.symbol] = Inst(
            symbol=ins.symbol,
            tick_size=ins.tick_size,
            lot=ins.lot_size,
            tv=round(ins.tick_size * ins.multiplier * 1e6),
            ref=ref,
            ref_time=self.now,
            max_age=None if ins.max_reference_age is None else seconds_to_ns(ins.max_reference_age),
            require_ref=ins.require_reference,
            tradable=ins.tradable,
            collar_bps={BUY: ins.collar_bps_buy, SELL: ins.collar_bps_sell},
            collar_ticks={BUY: ins.collar_ticks_buy, SELL: ins.collar_ticks_sell},
            # AMBIGUITY: the README does not say how min/max price become ticks; the
            # tests only use prices on the grid, where round() is exact.
            min_ticks=None if ins.min_price is None else round(ins.min_price / ins.tick_size),
            max_ticks=None if ins.max_price is None else round(ins.max_price / ins.tick_size),
        )

    def add_account(self, name: str, parent: Optional[str] = None) -> None:
        p = self.by_name[parent if parent is not None else self.nodes[0].name]
        if self.nodes[p].active:
            raise ModelInvalidInput("a node with orders or positions cannot receive children")
        self.nodes[p].children += 1
        self.by_name[name] = len(self.nodes)
        self.nodes.append(Node(name, p))

    def set_limits(self, account: str, limits) -> None:
        """Replace a node's limits; a limit change is an "after the fact" trigger."""
        n = self.by_name[account]
        self.nodes[n].limits = NodeLimits.from_limits(limits)
        self._daily_loss_check(n, self._aggregates())

    def set_position_limit(self, account, symbol, max_long=None, max_short=None) -> None:
        self.nodes[self.by_name[account]].position_limits[symbol] = (max_long, max_short)

    def set_allowed_symbols(self, account, symbols) -> None:
        self.nodes[self.by_name[account]].allow = None if symbols is None else set(symbols)

    def set_trading_state(self, state, account=None, symbol=None) -> None:
        """By hand: sets the state and clears any automatic cause."""
        if symbol is not None:
            self.instruments[symbol].state = int(state)
        else:
            node = self.nodes[self.by_name[account] if account is not None else 0]
            node.state, node.cause = int(state), 0

    def trading_state(self, account=None, symbol=None) -> int:
        if symbol is not None:
            return self.instruments[symbol].state
        return self.nodes[self.by_name[account] if account is not None else 0].state

    # ------------------------------------------------------------------ helpers
    def path(self, n: int) -> list[int]:
        """The node and its ancestors up to the firm, in that order."""
        out = []
        while n is not None:
            out.append(n)
            n = self.nodes[n].parent
        return out

    def is_leaf(self, n: int) -> bool:
        return n != 0 and self.nodes[n].children == 0

    def _aggregates(self) -> list[Agg]:
        """Every node's aggregate, summed from the leaves below it (netted per symbol)."""
        aggs = [Agg() for _ in self.nodes]
        for (leaf, symbol), lp in self.leaves.items():
            for n in self.path(leaf):
                s = aggs[n].sym(symbol)
                s[0] += lp.pos
                s[1] += lp.cost
                s[4] += lp.realized
                aggs[n].realized += lp.realized
        for o in self.orders.values():
            if o.status != WORKING:
                continue
            notional = o.remaining * o.price * self.instruments[o.symbol].tv
            for n in self.path(o.account):
                s = aggs[n].sym(o.symbol)
                if o.side == BUY:
                    s[2] += o.remaining
                    aggs[n].working_buy += notional
                else:
                    s[3] += o.remaining
                    aggs[n].working_sell += notional
                aggs[n].open_orders += 1
        for a in aggs:
            for symbol, (pos, cost, _wb, _ws, _r) in a.per_symbol.items():
                ins = self.instruments[symbol]
                if ins.ref is None:
                    continue  # README: without a reference, unrealized and notionals are 0
                a.long += max(pos, 0) * ins.ref * ins.tv
                a.short += max(-pos, 0) * ins.ref * ins.tv
                a.unrealized += pos * ins.ref * ins.tv - cost
        return aggs

    def daily_pnl(self, n: int, aggs: list[Agg]) -> int:
        return aggs[n].realized + aggs[n].unrealized - self.nodes[n].sod

    def _in_window(self, n: int, kind: str, window_ns: int) -> int:
        return sum(1 for t in self.nodes[n].windows[kind] if t > self.now - window_ns)

    def _record(self, n: int, kind: str) -> None:
        """README: a window records messages only while its limit is set.
        AMBIGUITY: set_limits keeps what a window recorded; the new (count,
        seconds) applies to it."""
        limit = {"new": "new_order_rate", "modify": "modify_rate", "cancel": "cancel_rate",
                 "fill": "fill_throttle"}[kind]
        if getattr(self.nodes[n].limits, limit) is not None:
            self.nodes[n].windows[kind].append(self.now)

    def _event(self, n: int, reason: int, symbol=None, value=0.0, limit=0.0) -> None:
        """README: an event's value and limit are currency for a daily loss (and the
        capacity), fill counts for the throttle."""
        self.events.append((self.now, self.nodes[n].name, symbol, reason, value, limit))

    def _daily_loss_check(self, n: int, aggs: list[Agg]) -> None:
        node = self.nodes[n]
        limit = node.limits.max_daily_loss
        if node.state == ACTIVE and limit is not None and self.daily_pnl(n, aggs) < -limit:
            node.state, node.cause = REDUCING, DAILY_LOSS_LIMIT
            self._event(n, DAILY_LOSS_LIMIT, value=-self.daily_pnl(n, aggs) / 1e6, limit=limit / 1e6)

    def _throttle_check(self, n: int) -> None:
        node = self.nodes[n]
        throttle = node.limits.fill_throttle
        if throttle is None:
            return
        self._record(n, "fill")
        count, window = throttle
        if self._in_window(n, "fill", window) > count and node.state != HALTED:
            node.state, node.cause = HALTED, EXECUTION_THROTTLE
            self._event(n, EXECUTION_THROTTLE, value=self._in_window(n, "fill", window), limit=count)

    def _price_ticks(self, ins: Inst, price):
        """(ticks, ok) for an order price: README step 4's grid rule."""
        ticks = round(price / ins.tick_size)
        on_grid = abs(ticks * ins.tick_size - price) <= 1e-9 * max(1.0, abs(price))
        ok = on_grid and price >= ins.tick_size / 2 and ticks < MAX_TICKS
        return ticks, ok

    # ------------------------------------------------------------- pre-trade
    def _decide(self, account, symbol, side, q, price, order: Optional[Order] = None, order_id=None):
        """The 12 README checks in order. Returns (reason, details) where details
        hold what acceptance needs (leaf, ticks, market flag)."""
        is_modify = order is not None
        market = price is None
        self.last_detail = None
        # 1.
        if not is_modify and side not in (BUY, SELL):
            return INVALID_SIDE, None
        if not is_whole_quantity(q):
            return INVALID_QUANTITY, None
        q = int(q)
        if price is not None and not (isinstance(price, (int, float)) and math.isfinite(price) and price > 0):
            return INVALID_PRICE, None
        # 2. AMBIGUITY: "used" means accepted; a rejected submit does not use its id.
        if not is_modify and order_id is not None and order_id in self.used_ids:
            return DUPLICATE_ORDER_ID, None
        # 3.
        ins = self.instruments.get(symbol)
        if ins is None:
            return UNKNOWN_SYMBOL, None
        if not ins.tradable:
            return SYMBOL_RESTRICTED, None
        leaf = self.by_name.get(account) if isinstance(account, str) else account
        if leaf is None or not (0 <= leaf < len(self.nodes)):
            return UNKNOWN_ACCOUNT, None
        if not self.is_leaf(leaf):
            return self._fail(ACCOUNT_NOT_TRADABLE, leaf)
        path = self.path(leaf)
        for n in path:
            if self.nodes[n].allow is not None and symbol not in self.nodes[n].allow:
                return self._fail(SYMBOL_NOT_PERMITTED, n)
        # 4.
        if q % ins.lot:
            return LOT_SIZE, None
        if is_modify:
            # README: price=None keeps a limit price; a market order stays market.
            # AMBIGUITY: a price given for a market order makes it a limit order.
            market = order.market and price is None
        ticks = None
        if price is not None:
            ticks, ok = self._price_ticks(ins, price)
            if not ok:
                return TICK_SIZE, None
        elif is_modify and not market:
            ticks = order.price
        aggs = self._aggregates()
        own = aggs[leaf].per_symbol.get(symbol, [0, 0, 0, 0, 0])
        old_q = order.remaining if is_modify else 0
        dq = q - old_q
        # 5.
        if side == BUY:
            reduces = own[0] + own[2] + dq <= 0
        else:
            reduces = own[0] - own[3] - dq >= 0
        if is_modify and dq <= 0:
            reduces = True
        if ins.state == HALTED:
            return TRADING_HALTED, None
        if ins.state == REDUCING and not reduces:
            return REDUCE_ONLY, None
        for n in path:
            node = self.nodes[n]
            if node.state == HALTED:
                return self._fail(EXECUTION_THROTTLE if node.cause == EXECUTION_THROTTLE else TRADING_HALTED, n)
            if node.state == REDUCING and not reduces:
                return self._fail(DAILY_LOSS_LIMIT if node.cause == DAILY_LOSS_LIMIT else REDUCE_ONLY, n)
        # 6. README: a modify that keeps its price and adds no quantity skips it
        # (a market order keeps the price it was booked at).
        keeps = is_modify and dq <= 0 and (ticks == order.price if not market else order.market)
        if keeps:
            pass
        elif ins.ref is None:
            if market or ins.require_ref:
                return NO_REFERENCE_PRICE, None
        elif ins.require_ref and ins.max_age is not None and self.now - ins.ref_time > ins.max_age:
            return STALE_REFERENCE_PRICE, None
        p = (order.price if keeps else ins.ref) if market else ticks
        if not keeps and ((ins.min_ticks is not None and p < ins.min_ticks)
                          or (ins.max_ticks is not None and p > ins.max_ticks)):
            return PRICE_OUT_OF_RANGE, None
        if not keeps and not market and ins.ref is not None:
            bands = []
            if ins.collar_bps[side] is not None:
                bands.append(ins.ref * ins.collar_bps[side] // 10000)
            if ins.collar_ticks[side] is not None:
                bands.append(ins.collar_ticks[side])
            if bands:
                band = min(bands)
                if (side == BUY and p > ins.ref + band) or (side == SELL and p < ins.ref - band):
                    return PRICE_COLLAR, None
        notional = q * p * ins.tv
        if notional > MAX_NOTIONAL:
            return NOTIONAL_OVERFLOW, None
        dn = notional - (old_q * order.price * ins.tv if is_modify else 0)
        # README step 6: no node's gross notional may pass the cap either.
        for n in path:
            a = aggs[n]
            if a.long + a.short + a.working_buy + a.working_sell + dn > MAX_NOTIONAL:
                return NOTIONAL_OVERFLOW, None
        # 7. AMBIGUITY: both order-size limits are checked at a node before the next node.
        for n in path:
            lim = self.nodes[n].limits
            if lim.max_order_quantity is not None and q > lim.max_order_quantity:
                return self._fail(MAX_ORDER_QUANTITY, n, q, lim.max_order_quantity)
            if lim.max_order_notional is not None and notional > lim.max_order_notional:
                return self._fail(MAX_ORDER_NOTIONAL, n, notional / 1e6, lim.max_order_notional / 1e6)
        # 8.
        if dq > 0:
            for n in path:
                max_long, max_short = self.nodes[n].position_limits.get(symbol, (None, None))
                pos, _cost, wb, ws, _r = aggs[n].per_symbol.get(symbol, [0, 0, 0, 0, 0])
                if side == BUY and max_long is not None and pos + wb + dq > max_long:
                    return self._fail(POSITION_LIMIT, n, pos + wb + dq, max_long)
                if side == SELL and max_short is not None and -(pos - ws - dq) > max_short:
                    return self._fail(POSITION_LIMIT, n, -(pos - ws - dq), max_short)
        # 9.
        if dn > 0:
            for n in path:
                lim, a = self.nodes[n].limits, aggs[n]
                if lim.max_gross_notional is not None:
                    gross = a.long + a.short + a.working_buy + a.working_sell + dn
                    if gross > lim.max_gross_notional:
                        return self._fail(MAX_GROSS_NOTIONAL, n, gross / 1e6, lim.max_gross_notional / 1e6)
                if lim.max_net_notional is not None:
                    if side == BUY:
                        net = a.long - a.short + a.working_buy + dn
                    else:
                        net = a.short - a.long + a.working_sell + dn
                    if net > lim.max_net_notional:
                        return self._fail(MAX_NET_NOTIONAL, n, net / 1e6, lim.max_net_notional / 1e6)
        # 10.
        for n in path:
            lim = self.nodes[n].limits
            if not is_modify:
                if lim.max_open_orders is not None and aggs[n].open_orders + 1 > lim.max_open_orders:
                    return self._fail(MAX_OPEN_ORDERS, n, aggs[n].open_orders + 1, lim.max_open_orders)
                if lim.new_order_rate is not None:
                    count, window = lim.new_order_rate
                    if self._in_window(n, "new", window) >= count:
                        return self._fail(ORDER_RATE_LIMIT, n, self._in_window(n, "new", window), count)
            elif lim.modify_rate is not None:
                count, window = lim.modify_rate
                if self._in_window(n, "modify", window) >= count:
                    return self._fail(MODIFY_RATE_LIMIT, n, self._in_window(n, "modify", window), count)
        # 11. AMBIGUITY: the guard remembers when each (account, symbol, side,
        # quantity, price) was accepted; later modifies, fills and roll_day do not touch it.
        dup_key = (leaf, symbol, side, q, MARKET if market else p)
        if not is_modify and self.dup_window > 0:
            last = self.dup_last.get(dup_key)
            if last is not None and self.now - last < self.dup_window:
                return DUPLICATE_ORDER, None
        # 12. The order being modified is on its own side, so it never sees itself.
        for o in self.orders.values():
            if o.status != WORKING or o.account != leaf or o.symbol != symbol or o.side != -side:
                continue
            if market or o.market or (side == BUY and p >= o.price) or (side == SELL and p <= o.price):
                return SELF_MATCH, None
        self.last_utilisation = self._utilisation(path, symbol, side, q, notional, dq, dn, aggs, is_modify)
        return OK, dict(leaf=leaf, path=path, q=q, p=p, market=market, dup_key=dup_key)

    def _fail(self, reason: int, n: int, value=0.0, limit=0.0):
        """A rejection decided at node ``n``: the decision's node, value and limit (README
        "Pre-trade checks": money in currency, quantities and counts as numbers)."""
        self.last_detail = (self.nodes[n].name, float(value), float(limit))
        return reason, None

    def _utilisation(self, path, symbol, side, q, notional, dq, dn, aggs, is_modify) -> float:
        """README "Utilisation": the highest value-after-order / limit on the path."""
        ratios = [0.0]

        def put(value, limit):
            # AMBIGUITY: a limit of 0 has no ratio; it is left out.
            if limit:
                ratios.append(value / limit)

        for n in path:
            lim, a = self.nodes[n].limits, aggs[n]
            pos, _cost, wb, ws, _r = a.per_symbol.get(symbol, [0, 0, 0, 0, 0])
            max_long, max_short = self.nodes[n].position_limits.get(symbol, (None, None))
            put(q, lim.max_order_quantity)
            put(notional, lim.max_order_notional)
            if side == BUY:
                put(pos + wb + dq, max_long)
                put(a.long - a.short + a.working_buy + dn, lim.max_net_notional)
            else:
                put(-(pos - ws - dq), max_short)
                put(a.short - a.long + a.working_sell + dn, lim.max_net_notional)
            put(a.long + a.short + a.working_buy + a.working_sell + dn, lim.max_gross_notional)
            if not is_modify:
                put(a.open_orders + 1, lim.max_open_orders)
        return max(ratios)

    def check(self, account, symbol, side, quantity, price=None) -> int:
        return self._decide(account, symbol, side, quantity, price)[0]

    def submit(self, order_id, account, symbol, side, quantity, price=None) -> int:
        reason, d = self._decide(account, symbol, side, quantity, price, order_id=order_id)
        if reason == OK:
            self.used_ids.add(order_id)
            self.orders[order_id] = Order(order_id, d["leaf"], symbol, side, d["market"], d["p"], d["q"])
            self.nodes[d["leaf"]].active = True
            for n in d["path"]:
                self._record(n, "new")
            self.dup_last[d["dup_key"]] = self.now
        return reason

    def modify(self, order_id, quantity, price=None) -> int:
        self.last_detail = None
        o = self.orders.get(order_id)
        if o is None or o.status != WORKING:
            return UNKNOWN_ORDER
        reason, d = self._decide(o.account, o.symbol, o.side, quantity, price, order=o)
        if reason == OK:
            o.remaining, o.price, o.market = d["q"], d["p"], d["market"]
            for n in d["path"]:
                self._record(n, "modify")
        return reason

    def request_cancel(self, order_id) -> int:
        self.last_utilisation = None  # a cancel carries no utilisation
        self.last_detail = None
        o = self.orders.get(order_id)
        if o is None or o.status != WORKING:
            return UNKNOWN_ORDER
        path = self.path(o.account)
        for n in path:
            rate = self.nodes[n].limits.cancel_rate
            if rate is not None and self._in_window(n, "cancel", rate[1]) >= rate[0]:
                return self._fail(CANCEL_RATE_LIMIT, n, self._in_window(n, "cancel", rate[1]), rate[0])[0]
        for n in path:
            self._record(n, "cancel")
        return OK

    def batch(self, order_ids, accounts, symbols, sides, quantities, prices, markets, book: bool) -> list[int]:
        """check_batch (book=False) / submit_batch (book=True): sequential submits,
        taken back at the end for a check. Batch calls take integer ids."""
        import copy

        clock, self.clock = self.clock, None
        saved = None if book else copy.deepcopy(self.__dict__)
        self.clock = clock
        out = []
        symbol_names = list(self.instruments)
        for i in range(len(accounts)):
            symbol = symbol_names[symbols[i]] if 0 <= symbols[i] < len(symbol_names) else None
            price = None if markets[i] else prices[i]
            # A what-if has no id, so step 2 cannot fail: use ids no caller can hold.
            oid = order_ids[i] if book else ("what-if", i)
            out.append(self.submit(oid, accounts[i], symbol, sides[i], quantities[i], price))
        if saved is not None:
            self.__dict__.update(saved)
            self.clock = clock
        return out

    # ----------------------------------------------------------------- fills
    def _apply_fill(self, leaf: int, symbol: str, side: int, qty: int, ticks: int) -> None:
        """README "Positions and P&L", verbatim."""
        lp = self.leaves.setdefault((leaf, symbol), Leaf())
        self.nodes[leaf].active = True
        tv = self.instruments[symbol].tv
        s = side * qty
        if lp.pos == 0 or sign(s) == sign(lp.pos):
            lp.pos += s
            lp.cost += s * ticks * tv
            return
        c = min(abs(s), abs(lp.pos))
        removed = tdiv(lp.cost * c, abs(lp.pos))
        lp.realized += sign(lp.pos) * c * ticks * tv - removed
        lp.cost -= removed
        lp.pos += sign(s) * c
        r = abs(s) - c
        if r:
            lp.pos = sign(s) * r
            lp.cost = sign(s) * r * ticks * tv

    def _fits(self) -> bool:
        """README "Bounds": every kept total within 2^62 micro-units (P&L strictly)."""
        for (leaf, symbol), lp in self.leaves.items():
            if not -MAX_NOTIONAL < lp.realized < MAX_NOTIONAL:
                return False
        for a in self._aggregates():
            for pos, cost, _wb, _ws, realized in a.per_symbol.values():
                if abs(pos) > MAX_NOTIONAL or abs(cost) > MAX_NOTIONAL or not -MAX_NOTIONAL < realized < MAX_NOTIONAL:
                    return False
            if (a.long > MAX_NOTIONAL or a.short > MAX_NOTIONAL
                    or a.long + a.short + a.working_buy + a.working_sell > MAX_NOTIONAL
                    or not -MAX_NOTIONAL < a.realized < MAX_NOTIONAL
                    or not -MAX_NOTIONAL < a.unrealized < MAX_NOTIONAL):
                return False
        return True

    def _within_capacity(self, change, undo, halt) -> None:
        """Make ``change``; when a total no longer fits, ``undo`` it, ``halt`` the
        account or symbol (a NOTIONAL_OVERFLOW event) and raise."""
        change()
        if not self._fits():
            undo()
            halt()
            raise ModelCapacity("capacity")

    def _leaf_undo(self, leaf: int, symbol: str, order=None):
        """A function that puts the leaf position (and the order's progress) back as they are now."""
        key = (leaf, symbol)
        held = self.leaves.get(key)
        saved = None if held is None else Leaf(held.pos, held.cost, held.realized)
        active = self.nodes[leaf].active
        progress = None if order is None else (order.remaining, order.status)

        def undo():
            if saved is None:
                self.leaves.pop(key, None)
            else:
                self.leaves[key] = saved
            self.nodes[leaf].active = active
            if order is not None:
                order.remaining, order.status = progress
        return undo

    def _after_fill(self, leaf: int) -> None:
        """README: visit the path from the account up, throttle then daily loss."""
        aggs = self._aggregates()
        for n in self.path(leaf):
            self._throttle_check(n)
            self._daily_loss_check(n, aggs)

    def _fill_ticks(self, symbol, price) -> int:
        """README: fill prices and marks round half away to the tick, to at least one;
        not finite, not > 0 or 10^15 ticks or more is invalid input."""
        if not (isinstance(price, (int, float)) and math.isfinite(price) and price > 0):
            raise ModelInvalidInput("price")
        if not price / self.instruments[symbol].tick_size < MAX_TICKS:
            raise ModelInvalidInput("price")
        ticks = round_half_away(price / self.instruments[symbol].tick_size)
        if ticks >= MAX_TICKS:
            raise ModelInvalidInput("price")
        return max(ticks, 1)

    def _seen(self, exec_id) -> bool:
        """README: exec ids are str or int; None is no id (never a repeat)."""
        if exec_id is None:
            return False
        if type(exec_id) not in (str, int):
            raise ModelInvalidInput("exec_id")
        return exec_id in self.exec_ids or exec_id in self.exec_ids_before

    def _halt_account(self, n: int) -> None:
        self.nodes[n].state, self.nodes[n].cause = HALTED, NOTIONAL_OVERFLOW
        self._event(n, NOTIONAL_OVERFLOW, value=MAX_NOTIONAL / 1e6, limit=MAX_NOTIONAL / 1e6)

    def _halt_symbol(self, symbol) -> None:
        self.instruments[symbol].state = HALTED
        self._event(0, NOTIONAL_OVERFLOW, symbol, MAX_NOTIONAL / 1e6, MAX_NOTIONAL / 1e6)

    def on_fill(self, order_id, quantity, price, exec_id) -> bool:
        """Bad input raises before the exec id is looked at (a malformed fill is an
        error, not a duplicate)."""
        o = self.orders.get(order_id)
        if o is None:
            raise ModelUnknownOrder(order_id)
        if not is_whole_quantity(quantity):
            raise ModelInvalidInput("quantity")
        ticks = self._fill_ticks(o.symbol, price)
        if self._seen(exec_id):
            return False
        quantity = int(quantity)

        def fill():
            self._apply_fill(o.account, o.symbol, o.side, quantity, ticks)
            if o.status == WORKING:
                o.remaining -= min(quantity, o.remaining)
                if o.remaining == 0:
                    o.status = FILLED
            else:
                o.remaining = 0
        self._within_capacity(fill, self._leaf_undo(o.account, o.symbol, o), lambda: self._halt_account(o.account))
        if exec_id is not None:
            self.exec_ids.add(exec_id)
        o.filled += quantity
        self._after_fill(o.account)
        return True

    def book_fill(self, account, symbol, side, quantity, price, exec_id=None) -> bool:
        n = self.by_name[account]
        if not self.is_leaf(n):
            raise ModelInvalidInput("positions live on leaf accounts")
        if not is_whole_quantity(quantity):
            raise ModelInvalidInput("quantity")
        ticks = self._fill_ticks(symbol, price)
        if self._seen(exec_id):
            return False
        self._within_capacity(lambda: self._apply_fill(n, symbol, side, int(quantity), ticks),
                              self._leaf_undo(n, symbol), lambda: self._halt_account(n))
        if exec_id is not None:
            self.exec_ids.add(exec_id)
        self._after_fill(n)
        return True

    def _finish(self, order_id, status) -> bool:
        o = self.orders.get(order_id)
        if o is None:
            raise ModelUnknownOrder(order_id)
        if o.status != WORKING:
            return False
        # AMBIGUITY: "release the remaining quantity" releases the exposure; the
        # order keeps its remaining quantity as a record of what was released.
        o.status = status
        return True

    def on_cancel(self, order_id) -> bool:
        return self._finish(order_id, CANCELLED)

    def on_expire(self, order_id) -> bool:
        return self._finish(order_id, EXPIRED)

    def on_reject(self, order_id) -> bool:
        return self._finish(order_id, REJECTED)

    # --------------------------------------------------------- prices and days
    def update_price(self, symbol, price) -> None:
        self._apply_price(symbol, self._fill_ticks(symbol, price))

    def update_prices(self, symbols, prices) -> None:
        """All rows are validated before any is applied; then one update per row. A row
        past capacity is refused (its symbol halted), the others applied, then it raises."""
        ticks = [self._fill_ticks(symbol, price) for symbol, price in zip(symbols, prices)]
        refused = None
        for symbol, t in zip(symbols, ticks):
            try:
                self._apply_price(symbol, t)
            except ModelCapacity as error:
                refused = refused or error
        if refused is not None:
            raise refused

    def _apply_price(self, symbol, ticks) -> None:
        ins = self.instruments[symbol]
        old = ins.ref, ins.ref_time

        def mark():
            ins.ref, ins.ref_time = ticks, self.now

        def undo():
            ins.ref, ins.ref_time = old
        self._within_capacity(mark, undo, lambda: self._halt_symbol(symbol))
        if ins.ref == old[0]:
            return  # README: a mark at the reference it already has changes nothing
        # README: a price update re-checks the daily loss of every node with a
        # position in the symbol, and on the symbol's first mark also of every
        # node netting to flat in it (its cost becomes P&L).
        aggs = self._aggregates()
        for n in range(len(self.nodes)):
            pos, cost = aggs[n].per_symbol.get(symbol, (0, 0))[:2]
            if pos != 0 or (old[0] is None and cost != 0):
                self._daily_loss_check(n, aggs)

    def roll_day(self) -> None:
        aggs = self._aggregates()
        for n, node in enumerate(self.nodes):
            node.sod = aggs[n].realized + aggs[n].unrealized
            if node.state == REDUCING and node.cause == DAILY_LOSS_LIMIT:
                node.state, node.cause = ACTIVE, 0
        # AMBIGUITY: forgotten orders are unknown afterwards (their ids stay used).
        self.exec_ids_before, self.exec_ids = self.exec_ids, set()
        self.orders = {i: o for i, o in self.orders.items() if o.status == WORKING}

    def drain_events(self) -> list[tuple]:
        out, self.events = self.events, []
        return out

    # ------------------------------------------------------------- read-outs
    def aggregate_rows(self) -> list[tuple]:
        """Rows in the layout of ``RiskEngine.aggregates()``, integers only."""
        aggs = self._aggregates()
        return [
            (n, -1 if node.parent is None else node.parent, a.long, a.short, a.working_buy, a.working_sell,
             a.realized, a.unrealized, self.daily_pnl(n, aggs), a.open_orders, node.state)
            for n, (node, a) in enumerate(zip(self.nodes, aggs))
        ]

    def node_positions(self) -> dict:
        """{(node, symbol): (quantity, realized micros, unrealized micros, cost)} for
        every node and symbol, as ``RiskEngine.position`` reports them (netted per node)."""
        aggs, out = self._aggregates(), {}
        for n, node in enumerate(self.nodes):
            for symbol, ins in self.instruments.items():
                pos, cost, _wb, _ws, realized = aggs[n].per_symbol.get(symbol, [0, 0, 0, 0, 0])
                unrealized = 0 if ins.ref is None else pos * ins.ref * ins.tv - cost
                out[(node.name, symbol)] = (pos, realized, unrealized, cost)
        return out

    def leaf_positions(self) -> set[tuple]:
        """README/positions(): leaf positions with non-zero quantity or realized."""
        return {(leaf, list(self.instruments).index(sym), lp.pos, lp.realized)
                for (leaf, sym), lp in self.leaves.items() if lp.pos or lp.realized}

    def open_order_rows(self) -> set[tuple]:
        """(id, account, symbol id, side, market, price ticks, remaining, filled) of working orders."""
        syms = list(self.instruments)
        return {(o.order_id, o.account, syms.index(o.symbol), o.side, o.market, o.price, o.remaining, o.filled)
                for o in self.orders.values() if o.status == WORKING}
