"""Read views of an engine: its definitions, limits, orders, positions, aggregates and events as Python records.

Cold code, apart from the order path: each RiskEngine read method calls
one function here (as snapshot.pyx and audit.pyx do for theirs), so the
engine keeps its public API as thin methods over the kernel's hot paths.
The records and dtypes are riskcore.records'.
"""
import math

import numpy as np

from riskcore._types cimport i64, i32, INT64_MAX, Instrument_t, Limits_t, Node_t, Slot_t, Order_t, Event_t
from riskcore._types cimport Reason as R
from riskcore._types cimport OrderStatus as OS
from riskcore._state cimport _order_row
from riskcore._positions cimport _unrealized
from riskcore._throttle cimport W_NEW, W_MODIFY, W_CANCEL, W_FILL, _window
from riskcore.engine cimport RiskEngine

from riskcore._types import Reason, OrderStatus
from riskcore.config import Instrument, Limits
from riskcore.errors import UnknownOrderError
from riskcore.records import Position, OrderInfo, BreachEvent
from riskcore.records import (
    AGGREGATE_DTYPE as _AGGREGATE_DTYPE, ORDER_DTYPE as _ORDER_DTYPE, POSITION_DTYPE as _POSITION_DTYPE,
)

# The aggregates' integer columns that are sums over a node's subtree (audit.recompute rebuilds them).
_AGGREGATE_SUMS = ("long", "short", "working_buy", "working_sell", "realized", "unrealized", "open_orders")


cdef object _aggregate_table(RiskEngine self, dict columns):
    """The aggregates' structured array from their summed ``columns`` and the nodes' own fields."""
    cdef size_t j, nn = self._s.nodes.size()
    out = np.zeros(nn, dtype=_AGGREGATE_DTYPE)
    for name, column in columns.items():
        out[name] = column
    out["account"] = np.arange(nn, dtype=np.int32)
    out["parent"] = [self._s.nodes[j].parent for j in range(nn)]
    out["state"] = [self._s.nodes[j].state for j in range(nn)]
    out["daily_pnl"] = out["realized"] + out["unrealized"] - np.array(
        [self._s.nodes[j].sod_pnl for j in range(nn)], dtype=np.int64)
    return out


def instrument(RiskEngine self, symbol):
    """Return the definition of a symbol as an :class:`Instrument`."""
    cdef i32 sid = self.symbol_id(symbol)
    cdef Instrument_t ins = self._s.instruments[sid]
    return Instrument(
        symbol=self._symbol_names[sid], tick_size=ins.tick_size, lot_size=ins.lot_size,
        multiplier=ins.tick_value / 1e6 / ins.tick_size, tradable=bool(ins.tradable),
        reference_price=ins.ref * ins.tick_size if ins.ref > 0 else None,
        collar_bps_buy=None if ins.collar_bps_buy < 0 else ins.collar_bps_buy,
        collar_bps_sell=None if ins.collar_bps_sell < 0 else ins.collar_bps_sell,
        collar_ticks_buy=None if ins.collar_ticks_buy < 0 else ins.collar_ticks_buy,
        collar_ticks_sell=None if ins.collar_ticks_sell < 0 else ins.collar_ticks_sell,
        min_price=ins.min_price * ins.tick_size if ins.min_price > 0 else None,
        max_price=ins.max_price * ins.tick_size if ins.max_price != INT64_MAX else None,
        max_reference_age=ins.max_ref_age / 1e9 if ins.max_ref_age > 0 else None,
        require_reference=bool(ins.require_ref),
    )


def limits(RiskEngine self, account):
    """Return the node limits of an account as :class:`Limits`."""
    cdef Limits_t lim = self._s.nodes[self.account_id(account)].limits

    def count(i64 value):
        return None if value == INT64_MAX else value

    def money(i64 value):
        return None if value == INT64_MAX else value / 1e6

    def window(i64 n, i64 length):
        return None if n < 0 else (n, length / 1e9)

    return Limits(
        max_order_quantity=count(lim.max_order_qty),
        max_order_notional=money(lim.max_order_notional),
        max_gross_notional=money(lim.max_gross),
        max_net_notional=money(lim.max_net),
        max_open_orders=count(lim.max_open_orders),
        max_daily_loss=money(lim.max_daily_loss),
        new_order_rate=window(lim.new_rate_count, lim.new_rate_window),
        modify_rate=window(lim.modify_rate_count, lim.modify_rate_window),
        cancel_rate=window(lim.cancel_rate_count, lim.cancel_rate_window),
        fill_throttle=window(lim.fill_count, lim.fill_window),
    )


def order(RiskEngine self, long long order_id):
    """Return an order's state as an ``OrderInfo``."""
    cdef i32 row = _order_row(&self._s, order_id)
    if row < 0:
        raise UnknownOrderError(f"unknown order {order_id}")
    cdef Order_t o = self._s.orders[row]
    return OrderInfo(o.id, self._account_names[o.account], self._symbol_names[o.symbol], o.side,
                     o.price * self._s.instruments[o.symbol].tick_size, o.remaining, o.filled,
                     bool(o.market), OrderStatus(o.status))


