"""The pre-trade risk engine: orders, positions, aggregates and the checks.

All state lives in C++ containers of plain structs so that every check, batch
and price update runs without the GIL and without allocating Python objects.
The Python methods translate names to integer ids, call the nogil core and
build the answer. The rules themselves are in ``checks.pxd``; the model they
implement is the "Risk model" section of the README.
"""
import math

import numpy as np

from riskcore._types cimport (
    i64, i32, i128, uint8_t, int8_t, INT64_MAX, Instrument_t, Node_t, Order_t, CheckResult,
)
from riskcore._types cimport Reason as R
from riskcore._types cimport TradingState as TS
from riskcore._types cimport OrderStatus as OS
from riskcore.tables cimport prefetch
from riskcore.fixedpoint cimport mark_ticks
from riskcore.bounds cimport MAX_QUANTITY, MAX_PRICE_TICKS, CAPACITY
from riskcore._state cimport _slot_chain, _order_row, _working
from riskcore._convert cimport _seconds_to_ns, _resolve, _quantity, _price, _side
from riskcore._pretrade cimport _evaluate
from riskcore._booking cimport _price_key, _reserve, _release, _replace, _prefetch_slot, _prefetch_chain
from riskcore._whatif cimport _begin_what_if, _take_back
from riskcore._positions cimport _record_event, _apply_fill, _set_reference, _set_references
from riskcore._throttle cimport _count_cancel
from riskcore.clock cimport Clock, SystemClock
from riskcore.decision cimport Decision, make_decision

from riskcore._types import TradingState
# The read views' records and dtypes (riskcore.records), re-exported as part of the engine's API.
from riskcore.records import (
    Position, Aggregate, OrderInfo, BreachEvent, POSITION_DTYPE, ORDER_DTYPE, AGGREGATE_DTYPE,
)
from riskcore.errors import (
    CapacityError, InvalidConfigError, InvalidInputError,
    UnknownAccountError, UnknownOrderError, UnknownSymbolError,
)

# 3: position cost in micro-units (2 kept it in tick-units; from_state converts).
STATE_VERSION = 3

BUY = 1
SELL = -1
# The numeric domain (see bounds.pxd), for callers that validate before calling.
MAX_ORDER_QUANTITY = MAX_QUANTITY
PRICE_TICKS_LIMIT = MAX_PRICE_TICKS
CAPACITY_MICROS = CAPACITY


# A batch starts loading order i + d's slot index entry while it checks order i,
# that order's slot row d / 2 orders later, and its parent's row d / 4 later:
# the misses of a flow spread over a big book overlap instead of stalling one
# after another. Booking batches also wait on the order index and on their slot
# side's pending run, and look further ahead; measured on a 100k-position book,
# what-if batches are best at 16 and booking ones at 32.
cdef enum:
    LOOKAHEAD_WHAT_IF = 16
    LOOKAHEAD_BOOKING = 32


