"""An L3 (order-by-order) book built from NASDAQ TotalView-ITCH 5.0.

:class:`Book` keeps every displayed order by its reference and every
symbol's price levels by stock locate, and reads like a notebook wants:
``book.top("AAPL")``, ``book.depth("AAPL", 5)``, ``book.marks()``. Feeding is
compiled and runs without the GIL (``riskcore.itch.decode_into``); the rules it
applies are in ``bookstate.pxd``, the tables in ``book.h``.

Units: prices are exact integers in the wire's Price(4) unit, 1/10,000 of a
dollar (``PRICE_SCALE``; ``format_price`` prints one as a decimal); sizes are
shares; times are nanoseconds since midnight. A missing price (an empty side,
no trade yet) is ``None``.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.string cimport memset

from riskcore.bookstate cimport BookState, SymbolBook, PriceLevels, Order, Counters, level_price
from riskcore.itch cimport decode_into
from riskcore.book_records import Depth, LastTrade, Level, Mark, OrderEntry, Top
from riskcore.errors import UnknownSymbolError
from riskcore.itch import PRICE_SCALE

# The counters, in the order of book.h's Counters struct.
COUNTER_NAMES = ("messages", "unknown_type", "short_message", "truncated_frame", "bad_field",
                 "unknown_ref", "duplicate_add", "over_execution", "crossed_book")
MAX_LOCATE = 65535


def format_price(price):
    """Return a Price(4) integer as a decimal string with 4 places (``"" `` for None)."""
    if price is None:
        return ""
    whole, frac = divmod(int(price), PRICE_SCALE)
    return f"{whole}.{frac:04d}"


cdef str _name(SymbolBook* sym):
    return (<bytes>(<char*>sym.name)[:8]).decode("latin-1").rstrip(" ")


cdef class Book:
    """An L3 book for every symbol of one ITCH 5.0 feed.

    Parameters
    ----------
    order_capacity : int, optional
        Live orders to size the order store for up front (it grows as needed).

    Notes
    -----
    Symbols are given by name (from the Stock Directory) or by stock locate
    (an int). A book is not thread-safe: while a feed runs (without the
    GIL) every other call on the same book raises ``RuntimeError``.
    """

    def __init__(self, order_capacity=0):
        if order_capacity < 0:
            raise ValueError(f"order_capacity must be >= 0, got {order_capacity!r}")
        self._names = {}
        self._named_indexed = 0
        self._busy = False
        if order_capacity:
            self._state.orders.reserve(order_capacity)

    # ------------------------------------------------------------ feeding

    def feed(self, buffer):
        """Apply every length-framed message in ``buffer``; return how many were applied.

        Parameters
        ----------
        buffer : bytes-like
            Messages each preceded by its 2-byte big-endian length (NASDAQ's
            day-file framing, also the block format of MoldUDP64).

        Returns
        -------
        int
            Messages decoded and applied. Skipped ones are counted in
            ``counters()`` by reason; a frame cut off at the end of the buffer
            counts as ``truncated_frame``.

        Notes
        -----
        O(messages), GIL released. Use :meth:`feed_chunk` for a stream read in
        pieces, where a frame may continue in the next piece.
        """
        cdef uint64_t before = self._state.counters.messages
        self._feed(buffer, True, -1)
        return self._state.counters.messages - before

    def feed_chunk(self, buffer, until=None):
        """Apply the complete frames at the start of ``buffer``; return the bytes consumed.

        The caller keeps ``buffer[consumed:]`` (an incomplete last frame) and
        puts it in front of the next chunk.

        Parameters
        ----------
        buffer : bytes-like
        until : int, optional
            Stop before the first message stamped later than this (ns since
            midnight): for replay paced at recorded time.

        Notes
        -----
        O(messages), GIL released.
        """
        cdef int64_t limit = -1
        if until is not None:
            if until < 0:
                raise ValueError(f"until must be >= 0, got {until!r}")
            limit = until
        return self._feed(buffer, False, limit)

    cdef Py_ssize_t _feed(self, object buffer, bint final, int64_t until) except -1:
        self._idle()
        cdef const uint8_t[::1] view
        try:
            view = buffer
        except (TypeError, ValueError) as error:
            raise TypeError(f"buffer must be a contiguous bytes-like object of bytes, "
                            f"got {type(buffer).__name__}: {error}") from None
        cdef Py_ssize_t n = view.shape[0], consumed
        if n == 0:
            return 0
        cdef const uint8_t* data = &view[0]
        self._busy = True
        try:
            with nogil:
                consumed = decode_into(&self._state, data, n, final, until)
        finally:
            self._busy = False
        return consumed

    def reset(self):
        """Forget every order, level, trade, state and counter (before a replay from the start)."""
        self._idle()
        self._state.symbols.clear()
        self._state.orders.clear()
        self._state.dirty.clear()
        memset(&self._state.counters, 0, sizeof(Counters))
        memset(self._state.by_type, 0, sizeof(self._state.by_type))
        self._state.last_timestamp = 0
        self._state.event_time = 0
        self._state.event = 0
        self._state.named = 0
        self._names = {}
        self._named_indexed = 0

    # ------------------------------------------------------------ reading

    cdef int _idle(self) except -1:
        if self._busy:
            raise RuntimeError("the book is being fed in another thread; a Book is not thread-safe")
        return 0

    cdef int _locate(self, object symbol) except -1:
        """The stock locate of a name or of a locate; UnknownSymbolError when neither."""
        cdef SymbolBook* sym
        cdef size_t i
        self._idle()
        if type(symbol) is str:
            if self._named_indexed != self._state.named:
                names = {}
                for i in range(self._state.symbols.size()):
                    sym = &self._state.symbols[i]
                    if sym.named:
                        names[_name(sym)] = <int>i
                self._names = names
                self._named_indexed = self._state.named
            found = self._names.get(symbol)
            if found is None:
                raise UnknownSymbolError(f"no symbol {symbol!r} in the stock directory")
            return found
        if isinstance(symbol, int) and not isinstance(symbol, bool):
            if not 0 <= symbol <= MAX_LOCATE:
                raise UnknownSymbolError(f"stock locate must be in 0..{MAX_LOCATE}, got {symbol}")
            return symbol
        raise TypeError(f"symbol must be a name (str) or a stock locate (int), got {type(symbol).__name__}")

    cdef SymbolBook* _book(self, int locate) noexcept:
        # NULL for a locate no message has been about: an empty book.
        if <size_t>locate >= self._state.symbols.size():
            return NULL
        return &self._state.symbols[locate]

    def top(self, symbol):
        """Return the top of ``symbol``'s book and its last trade price.

        Returns
        -------
        Top
            ``(bid_price, bid_size, ask_price, ask_size, last_price)``; a price
            is ``None`` (its size 0) when the side is empty or there was no trade.

        Raises
        ------
        UnknownSymbolError
            A name not in the stock directory, or a locate outside 0..65535.

        Notes
        -----
        O(1).
        """
        cdef SymbolBook* sym = self._book(self._locate(symbol))
        if sym == NULL:
            return Top(None, 0, None, 0, None)
        return Top(
            None if sym.bids.empty() else level_price(&sym.bids, True, 0),
            0 if sym.bids.empty() else sym.bids.best().shares,
            None if sym.asks.empty() else level_price(&sym.asks, False, 0),
            0 if sym.asks.empty() else sym.asks.best().shares,
            sym.last_price if sym.last_size else None)

    def depth(self, symbol, n=10):
        """Return up to ``n`` price levels of each side of ``symbol``'s book, best first.

        Returns
        -------
        Depth
            ``(bids, asks)``, each a list of ``Level(price, shares, orders)``.

        Notes
        -----
        O(n).
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        cdef SymbolBook* sym = self._book(self._locate(symbol))
        if sym == NULL:
            return Depth([], [])
        cdef size_t i
        cdef PriceLevels* side
        out = []
        for bids in (True, False):
            side = &sym.bids if bids else &sym.asks
            out.append([Level(level_price(side, bids, i), side.from_best(i).shares, side.from_best(i).orders)
                        for i in range(min(<size_t>n, side.size()))])
        return Depth(out[0], out[1])

    def last_trade(self, symbol):
        """Return ``LastTrade(price, shares, timestamp)`` of ``symbol``, or None before its first trade.

        A trade is an E (at the order's price), a C marked printable, or a P
        or Q of more than 0 shares.
        """
        cdef SymbolBook* sym = self._book(self._locate(symbol))
        if sym == NULL or sym.last_size == 0:
            return None
        return LastTrade(sym.last_price, sym.last_size, sym.last_time)

    def trading_state(self, symbol):
        """Return the last Trading Action state of ``symbol``: 'T', 'H', 'P' or 'Q' ('' before any)."""
        cdef SymbolBook* sym = self._book(self._locate(symbol))
        return "" if sym == NULL or sym.state == 0 else chr(sym.state)

    def halted(self, symbol):
        """Return whether ``symbol`` is not trading: halted (H), paused (P) or quotation only (Q).

        False in 'T' and before any Trading Action. Order events of a halted
        symbol are still applied to its book.
        """
        cdef SymbolBook* sym = self._book(self._locate(symbol))
        return sym != NULL and sym.state != 0 and sym.state != b'T'

    def symbols(self):
        """Return the symbol names of the stock directory, in stock locate order."""
        self._idle()
        cdef size_t i
        return [_name(&self._state.symbols[i]) for i in range(self._state.symbols.size())
                if self._state.symbols[i].named]

    def locate(self, symbol):
        """Return the stock locate of a symbol name."""
        return self._locate(symbol)

    def symbol_name(self, int locate):
        """Return the name the stock directory gave ``locate``, or None."""
        cdef SymbolBook* sym = self._book(self._locate(locate))
        return None if sym == NULL or not sym.named else _name(sym)

    def order(self, ref):
        """Return the live order ``ref`` as ``OrderEntry(ref, locate, side, price, shares)``, or None."""
        self._idle()
        if not 0 <= ref < 2**64:
            return None
        cdef Order* o = self._state.orders.find(ref)
        if o == NULL:
            return None
        return OrderEntry(o.ref, o.locate, chr(o.side), o.price, o.shares)

    @property
    def orders(self):
        """The number of live orders."""
        return self._state.orders.size()

    def counters(self):
        """Return the decode and integrity counters since the book was made (or reset).

        Returns
        -------
        dict[str, int]
            ``messages`` (decoded and applied), then the skipped frames by
            reason: ``unknown_type``, ``short_message`` (shorter than its
            type's length), ``truncated_frame`` (cut off at the end of a
            feed), ``bad_field`` (a side not B/S, zero shares on an add or
            replace, stock locate 0 on a stock message, a trading state not
            H/P/Q/T); then the integrity
            counters of applied messages: ``unknown_ref``, ``duplicate_add``,
            ``over_execution`` (clamped to what remained) and ``crossed_book``
            (an add or replace at or better than its side's best left best
            bid >= best ask: never on valid data).
        """
        self._idle()
        cdef Counters c = self._state.counters
        values = (c.messages, c.unknown_type, c.short_message, c.truncated_frame, c.bad_field,
                  c.unknown_ref, c.duplicate_add, c.over_execution, c.crossed_book)
        return dict(zip(COUNTER_NAMES, values))

    def message_counts(self):
        """Return the complete frames seen per type letter (unknown types included)."""
        self._idle()
        cdef int t
        return {chr(t): self._state.by_type[t] for t in range(256) if self._state.by_type[t]}

    @property
    def last_timestamp(self):
        """Timestamp (ns since midnight) of the last message applied; 0 before any."""
        return self._state.last_timestamp

    @property
    def system_event(self):
        """The last System Event as ``(event_code, timestamp)``, or None before any."""
        if self._state.event == 0:
            return None
        return chr(self._state.event), self._state.event_time

    @property
    def session_ended(self):
        """True once the System Event 'C' (end of messages) has been applied."""
        return self._state.event == b'C'

    # ------------------------------------------------------------ marks

    cdef object _mark(self, int locate):
        cdef SymbolBook* sym = &self._state.symbols[locate]
        return Mark(
            _name(sym) if sym.named else None, locate,
            None if sym.bids.empty() else level_price(&sym.bids, True, 0),
            0 if sym.bids.empty() else sym.bids.best().shares,
            None if sym.asks.empty() else level_price(&sym.asks, False, 0),
            0 if sym.asks.empty() else sym.asks.best().shares,
            sym.last_price if sym.last_size else None, sym.last_size, sym.last_time,
            sym.state != 0 and sym.state != b'T')

    def marks(self, changed_only=True):
        """Return the top of book and last trade of each symbol that changed since the last call.

        A symbol whose best bid or offer (price or size), last trade or
        trading state changed any number of times since the previous call
        appears once, with its current values (conflation); the call clears
        the changed flags.

        Parameters
        ----------
        changed_only : bool
            False: every symbol any message has been about, and the flags are
            cleared all the same.

        Returns
        -------
        list[Mark]
            ``Mark(symbol, locate, bid_price, bid_size, ask_price, ask_size,
            last_price, last_size, last_time, halted)``, in the order the
            symbols first changed (by locate when ``changed_only`` is False);
            ``symbol`` is None for a locate with no directory entry.

        Notes
        -----
        O(symbols changed).
        """
        self._idle()
        cdef size_t i
        cdef uint16_t locate
        if changed_only:
            out = [self._mark(self._state.dirty[i]) for i in range(self._state.dirty.size())]
        else:
            out = [self._mark(<int>i) for i in range(self._state.symbols.size()) if self._state.symbols[i].seen]
        for i in range(self._state.dirty.size()):
            self._state.symbols[self._state.dirty[i]].dirty = 0
        self._state.dirty.clear()
        return out
