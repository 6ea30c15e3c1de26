"""Administration of an engine: its definitions and its day.

Instruments, the account tree, node and position limits, allow-lists and
trading states, which an operator sets before and between orders; and the
day's roll and the order tables' reservation. Cold code: each RiskEngine
method of these calls one function here (as snapshot.pyx and audit.pyx do
for theirs), so the engine keeps its public API as thin methods over the
kernel's hot paths.
"""
import math

from libc.string cimport memset
from libc.stdint cimport INT32_MAX
from libcpp.vector cimport vector

from riskcore._types cimport i32, INT64_MAX, MAX_DEPTH, Instrument_t, Limits_t, Node_t, Slot_t, PositionLimit_t
from riskcore._types cimport Reason as R
from riskcore._types cimport TradingState as TS
from riskcore._types cimport OrderStatus as OS
from riskcore._state cimport _slot_chain, _mark_allowlists
from riskcore._convert cimport _seconds_to_ns, _money, _is_integer
from riskcore._booking cimport _flush_all_levels
from riskcore._positions cimport _after_pnl_change
from riskcore.engine cimport RiskEngine

from riskcore._types import TradingState
from riskcore.config import Instrument, Limits
from riskcore.errors import InvalidConfigError, InvalidInputError

cdef Limits_t _NO_LIMITS = Limits_t(
    max_order_qty=INT64_MAX, max_order_notional=INT64_MAX, max_gross=INT64_MAX, max_net=INT64_MAX,
    max_open_orders=INT64_MAX, max_daily_loss=INT64_MAX,
    new_rate_count=-1, new_rate_window=0, modify_rate_count=-1, modify_rate_window=0,
    cancel_rate_count=-1, cancel_rate_window=0, fill_count=-1, fill_window=0,
)


cdef i32 _add_node(RiskEngine self, str name, i32 parent) except -1:
    """Add a node under ``parent`` (-1: the firm, the root); its id."""
    cdef Node_t node
    cdef i32 nid = len(self._account_names)
    cdef i32 k
    memset(&node, 0, sizeof(node))          # counts and totals start at zero, padding too
    node.parent = parent
    node.path[0] = nid
    node.depth = 1
    if parent >= 0:
        if self._s.nodes[parent].depth >= MAX_DEPTH:
            raise InvalidConfigError(f"account tree deeper than {MAX_DEPTH} levels")
        for k in range(self._s.nodes[parent].depth):
            node.path[k + 1] = self._s.nodes[parent].path[k]
        node.depth = self._s.nodes[parent].depth + 1
    for k in range(node.depth, MAX_DEPTH):
        node.path[k] = -1
    node.state = TS.ACTIVE
    node.limits = _NO_LIMITS
    node.saved = -1
    self._s.nodes.push_back(node)
    self._s.path_allowlist.push_back(self._s.path_allowlist[parent] if parent >= 0 else 0)
    self._s.windows.resize(self._s.windows.size() + 4)
    if parent >= 0:
        self._s.nodes[parent].n_children += 1
    self._account_names.append(name)
    self._account_ids[name] = nid
    return nid


def add_firm(RiskEngine self, str name):
    """Add the root of the account tree (id 0)."""
    _add_node(self, name, -1)