def _run_batch(RiskEngine self, ids, const i32[::1] accounts, const i32[::1] symbols, const int8_t[::1] sides,
               const i64[::1] quantities, const double[::1] prices, const uint8_t[::1] market):
    """The loop of submit_batch, and of check_batch (``ids`` None: each order booked, all taken back)."""
    cdef Py_ssize_t i, n = accounts.shape[0]
    cdef bint record = ids is not None
    cdef const i64[::1] order_ids = ids if record else np.zeros(0, dtype=np.int64)
    out = np.empty(n, dtype=np.uint8)
    cdef uint8_t[::1] reasons = out
    cdef i64 now = self._clock.now(), oid = 0
    cdef uint8_t code
    cdef CheckResult r
    cdef i32 ahead[LOOKAHEAD_BOOKING]          # slot of order j at ahead[j % LOOKAHEAD_BOOKING], -1 unknown
    cdef Py_ssize_t j, d = LOOKAHEAD_BOOKING if record else LOOKAHEAD_WHAT_IF
    cdef Order_t* rows_ahead = NULL
    cdef i32* next_ahead = NULL
    with nogil:
        if record:
            # Room for every order up front: no rehash or copy of the tables midway.
            self._s.orders.reserve(self._s.orders.size() + n)
            self._s.order_next.reserve(self._s.order_next.size() + n)
            self._s.order_index.reserve_more(n)
            rows_ahead = self._s.orders.data() + self._s.orders.size()
            next_ahead = self._s.order_next.data() + self._s.order_next.size()
        else:
            _begin_what_if(&self._s)
        # Starts d / 2 early, so the first orders' slots are looked up too.
        for i in range(-(d // 2), n):
            j = i + d
            if j < n:
                self._s.slot_index.prefetch(accounts[j], symbols[j])
                if record:
                    self._s.order_index.prefetch(order_ids[j])
                    # The rows the orders will be written to: a row is new memory, loaded before it is written.
                    prefetch(rows_ahead + j)
                    if j % 16 == 0:
                        prefetch(next_ahead + j)
            j = i + d // 2
            if j < n:
                if j > 0 and accounts[j] == accounts[j - 1] and symbols[j] == symbols[j - 1]:
                    ahead[j % LOOKAHEAD_BOOKING] = ahead[(j - 1) % LOOKAHEAD_BOOKING]     # a run in one slot
                else:
                    ahead[j % LOOKAHEAD_BOOKING] = self._s.slot_index.find(accounts[j], symbols[j])
                    _prefetch_slot(&self._s, ahead[j % LOOKAHEAD_BOOKING])
                if record and ahead[j % LOOKAHEAD_BOOKING] >= 0:
                    prefetch(&self._s.pending[2 * ahead[j % LOOKAHEAD_BOOKING] + (sides[j] < 0)])
            j = i + d // 4
            if 0 <= j < n and (j == 0 or ahead[j % LOOKAHEAD_BOOKING] != ahead[(j - 1) % LOOKAHEAD_BOOKING]):
                _prefetch_chain(&self._s, ahead[j % LOOKAHEAD_BOOKING])
            if i < 0:
                continue
            if record:
                oid = order_ids[i]
            code = _evaluate(&self._s, accounts[i], symbols[i], sides[i], quantities[i], prices[i],
                             market[i] != 0, now, -1, record, oid, False, ahead[i % LOOKAHEAD_BOOKING], &r)
            reasons[i] = code
            if code == R.OK:
                _reserve(&self._s, oid, accounts[i], symbols[i], sides[i], quantities[i], market[i] != 0,
                         now, record, False, &r)
        if not record:
            _take_back(&self._s, LOOKAHEAD_WHAT_IF)
    return out


def _batch_arrays(accounts, symbols, sides, quantities, prices, market):
    """The batch columns as contiguous arrays of the kernel's types, or InvalidInputError."""
    n = len(accounts)
    arrays = (np.ascontiguousarray(accounts, dtype=np.int32),
              np.ascontiguousarray(symbols, dtype=np.int32),
              np.ascontiguousarray(sides, dtype=np.int8),
              np.ascontiguousarray(quantities, dtype=np.int64),
              np.ascontiguousarray(prices, dtype=np.float64),
              np.zeros(n, dtype=np.uint8) if market is None else np.ascontiguousarray(market, dtype=np.uint8))
    for name, arr in zip(("accounts", "symbols", "sides", "quantities", "prices", "market"), arrays):
        if arr.ndim != 1 or arr.shape[0] != n:
            raise InvalidInputError(f"{name} must be a 1-d array of length {n}, got shape {arr.shape}")
    return arrays


cdef int _refuse(RiskEngine self, i32 node, i32 sym, i64 now, str what) except -1:
    """A fill or mark the books cannot hold: halt the account (or the symbol), record it, raise."""
    if node >= 0:
        self._s.nodes[node].state = TS.HALTED
        self._s.nodes[node].state_cause = R.NOTIONAL_OVERFLOW
        _record_event(&self._s, now, node, R.NOTIONAL_OVERFLOW, CAPACITY, CAPACITY)
        where = f"account {self._account_names[node]!r} is HALTED"
    else:
        self._s.instruments[sym].state = TS.HALTED
        _record_event(&self._s, now, 0, R.NOTIONAL_OVERFLOW, CAPACITY, CAPACITY)
        self._s.events.back().symbol = sym
        where = f"symbol {self._symbol_names[sym]!r} is HALTED"
    raise CapacityError(f"{what} refused: a total would pass the engine's capacity of "
                        f"{CAPACITY / 1e6:.6g} in money; {where}")


cdef class RiskEngine:
    """Pre-trade risk checks, open orders, positions and account-tree aggregates.

    Parameters
    ----------
    firm : str
        Name of the root of the account tree (id 0).
    clock : Clock, optional
        Time source; ``SystemClock()`` by default, ``ManualClock`` in tests.
    duplicate_window : float
        Seconds within which an identical order (account, symbol, side,
        quantity, price) is rejected as a duplicate; 0 turns the guard off.

    Notes
    -----
    Not thread-safe: one engine belongs to one thread (or is guarded by the
    caller). Batch calls release the GIL for their whole loop.
    """

    def __cinit__(self):
        self._account_ids = {}
        self._account_names = []
        self._symbol_ids = {}
        self._symbol_names = []
        self._exec_ids = set()
        self._exec_ids_before = set()

    def __init__(self, str firm="FIRM", Clock clock=None, duplicate_window=0.0):
        if not firm:
            raise InvalidConfigError("firm name must not be empty")
        if not (isinstance(duplicate_window, (int, float)) and math.isfinite(duplicate_window)
                and duplicate_window >= 0):
            raise InvalidConfigError(f"duplicate_window must be >= 0 seconds, got {duplicate_window!r}")
        self._clock = clock if clock is not None else SystemClock()
        self._s.dup_window = _seconds_to_ns(duplicate_window)
        from riskcore.admin import add_firm
        add_firm(self, firm)

    # ------------------------------------------------------------------ ids

    @property
    def clock(self):
        """The engine's clock."""
        return self._clock

    @property
    def accounts(self):
        """Account names by id (id 0 is the firm)."""
        return list(self._account_names)

    @property
    def symbols(self):
        """Symbols by id."""
        return list(self._symbol_names)

    def account_id(self, account):
        """Return the integer id of an account name (ids are what batch calls take)."""
        cdef i32 nid = _resolve(account, self._account_ids, len(self._account_names), "account")
        if nid < 0:
            raise UnknownAccountError(f"unknown account {account!r}")
        return nid

    def symbol_id(self, symbol):
        """Return the integer id of a symbol."""
        cdef i32 sid = _resolve(symbol, self._symbol_ids, len(self._symbol_names), "symbol")
        if sid < 0:
            raise UnknownSymbolError(f"unknown symbol {symbol!r}")
        return sid

    cdef i32 _lookup_account(self, object account) except -2:
        # -1 for unknown: a rejection reason, not an exception, on the order path.
        return _resolve(account, self._account_ids, len(self._account_names), "account")

    cdef i32 _lookup_symbol(self, object symbol) except -2:
        return _resolve(symbol, self._symbol_ids, len(self._symbol_names), "symbol")

    # ------------------------------------------------------------ structure

    def add_instrument(self, instrument):
        """Add an instrument, or update the definition of a known one.

        Updating keeps positions, working orders and the trading state; the
        reference price changes only when the definition carries one.

        Returns
        -------
        int
            The symbol id.
        """
        from riskcore.admin import add_instrument
        return add_instrument(self, instrument)

    def instrument(self, symbol):
        """Return the definition of a symbol as an :class:`Instrument`."""
        from riskcore.views import instrument
        return instrument(self, symbol)

    def add_account(self, str name, parent=None):
        """Add an account under ``parent`` (the firm when omitted).

        Raises
        ------
        InvalidConfigError
            The name exists, or the parent already holds orders or positions
            (positions live on leaf accounts).
        """
        from riskcore.admin import add_account
        return add_account(self, name, parent)

    def parent(self, account):
        """Return the parent account's name (None for the firm)."""
        cdef i32 nid = self.account_id(account)
        cdef i32 pid = self._s.nodes[nid].parent
        return None if pid < 0 else self._account_names[pid]

    # --------------------------------------------------------------- limits

    def set_limits(self, account, limits):
        """Replace the node limits of an account (or the firm) with ``limits``.

        A lower daily loss limit takes effect at once: a node already below it
        switches to REDUCING.
        """
        from riskcore.admin import set_limits
        return set_limits(self, account, limits)

    def limits(self, account):
        """Return the node limits of an account as :class:`Limits`."""
        from riskcore.views import limits
        return limits(self, account)

    def set_position_limit(self, account, symbol, max_long=None, max_short=None):
        """Limit the worst-case long and short quantity of a node in one symbol."""
        from riskcore.admin import set_position_limit
        return set_position_limit(self, account, symbol, max_long, max_short)

    def position_limit(self, account, symbol):
        """Return ``(max_long, max_short)`` of a node in a symbol (None = unlimited)."""
        from riskcore.admin import position_limit
        return position_limit(self, account, symbol)

    def set_allowed_symbols(self, account, symbols):
        """Restrict a node (and its subtree) to ``symbols``; None lifts the restriction."""
        from riskcore.admin import set_allowed_symbols
        return set_allowed_symbols(self, account, symbols)

    def set_trading_state(self, state, account=None, symbol=None):
        """Set ACTIVE, REDUCING or HALTED on a node (the firm by default) or a symbol.

        Setting a state by hand clears an automatic one (daily loss, throttle).
        """
        from riskcore.admin import set_trading_state
        return set_trading_state(self, state, account, symbol)

    def trading_state(self, account=None, symbol=None):
        """Return the trading state of a node (the firm by default) or a symbol."""
        from riskcore.admin import trading_state
        return trading_state(self, account, symbol)

    # ----------------------------------------------------------- the checks

    cdef Decision _decision(self, uint8_t code, CheckResult* r, object quantity=None):
        if code == R.INVALID_QUANTITY and quantity is not None:
            # The core saw 0 for values that are not whole numbers; report what the caller sent.
            try:
                r.value = float(quantity)
            except (TypeError, ValueError, OverflowError):
                pass
        return make_decision(code, r.util, None if r.node < 0 else self._account_names[r.node], r.value, r.limit)

    def check(self, account, symbol, side, quantity, price=None):
        """Check an order without booking it (a what-if).

        Parameters
        ----------
        account, symbol : str or int
            Names or integer ids.
        side : {BUY, SELL, 'BUY', 'SELL'}
        quantity : int
        price : float, optional
            Limit price; None for a market order (priced at the reference).

        Returns
        -------
        Decision

        Notes
        -----
        About a microsecond; allocates only the (untracked) Decision.
        """
        cdef bint market = price is None
        cdef CheckResult r
        cdef uint8_t code = _evaluate(
            &self._s, self._lookup_account(account), self._lookup_symbol(symbol), _side(side), _quantity(quantity),
            0.0 if market else _price(price), market, self._clock.now(), -1, False, 0, True, -1, &r)
        return self._decision(code, &r, quantity)

    def submit(self, long long order_id, account, symbol, side, quantity, price=None):
        """Check an order and, when accepted, book it as working.

        ``order_id`` must be unique for the engine's life.
        """
        cdef bint market = price is None
        cdef i32 acct = self._lookup_account(account)
        cdef i32 sym = self._lookup_symbol(symbol)
        cdef i64 sd = _side(side), q = _quantity(quantity), now = self._clock.now()
        cdef CheckResult r
        cdef uint8_t code = _evaluate(&self._s, acct, sym, sd, q, 0.0 if market else _price(price), market,
                                      now, -1, True, order_id, True, -1, &r)
        if code == R.OK:
            _reserve(&self._s, order_id, acct, sym, sd, q, market, now, True, False, &r)
        return self._decision(code, &r, quantity)

    def modify(self, long long order_id, quantity, price=None):
        """Cancel/replace a working order: new remaining quantity and price.

        ``price=None`` keeps a limit order's price (a market order stays
        market and is repriced at the reference). Checked on the change in
        exposure; on acceptance the order is updated at once.
        """
        cdef i32 oidx = _working(&self._s, order_id)
        cdef Order_t* order
        cdef i64 q = _quantity(quantity), now = self._clock.now()
        cdef bint market
        cdef double px
        cdef uint8_t code
        cdef CheckResult r
        if oidx < 0:
            r = CheckResult(node=-1, value=<double>order_id, limit=0.0, util=0.0, price=0, notional=0, slot=-1)
            return self._decision(R.UNKNOWN_ORDER, &r)
        order = &self._s.orders[oidx]
        market = price is None and order.market
        px = order.price * self._s.instruments[order.symbol].tick_size if price is None else _price(price)
        code = _evaluate(&self._s, order.account, order.symbol, order.side, q, px, market, now, oidx, False, 0, True,
                         order.slot, &r)
        if code == R.OK:
            _replace(&self._s, oidx, q, market, now, &r)
        return self._decision(code, &r, quantity)

    def request_cancel(self, long long order_id):
        """Check a cancel request against the cancel rate limits.

        Exposure is released only when the venue confirms with :meth:`on_cancel`.
        """
        cdef CheckResult r = CheckResult(node=-1, value=<double>order_id, limit=0.0, util=0.0, price=0, notional=0,
                                         slot=-1)
        cdef i32 oidx = _working(&self._s, order_id)
        cdef i64 now = self._clock.now()
        if oidx < 0:
            return self._decision(R.UNKNOWN_ORDER, &r)
        r.value = 0.0
        return self._decision(_count_cancel(&self._s, self._s.orders[oidx].account, now, &r), &r)

    def check_batch(self, accounts, symbols, sides, quantities, prices, market=None):
        """Check many orders as if submitted in sequence, then book none of them.

        Order ``i`` is checked as if orders ``0..i-1`` that passed were
        working. Arrays: int32 account ids, int32 symbol ids, int8 sides
        (+1/-1), int64 quantities, float64 prices, optional bool ``market``.

        Returns
        -------
        numpy.ndarray of uint8
            Reason codes (0 = accepted).

        Notes
        -----
        Releases the GIL for the whole loop.
        """
        return _run_batch(self, None, *_batch_arrays(accounts, symbols, sides, quantities, prices, market))

    def submit_batch(self, order_ids, accounts, symbols, sides, quantities, prices, market=None):
        """Submit many orders in sequence; accepted ones are booked as working.

        Returns the reason codes (uint8, 0 = accepted). Releases the GIL.
        """
        ids = np.ascontiguousarray(order_ids, dtype=np.int64)
        arrays = _batch_arrays(accounts, symbols, sides, quantities, prices, market)
        if ids.ndim != 1 or ids.shape[0] != arrays[0].shape[0]:
            raise InvalidInputError(f"order_ids must be a 1-d array of length {arrays[0].shape[0]}")
        return _run_batch(self, ids, *arrays)

    # --------------------------------------------------------------- events

    def on_fill(self, long long order_id, quantity, price, exec_id):
        """Apply a (partial) fill of a booked order.

        Parameters
        ----------
        exec_id : str, int or None
            The venue's execution id: a repeat is acknowledged and ignored.
            None means the fill has no id: it is applied every time it is sent.

        Returns
        -------
        bool
            False when ``exec_id`` was seen before (the fill is ignored).

        Raises
        ------
        UnknownOrderError
            No order with that id was ever booked.
        InvalidInputError
            Quantity not a whole number in 1..10^12, price not finite and > 0
            or 10^15 ticks or more, an exec id that is not a str or an int.
        CapacityError
            The fill would take a total past the engine's capacity: nothing is
            applied and the account goes HALTED (see bounds.pxd).

        Notes
        -----
        A fill on an order that is no longer working, or beyond its remaining
        quantity, is applied to the position in full: a fill is never lost.
        """
        cdef i32 row = _order_row(&self._s, order_id)
        if row < 0:
            raise UnknownOrderError(f"fill for unknown order {order_id}")
        cdef Order_t* order = &self._s.orders[row]
        cdef i64 q = _quantity(quantity)
        cdef i64 p = self._fill_price(order.symbol, price)
        if q == 0:
            raise InvalidInputError(f"fill quantity must be a whole number in 1..{MAX_QUANTITY}, got {quantity!r}")
        if self._seen_exec_id(exec_id):
            return False
        cdef i64 now = self._clock.now()
        cdef i64 worked = min(q, order.remaining) if order.status == OS.WORKING else 0
        if not _apply_fill(&self._s, order.slot, order.side * q, p, worked * order.price * self._s.instruments[order.symbol].tick_value, now):
            _refuse(self, order.account, -1, now, f"fill of {q} at {price!r} on order {order_id}")
        if order.status == OS.WORKING:
            _release(&self._s, order.slot, order.side, worked, order.price,
                     _price_key(order.side, order.price, order.market), worked == order.remaining)
            order.remaining -= worked
            if order.remaining == 0:
                order.status = OS.FILLED
        else:
            order.remaining = 0
        order.filled = min(order.filled + q, INT64_MAX - MAX_QUANTITY)    # over-fills saturate the count only
        if exec_id is not None:
            self._exec_ids.add(exec_id)
        return True

    cdef bint _seen_exec_id(self, object exec_id) except -1:
        if exec_id is None:
            return False
        if type(exec_id) is not str and (type(exec_id) is not int):
            raise InvalidInputError(f"exec_id must be a str, an int or None, got {type(exec_id).__name__}")
        return exec_id in self._exec_ids or exec_id in self._exec_ids_before

    cdef i64 _fill_price(self, i32 sym, object price) except -1:
        cdef i64 ticks = mark_ticks(_price(price), self._s.instruments[sym].tick_size)
        if ticks < 0:
            raise InvalidInputError(
                f"price of {self._symbol_names[sym]!r} must be finite, > 0 and below {MAX_PRICE_TICKS:g} ticks "
                f"({MAX_PRICE_TICKS * self._s.instruments[sym].tick_size:g}), got {price!r}")
        return ticks

    def book_fill(self, account, symbol, side, quantity, price, exec_id=None):
        """Apply a fill that has no booked order: a drop copy, a transfer, a start-of-day load.

        Returns False when ``exec_id`` was seen before; ``exec_id=None``: no id,
        applied every time. Raises as :meth:`on_fill` does.
        """
        cdef i32 acct = self.account_id(account)
        cdef i32 sym = self.symbol_id(symbol)
        cdef i64 sd = _side(side), q = _quantity(quantity)
        if sd == 0:
            raise InvalidInputError(f"side must be BUY or SELL, got {side!r}")
        if q == 0:
            raise InvalidInputError(f"quantity must be a whole number in 1..{MAX_QUANTITY}, got {quantity!r}")
        if self._s.nodes[acct].n_children > 0 or acct == 0:
            raise InvalidInputError(f"positions live on leaf accounts; {self._account_names[acct]!r} is not one")
        cdef i64 p = self._fill_price(sym, price)
        if self._seen_exec_id(exec_id):
            return False
        cdef i64 now = self._clock.now()
        if not _apply_fill(&self._s, _slot_chain(&self._s, acct, sym), sd * q, p, 0, now):
            _refuse(self, acct, -1, now, f"fill of {q} {self._symbol_names[sym]} at {price!r}")
        if exec_id is not None:
            self._exec_ids.add(exec_id)
        return True

    cdef bint _finish(self, i64 order_id, int8_t status) except -1:
        cdef i32 row = _order_row(&self._s, order_id)
        if row < 0:
            raise UnknownOrderError(f"unknown order {order_id}")
        cdef Order_t* order = &self._s.orders[row]
        if order.status != OS.WORKING:
            return False
        _release(&self._s, order.slot, order.side, order.remaining, order.price,
                 _price_key(order.side, order.price, order.market), True)
        order.status = status
        return True

    def on_cancel(self, long long order_id):
        """The venue cancelled the order: release its remaining quantity.

        Returns False when the order was no longer working.
        """
        return self._finish(order_id, OS.CANCELLED)

    def on_expire(self, long long order_id):
        """The order expired (time in force): release its remaining quantity."""
        return self._finish(order_id, OS.EXPIRED)

    def on_reject(self, long long order_id):
        """The venue rejected the order: release its remaining quantity."""
        return self._finish(order_id, OS.REJECTED)

    def update_price(self, symbol, price, time_ns=None):
        """Set a symbol's reference price (last trade or mark) and revalue its holders.

        Raises InvalidInputError for a price that is not finite, not > 0 or
        10^15 ticks or more (nothing changes), and CapacityError when a
        holder's totals would pass the engine's capacity (the reference stays,
        the symbol goes HALTED).
        """
        cdef i32 sym = self.symbol_id(symbol)
        cdef i64 ref = self._fill_price(sym, price)
        cdef i64 now = self._clock.now() if time_ns is None else time_ns
        if not _set_reference(&self._s, sym, ref, now):
            _refuse(self, -1, sym, now, f"mark {price!r} for {self._symbol_names[sym]!r}")

    def update_prices(self, symbols, prices, time_ns=None):
        """Apply many reference prices at once (int32 symbol ids, float64 prices).

        All rows are validated before any is applied. Releases the GIL. A row
        that would take a holder past the engine's capacity is not applied and
        halts its symbol; the others are, and CapacityError then names it.
        """
        cdef const i32[::1] sids = np.ascontiguousarray(symbols, dtype=np.int32)
        cdef const double[::1] pxs = np.ascontiguousarray(prices, dtype=np.float64)
        if sids.shape[0] != pxs.shape[0]:
            raise InvalidInputError(f"symbols and prices differ in length: {sids.shape[0]} != {pxs.shape[0]}")
        cdef Py_ssize_t bad, refused
        cdef i32 nsym = <i32>self._s.instruments.size()
        cdef i64 now = self._clock.now() if time_ns is None else time_ns
        with nogil:
            bad = _set_references(&self._s, &sids[0] if sids.shape[0] else NULL, &pxs[0] if pxs.shape[0] else NULL,
                                  sids.shape[0], now, &refused)
        if bad >= 0:
            if sids[bad] < 0 or sids[bad] >= nsym:
                raise UnknownSymbolError(f"row {bad}: unknown symbol id {sids[bad]}")
            self._fill_price(sids[bad], pxs[bad])       # raises the row's price error
        if refused >= 0:
            _refuse(self, -1, sids[refused], now, f"row {refused}: mark {pxs[refused]!r} for {self._symbol_names[sids[refused]]!r}")

    def reference_price(self, symbol):
        """Return a symbol's reference price, or None."""
        cdef Instrument_t* ins = &self._s.instruments[self.symbol_id(symbol)]
        return ins.ref * ins.tick_size if ins.ref > 0 else None

    def roll_day(self):
        """Start a new trading day.

        Takes each node's realized + unrealized P&L as the new baseline,
        returns nodes put in REDUCING by their daily loss to ACTIVE, and
        forgets finished orders (their ids stay used). Execution ids are
        remembered for the day they arrived and the day after, so a late
        duplicate across the roll is still ignored while memory stays bounded.
        """
        from riskcore.admin import roll_day
        return roll_day(self)

    def reserve_orders(self, n):
        """Size the order tables to hold ``n`` orders, those booked since the last ``roll_day`` included.

        Call it at start of day (and after a restore) with the day's expected
        order count: booking up to ``n`` then never grows a table mid-session
        (no copy of the order table, no rehash of the order index) and never
        waits on the kernel for fresh memory, which is touched here. Costs about
        100 bytes per order; a smaller ``n`` than the table holds does nothing.
        """
        from riskcore.admin import reserve_orders
        return reserve_orders(self, n)

    # ----------------------------------------------------------- read views

    def order(self, long long order_id):
        """Return an order's state as an ``OrderInfo``."""
        from riskcore.views import order
        return order(self, order_id)

    def position(self, account, symbol):
        """Return the position of a node (leaf or aggregate) in one symbol."""
        from riskcore.views import position
        return position(self, account, symbol)

    def positions(self):
        """Leaf positions (non-zero quantity or realized P&L) as a structured array.

        Money fields are in currency; ``account`` and ``symbol`` are ids.
        """
        from riskcore.views import positions
        return positions(self)

    def open_orders(self):
        """Working orders as a structured array (prices in price units)."""
        from riskcore.views import open_orders
        return open_orders(self)

    def aggregate(self, account=None):
        """Return the aggregate of a node (the firm by default); O(1).

        Money in currency: long, short, net and gross notional at the
        reference, working-order notional, realized, unrealized and daily P&L.
        """
        cdef i32 nid = 0 if account is None else self.account_id(account)
        cdef Node_t* n = &self._s.nodes[nid]
        return Aggregate(
            self._account_names[nid], n.long_notional / 1e6, n.short_notional / 1e6,
            (n.long_notional - n.short_notional) / 1e6,
            (n.long_notional + n.short_notional + n.wbuy_notional + n.wsell_notional) / 1e6,
            n.wbuy_notional / 1e6, n.wsell_notional / 1e6, n.realized / 1e6, n.unrealized / 1e6,
            <double>(<i128>n.realized + n.unrealized - n.sod_pnl) / 1e6, n.open_orders, TradingState(n.state))

    def aggregates(self):
        """Every node's incrementally kept aggregate, in integer micro-units."""
        from riskcore.views import aggregates
        return aggregates(self)

    def recompute(self):
        """Rebuild every aggregate from the leaves and working orders, from scratch.

        Returns the same structured array as :meth:`aggregates`; the engine's
        incremental state is not touched. O(slots + orders + nodes): a parent
        slot is always created before its children, so one pass from the
        newest slot to the oldest carries every leaf up its chain. Every sum
        and product is checked for 64-bit overflow (the processor's flag, so
        at no measurable cost): a result computed without one is exact, and a
        total past the engine's capacity, which the kept totals could not have
        held, raises StateError.
        """
        from riskcore.audit import recompute
        return recompute(self)

    def verify(self):
        """Prove the incremental aggregates equal a full recompute.

        Raises StateError naming the first node and field that differ.
        """
        from riskcore.audit import verify
        return verify(self)

    def utilisation(self, account=None):
        """Return each set limit of a node with its current use and ratio.

        Returns
        -------
        dict
            limit name -> (value, limit, value / limit), money in currency.
        """
        from riskcore.views import utilisation
        return utilisation(self, account)

    def drain_events(self):
        """Return the breach events recorded since the last call, and clear them."""
        from riskcore.views import drain_events
        return drain_events(self)

    # --------------------------------------------------- snapshot / restore

    def to_state(self):
        """Return the whole engine state as plain data (for snapshots); see :mod:`riskcore.snapshot`."""
        from riskcore.snapshot import engine_state
        return engine_state(self)

    @classmethod
    def from_state(cls, state, Clock clock=None):
        """Rebuild an engine from :meth:`to_state` output (this version's or the one before).

        Raises StateError when the state is from an incompatible version or
        its tables are inconsistent.
        """
        from riskcore.snapshot import restore_engine
        return restore_engine(cls, state, clock)


