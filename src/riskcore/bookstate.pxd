# The L3 book's state (book.h) and the changes ITCH order events make to it.
#
# These are inline functions over one BookState, not methods of a class: the
# decoder's loop (itch.pyx) calls them directly and the C compiler inlines
# them into it, so a message costs its field reads, one order-store probe and
# a level update, with no call through a method table (STYLE: "Logic as
# functions over shared tables"). Every function here is total: an event that
# cannot be applied is counted and skipped, never raised.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libcpp cimport bool as cbool
from libcpp.vector cimport vector

cdef extern from "book.h" namespace "riskcore::md" nogil:
    cdef struct Order:
        uint64_t ref
        uint32_t price
        uint32_t shares
        uint16_t locate
        uint8_t side

    cdef cppclass OrderStore:
        Order* find(uint64_t ref)
        Order* insert(uint64_t ref, cbool* existed)
        void erase(Order* entry)
        void reserve(size_t n)
        void clear()
        size_t size()
        size_t capacity()
        const Order& at(size_t i)

    cdef struct Level:
        uint32_t key
        uint32_t orders
        uint64_t shares

    cdef cppclass PriceLevels:
        bint add(uint32_t key, uint32_t shares)
        bint reduce(uint32_t key, uint32_t shares, bint order_gone)
        bint empty()
        const Level& best()
        size_t size()
        const Level& from_best(size_t i)

    cdef cppclass SymbolBook:
        PriceLevels bids
        PriceLevels asks
        uint64_t last_size
        uint64_t last_time
        uint32_t last_price
        char name[8]
        uint8_t named
        uint8_t state
        uint8_t dirty
        uint8_t seen

    cdef struct Counters:
        uint64_t messages
        uint64_t unknown_type
        uint64_t short_message
        uint64_t truncated_frame
        uint64_t bad_field
        uint64_t unknown_ref
        uint64_t duplicate_add
        uint64_t over_execution
        uint64_t crossed_book

    cdef cppclass BookState:
        vector[SymbolBook] symbols
        OrderStore orders
        Counters counters
        uint64_t by_type[256]
        vector[uint16_t] dirty
        uint64_t last_timestamp
        uint64_t event_time
        uint8_t event
        uint32_t named
        SymbolBook* symbol(uint16_t locate)


cdef enum:
    SIDE_BUY = 66       # b'B'
    SIDE_SELL = 83      # b'S'


cdef inline uint32_t level_key(uint8_t side, uint32_t price) noexcept nogil:
    # Asks are keyed by the inverted price so that each side's best sorts last.
    return price if side == SIDE_BUY else ~price


cdef inline uint32_t level_price(PriceLevels* levels, bint bids, size_t i) noexcept nogil:
    cdef uint32_t key = levels.from_best(i).key
    return key if bids else ~key


cdef inline void mark_dirty(BookState* st, uint16_t locate, SymbolBook* sym) noexcept nogil:
    # Conflation: a symbol is queued once however often it changes between reads.
    if not sym.dirty:
        sym.dirty = 1
        st.dirty.push_back(locate)


cdef inline void check_crossed(BookState* st, SymbolBook* sym) noexcept nogil:
    # Valid ITCH never leaves a displayed book locked or crossed: count it if it does.
    if not sym.bids.empty() and not sym.asks.empty():
        if sym.bids.best().key >= ~sym.asks.best().key:
            st.counters.crossed_book += 1


cdef inline void add_order(BookState* st, uint16_t locate, uint64_t ref, uint8_t side, uint32_t shares,
                           uint32_t price) noexcept nogil:
    """A (Add Order) and F (with MPID): a new order rests at its price."""
    cdef cbool existed
    cdef Order* o = st.orders.insert(ref, &existed)
    if existed:
        st.counters.duplicate_add += 1        # keep the live order; drop the second add
        return
    o.price = price
    o.shares = shares
    o.locate = locate
    o.side = side
    cdef SymbolBook* sym = st.symbol(locate)
    cdef PriceLevels* levels = &sym.bids if side == SIDE_BUY else &sym.asks
    if levels.add(level_key(side, price), shares):
        mark_dirty(st, locate, sym)
        check_crossed(st, sym)