def position(RiskEngine self, account, symbol):
    """Return the position of a node (leaf or aggregate) in one symbol."""
    cdef i32 nid = self.account_id(account)
    cdef i32 sid = self.symbol_id(symbol)
    cdef i32 found = self._s.slot_index.find(nid, sid)
    cdef Instrument_t* ins = &self._s.instruments[sid]
    if found < 0:
        return Position(self._account_names[nid], self._symbol_names[sid], 0, 0.0, 0.0, 0.0)
    cdef Slot_t* s = &self._s.slots[found]
    return Position(self._account_names[nid], self._symbol_names[sid], s.pos,
                    <double>s.cost / s.pos / ins.tick_value * ins.tick_size if s.pos else 0.0, self._s.realized[found] / 1e6,
                    _unrealized(s.pos, s.cost, ins.ref, ins.tick_value) / 1e6)


def positions(RiskEngine self):
    """Leaf positions (non-zero quantity or realized P&L) as a structured array."""
    cdef size_t j, m = 0
    cdef Slot_t* s
    cdef Instrument_t* ins
    for j in range(self._s.slots.size()):
        s = &self._s.slots[j]
        if self._s.nodes[s.node].n_children == 0 and s.node != 0 and (s.pos != 0 or self._s.realized[j] != 0):
            m += 1
    out = np.zeros(m, dtype=_POSITION_DTYPE)
    m = 0
    for j in range(self._s.slots.size()):
        s = &self._s.slots[j]
        if self._s.nodes[s.node].n_children == 0 and s.node != 0 and (s.pos != 0 or self._s.realized[j] != 0):
            ins = &self._s.instruments[s.symbol]
            out[m] = (s.node, s.symbol, s.pos, <double>s.cost / s.pos / ins.tick_value * ins.tick_size if s.pos else 0.0,
                      self._s.realized[j] / 1e6, _unrealized(s.pos, s.cost, ins.ref, ins.tick_value) / 1e6)
            m += 1
    return out


def open_orders(RiskEngine self):
    """Working orders as a structured array (prices in price units)."""
    cdef size_t j
    cdef list rows = []
    cdef Order_t* o
    for j in range(self._s.orders.size()):
        o = &self._s.orders[j]
        if o.status == OS.WORKING:
            rows.append((o.id, o.account, o.symbol, o.side, o.market,
                         o.price * self._s.instruments[o.symbol].tick_size, o.remaining, o.filled))
    return np.array(rows, dtype=_ORDER_DTYPE)


def aggregates(RiskEngine self):
    """Every node's incrementally kept aggregate, in integer micro-units."""
    cdef size_t j, nn = self._s.nodes.size()
    cdef Node_t* n
    columns = {name: np.empty(nn, dtype=np.int64) for name in _AGGREGATE_SUMS}
    cdef i64[::1] longv = columns["long"], shortv = columns["short"], wb = columns["working_buy"]
    cdef i64[::1] ws = columns["working_sell"], real = columns["realized"], unreal = columns["unrealized"]
    cdef i64[::1] opn = columns["open_orders"]
    for j in range(nn):
        n = &self._s.nodes[j]
        longv[j], shortv[j], wb[j], ws[j] = n.long_notional, n.short_notional, n.wbuy_notional, n.wsell_notional
        real[j], unreal[j], opn[j] = n.realized, n.unrealized, n.open_orders
    return _aggregate_table(self, columns)


def utilisation(RiskEngine self, account=None):
    """Return each set limit of a node with its current use and ratio."""
    cdef i32 nid = 0 if account is None else self.account_id(account)
    cdef Node_t* n = &self._s.nodes[nid]
    cdef Limits_t lim = n.limits
    cdef i64 now = self._clock.now()
    out = {}

    def put(name, value, limit, scale):
        if limit != INT64_MAX and limit >= 0:
            out[name] = (value / scale, limit / scale, value / limit if limit else math.inf)

    put("max_gross_notional", n.long_notional + n.short_notional + n.wbuy_notional + n.wsell_notional,
        lim.max_gross, 1e6)
    put("max_net_notional", max(n.long_notional - n.short_notional + n.wbuy_notional,
                                n.short_notional - n.long_notional + n.wsell_notional), lim.max_net, 1e6)
    put("max_open_orders", n.open_orders, lim.max_open_orders, 1)
    put("max_daily_loss", max(0, -(int(n.realized) + n.unrealized - n.sod_pnl)), lim.max_daily_loss, 1e6)
    if lim.new_rate_count >= 0:
        put("new_order_rate", _window(&self._s, nid, W_NEW).count(now, lim.new_rate_window), lim.new_rate_count, 1)
    if lim.modify_rate_count >= 0:
        put("modify_rate", _window(&self._s, nid, W_MODIFY).count(now, lim.modify_rate_window),
            lim.modify_rate_count, 1)
    if lim.cancel_rate_count >= 0:
        put("cancel_rate", _window(&self._s, nid, W_CANCEL).count(now, lim.cancel_rate_window),
            lim.cancel_rate_count, 1)
    if lim.fill_count >= 0:
        put("fill_throttle", _window(&self._s, nid, W_FILL).count(now, lim.fill_window), lim.fill_count, 1)
    return out


def drain_events(RiskEngine self):
    """Return the breach events recorded since the last call, and clear them."""
    cdef list out = []
    cdef Event_t* e
    cdef size_t j
    for j in range(self._s.events.size()):
        e = &self._s.events[j]
        # Daily-loss and capacity figures are money (currency); throttle figures are fill counts.
        scale = 1e6 if e.reason == R.DAILY_LOSS_LIMIT or e.reason == R.NOTIONAL_OVERFLOW else 1
        out.append(BreachEvent(e.time, self._account_names[e.node],
                               None if e.symbol < 0 else self._symbol_names[e.symbol],
                               Reason(e.reason), e.value / scale, e.limit / scale))
    self._s.events.clear()
    return out