def add_instrument(RiskEngine self, instrument):
    """Add an instrument, or update the definition of a known one."""
    if not isinstance(instrument, Instrument):
        raise TypeError(f"expected an Instrument, got {type(instrument).__name__}")
    cdef Instrument_t ins
    cdef object sid = self._symbol_ids.get(instrument.symbol)
    if sid is not None:
        ins = self._s.instruments[<i32>sid]
        if ins.tick_value != instrument.tick_value and self._s.symbol_slots[<i32>sid].size() > 0:
            raise InvalidConfigError(
                f"cannot change the tick value of {instrument.symbol} while it has positions or orders")
    else:
        memset(&ins, 0, sizeof(ins))       # padding too: snapshots are byte-for-byte deterministic
        ins.state = TS.ACTIVE
    ins.tick_size = instrument.tick_size
    ins.tick_value = instrument.tick_value
    ins.lot_size = instrument.lot_size
    ins.max_ref_age = 0 if instrument.max_reference_age is None else _seconds_to_ns(instrument.max_reference_age)
    ins.collar_bps_buy = -1 if instrument.collar_bps_buy is None else instrument.collar_bps_buy
    ins.collar_bps_sell = -1 if instrument.collar_bps_sell is None else instrument.collar_bps_sell
    ins.collar_ticks_buy = -1 if instrument.collar_ticks_buy is None else instrument.collar_ticks_buy
    ins.collar_ticks_sell = -1 if instrument.collar_ticks_sell is None else instrument.collar_ticks_sell
    # Band edges off the grid round inward: the band never admits a price outside it.
    ins.min_price = 0 if instrument.min_price is None else math.ceil(instrument.min_price / instrument.tick_size - 1e-9)
    ins.max_price = INT64_MAX if instrument.max_price is None else math.floor(instrument.max_price / instrument.tick_size + 1e-9)
    ins.require_ref = instrument.require_reference
    ins.tradable = instrument.tradable
    if sid is None:
        sid = len(self._symbol_names)
        self._s.instruments.push_back(ins)
        self._s.symbol_slots.push_back(vector[i32]())
        self._s.pos_bound.push_back(0)
        self._symbol_names.append(instrument.symbol)
        self._symbol_ids[instrument.symbol] = sid
    else:
        self._s.instruments[<i32>sid] = ins
    if instrument.reference_price is not None:
        self.update_price(<i32>sid, instrument.reference_price)
    return sid


def add_account(RiskEngine self, str name, parent=None):
    """Add an account under ``parent`` (the firm when omitted)."""
    if not name:
        raise InvalidConfigError("account name must not be empty")
    if name in self._account_ids:
        raise InvalidConfigError(f"account {name!r} already exists")
    cdef i32 pid = 0 if parent is None else self.account_id(parent)
    if self._s.nodes[pid].active:
        raise InvalidConfigError(
            f"account {self._account_names[pid]!r} holds orders or positions and cannot get sub-accounts")
    return _add_node(self, name, pid)


def set_limits(RiskEngine self, account, limits):
    """Replace the node limits of an account (or the firm) with ``limits``."""
    if not isinstance(limits, Limits):
        raise TypeError(f"expected Limits, got {type(limits).__name__}")
    cdef i32 nid = self.account_id(account)
    cdef Limits_t lim = _NO_LIMITS
    lim.max_order_qty = INT64_MAX if limits.max_order_quantity is None else limits.max_order_quantity
    lim.max_order_notional = _money(limits.max_order_notional)
    lim.max_gross = _money(limits.max_gross_notional)
    lim.max_net = _money(limits.max_net_notional)
    lim.max_open_orders = INT64_MAX if limits.max_open_orders is None else limits.max_open_orders
    lim.max_daily_loss = _money(limits.max_daily_loss)
    if limits.new_order_rate is not None:
        lim.new_rate_count, lim.new_rate_window = limits.new_order_rate[0], _seconds_to_ns(limits.new_order_rate[1])
    if limits.modify_rate is not None:
        lim.modify_rate_count, lim.modify_rate_window = limits.modify_rate[0], _seconds_to_ns(limits.modify_rate[1])
    if limits.cancel_rate is not None:
        lim.cancel_rate_count, lim.cancel_rate_window = limits.cancel_rate[0], _seconds_to_ns(limits.cancel_rate[1])
    if limits.fill_throttle is not None:
        lim.fill_count, lim.fill_window = limits.fill_throttle[0], _seconds_to_ns(limits.fill_throttle[1])
    self._s.nodes[nid].limits = lim
    _after_pnl_change(&self._s, nid, self._clock.now())