cdef inline void take_shares(BookState* st, Order* o, uint32_t shares) noexcept nogil:
    """Take shares off a live order (clamped to what remains); remove it when none remain."""
    if shares > o.shares:
        st.counters.over_execution += 1
        shares = o.shares
    o.shares -= shares
    cdef SymbolBook* sym = st.symbol(o.locate)
    cdef PriceLevels* levels = &sym.bids if o.side == SIDE_BUY else &sym.asks
    cdef bint gone = o.shares == 0
    if levels.reduce(level_key(o.side, o.price), shares, gone):
        mark_dirty(st, o.locate, sym)
    if gone:
        st.orders.erase(o)


cdef inline void record_trade(BookState* st, uint16_t locate, uint32_t price, uint64_t shares,
                              uint64_t timestamp) noexcept nogil:
    cdef SymbolBook* sym = st.symbol(locate)
    sym.last_price = price
    sym.last_size = shares
    sym.last_time = timestamp
    mark_dirty(st, locate, sym)


cdef inline void execute_order(BookState* st, uint64_t ref, uint32_t shares, uint32_t price, bint at_order_price,
                               bint printable, uint64_t timestamp) noexcept nogil:
    """E (at the order's price) and C (at a stated price, printed only when printable)."""
    cdef Order* o = st.orders.find(ref)
    if o == NULL:
        st.counters.unknown_ref += 1
        return
    cdef uint16_t locate = o.locate
    cdef uint32_t executed = shares if shares <= o.shares else o.shares
    if at_order_price:
        price = o.price
    take_shares(st, o, shares)               # o may be gone after this
    if printable and executed > 0:
        record_trade(st, locate, price, executed, timestamp)


cdef inline void cancel_order(BookState* st, uint64_t ref, uint32_t shares) noexcept nogil:
    """X (Order Cancel): a partial cancel of `shares`."""
    cdef Order* o = st.orders.find(ref)
    if o == NULL:
        st.counters.unknown_ref += 1
        return
    take_shares(st, o, shares)


cdef inline void delete_order(BookState* st, uint64_t ref) noexcept nogil:
    """D (Order Delete): the whole remaining order goes."""
    cdef Order* o = st.orders.find(ref)
    if o == NULL:
        st.counters.unknown_ref += 1
        return
    take_shares(st, o, o.shares)


cdef inline void replace_order(BookState* st, uint64_t old_ref, uint64_t new_ref, uint32_t shares,
                               uint32_t price) noexcept nogil:
    """U (Order Replace): the old order goes; a new one with its side and stock rests at the new terms.

    A replace whose new reference is already live removes the old order and
    counts a duplicate add (the live order is kept, as for A).
    """
    cdef Order* o = st.orders.find(old_ref)
    if o == NULL:
        st.counters.unknown_ref += 1
        return
    cdef uint16_t locate = o.locate
    cdef uint8_t side = o.side
    take_shares(st, o, o.shares)
    add_order(st, locate, new_ref, side, shares, price)


cdef inline void set_trading_state(BookState* st, uint16_t locate, uint8_t state) noexcept nogil:
    """H (Trading Action): 'H' halted, 'P' paused, 'Q' quotation only, 'T' trading."""
    cdef SymbolBook* sym = st.symbol(locate)
    if sym.state != state:
        sym.state = state
        mark_dirty(st, locate, sym)


cdef inline void set_directory(BookState* st, uint16_t locate, const uint8_t* stock) noexcept nogil:
    """R (Stock Directory): the locate's symbol name."""
    cdef SymbolBook* sym = st.symbol(locate)
    cdef int i
    for i in range(8):
        sym.name[i] = <char>stock[i]
    sym.named = 1
    st.named += 1