def set_position_limit(RiskEngine self, account, symbol, max_long=None, max_short=None):
    """Limit the worst-case long and short quantity of a node in one symbol."""
    cdef i32 nid = self.account_id(account)
    cdef i32 sid = self.symbol_id(symbol)
    for name, value in (("max_long", max_long), ("max_short", max_short)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InvalidConfigError(f"{name} must be an integer >= 0 or None, got {value!r}")
    cdef i32 s = _slot_chain(&self._s, nid, sid)
    cdef PositionLimit_t* lim = &self._s.position_limits[s]
    lim.max_long = INT64_MAX if max_long is None else max_long
    lim.max_short = INT64_MAX if max_short is None else max_short
    self._s.slots[s].limited = lim.max_long != INT64_MAX or lim.max_short != INT64_MAX


def position_limit(RiskEngine self, account, symbol):
    """Return ``(max_long, max_short)`` of a node in a symbol (None = unlimited)."""
    cdef i32 s = self._s.slot_index.find(self.account_id(account), self.symbol_id(symbol))
    if s < 0:
        return (None, None)
    cdef PositionLimit_t* lim = &self._s.position_limits[s]
    return (None if lim.max_long == INT64_MAX else lim.max_long,
            None if lim.max_short == INT64_MAX else lim.max_short)


def set_allowed_symbols(RiskEngine self, account, symbols):
    """Restrict a node (and its subtree) to ``symbols``; None lifts the restriction."""
    cdef i32 nid = self.account_id(account)
    cdef list sids = [] if symbols is None else [self.symbol_id(symbol) for symbol in symbols]
    cdef Slot_t* slot
    cdef size_t j
    for j in range(self._s.slots.size()):
        slot = &self._s.slots[j]
        if slot.node == nid:
            slot.permitted = 0
    for sid in sids:
        self._s.slots[_slot_chain(&self._s, nid, <i32>sid)].permitted = 1
    self._s.nodes[nid].has_allowlist = symbols is not None
    _mark_allowlists(&self._s)


def set_trading_state(RiskEngine self, state, account=None, symbol=None):
    """Set ACTIVE, REDUCING or HALTED on a node (the firm by default) or a symbol."""
    cdef int st = TradingState[state] if isinstance(state, str) else TradingState(state)
    if account is not None and symbol is not None:
        raise InvalidInputError("give an account or a symbol, not both")
    if symbol is not None:
        self._s.instruments[self.symbol_id(symbol)].state = st
        return
    cdef i32 nid = 0 if account is None else self.account_id(account)
    self._s.nodes[nid].state = st
    self._s.nodes[nid].state_cause = 0


def trading_state(RiskEngine self, account=None, symbol=None):
    """Return the trading state of a node (the firm by default) or a symbol."""
    if symbol is not None:
        return TradingState(self._s.instruments[self.symbol_id(symbol)].state)
    return TradingState(self._s.nodes[0 if account is None else self.account_id(account)].state)


def roll_day(RiskEngine self):
    """Start a new trading day."""
    self._exec_ids_before = self._exec_ids
    self._exec_ids = set()
    cdef Node_t* nd
    cdef size_t j, kept = 0
    for j in range(self._s.nodes.size()):
        nd = &self._s.nodes[j]
        nd.sod_pnl = nd.realized + nd.unrealized
        if nd.state_cause == R.DAILY_LOSS_LIMIT:
            nd.state = TS.ACTIVE
            nd.state_cause = 0
    # Compacted in place, so the table keeps the capacity reserve_orders() gave it.
    _flush_all_levels(&self._s)            # order rows move: no slot side may have a run pending
    for j in range(self._s.orders.size()):
        if self._s.orders[j].status == OS.WORKING:
            self._s.order_index.set(self._s.orders[j].id, <i32>kept)
            self._s.orders[kept] = self._s.orders[j]
            kept += 1
        else:
            self._s.order_index.set(self._s.orders[j].id, -1)
    self._s.orders.resize(kept)
    self._s.order_next.resize(kept)


def reserve_orders(RiskEngine self, n):
    """Size the order tables to hold ``n`` orders, those booked since the last ``roll_day`` included."""
    cdef size_t booked = self._s.orders.size(), more
    if not _is_integer(n) or not 0 <= n <= INT32_MAX:
        raise InvalidInputError(f"reserve_orders takes a whole number of orders from 0 to {INT32_MAX}, got {n!r}")
    if n <= booked:
        return
    more = n - booked
    with nogil:
        self._s.orders.resize(booked + more)        # writes every page once; the capacity stays
        self._s.orders.resize(booked)
        self._s.order_next.resize(booked + more)
        self._s.order_next.resize(booked)
        self._s.order_index.reserve_more(more)
