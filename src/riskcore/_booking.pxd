# Booking: an accepted order's working quantity and notional along its slot chain,
# its release when it leaves, and the slot sides' price levels.
#
# Functions over the engine's state (state.h), inline and nogil: submits,
# modifies, cancels, fills and the batch loops call them directly, with no
# call through the engine's method table.
from libc.string cimport memset

from riskcore._types cimport i64, i32, int8_t, INT64_MAX, INT64_MIN, Node_t, Slot_t, Order_t, SavedNode, PendingRun, CheckResult
from riskcore._types cimport OrderStatus as OS
from riskcore._state cimport State, DupKey
from riskcore.tables cimport Levels, prefetch
from riskcore._throttle cimport W_NEW, W_MODIFY, _window, _dup_key, _remember_order
from riskcore._whatif cimport _save_row, _save_node

# At most this many orders of a slot side wait for its price levels: bounds
# the work of the event that adds them (see _flush_levels).
cdef enum:
    PENDING_MAX = 16


cdef inline i64 _price_key(i64 side, i64 price, bint market) noexcept nogil:
    # A working market order crosses everything on the other side.
    if market:
        return INT64_MAX if side > 0 else INT64_MIN
    return price


cdef inline i64 _level_key(i64 side, i64 price_key) noexcept nogil:
    # Sell keys are stored bit-inverted, so each side's best level sorts last.
    return price_key if side > 0 else ~price_key


cdef inline Levels* _resting_side(State* st, i32 slot, i64 side) noexcept nogil:
    """The slot's working orders of one side, by level key (see ``_level_key``)."""
    return &st.rest_buy[slot] if side > 0 else &st.rest_sell[slot]


cdef inline void _flush_levels(State* st, i32 slot, i64 side) noexcept nogil:
    """Add a slot side's pending orders to its price levels.

    The checks read only the row's best price, which booking keeps exact;
    the levels are needed when an order leaves (to find the next best), so
    booking leaves them to the first such event, or to every PENDING_MAX
    orders. Pending orders are all working: any that leaves flushes first.
    """
    cdef PendingRun* run = &st.pending[2 * slot + (side < 0)]
    cdef Levels* book = _resting_side(st, slot, side)
    cdef Order_t* order
    cdef i32 row = run.newest, k
    for k in range(run.count):
        order = &st.orders[row]
        book.add(_level_key(side, _price_key(side, order.price, order.market)))
        row = st.order_next[row]
    run.count = 0


cdef inline void _defer_level(State* st, i32 slot, i64 side, i32 row) noexcept nogil:
    """Put a newly booked order on its slot side's pending run (see ``_flush_levels``)."""
    cdef PendingRun* run = &st.pending[2 * slot + (side < 0)]
    st.order_next[row] = run.newest
    run.newest = row
    run.count += 1
    if run.count == PENDING_MAX:
        _flush_levels(st, slot, side)


cdef inline void _flush_all_levels(State* st) noexcept nogil:
    cdef size_t j
    for j in range(st.pending.size()):
        if st.pending[j].count:
            _flush_levels(st, <i32>(j // 2), 1 if j % 2 == 0 else -1)


cdef inline void _prefetch_slot(State* st, i32 s) noexcept nogil:
    """Start loading a leaf slot's row."""
    if s >= 0:
        prefetch(&st.slots[s])


cdef inline void _prefetch_chain(State* st, i32 s) noexcept nogil:
    """Once the leaf row is in cache: start loading its parent's row.

    The rows further up (the firm's, one per symbol) are few and stay cached.
    """
    if s < 0:
        return
    if st.slots[s].parent_slot >= 0:
        prefetch(&st.slots[st.slots[s].parent_slot])


cdef inline void _reserve(State* st, i64 order_id, i32 acct, i32 sym, i64 side, i64 q, bint market,
                          i64 now, bint record, bint is_modify, const CheckResult* r) noexcept nogil:
    """Book an order that just passed ``_evaluate`` (its terms are in ``r``).

    A modify re-books the replaced order (already released) and counts
    against the modify rate instead of the new-order rate and duplicate guard.
    In a what-if batch the rows and nodes are saved before their first
    change, and the price levels stay as they are: only the row's best
    level moves, which is all a later order's self-match check reads. A
    booking batch moves the best level at once and the levels at its end.
    """
    cdef i32 s = r.slot
    cdef i64 p = r.price, notional = r.notional
    cdef i64 key = _level_key(side, _price_key(side, p, market))
    cdef Slot_t* slot
    cdef Node_t* nd
    cdef SavedNode* saved = NULL
    cdef Order_t order
    cdef DupKey dkey
    if record:
        st.nodes[acct].active = 1
    while s >= 0:
        slot = &st.slots[s]
        nd = &st.nodes[slot.node]
        if st.what_if:
            _save_row(st, s)
            saved = _save_node(st, slot.node)
        if side > 0:
            slot.wbuy += q
            nd.wbuy_notional += notional
        else:
            slot.wsell += q
            nd.wsell_notional += notional
        nd.open_orders += 1
        if is_modify:
            if nd.limits.modify_rate_count >= 0:
                _window(st, slot.node, W_MODIFY).push(now)
        elif nd.limits.new_rate_count >= 0:
            _window(st, slot.node, W_NEW).push(now)
            if st.what_if:
                saved.pushed += 1
        s = slot.parent_slot
    slot = &st.slots[r.slot]
    if is_modify:
        _resting_side(st, r.slot, side).add(key)     # its old level went in _release
    if side > 0:
        slot.best_buy = max(slot.best_buy, key)
    else:
        slot.best_sell = max(slot.best_sell, key)
    if st.dup_window > 0 and not is_modify:
        dkey = _dup_key(acct, sym, side, q, _price_key(side, p, market))
        _remember_order(st, &dkey, now)
        if st.what_if:
            st.batch_dups.push_back(dkey)
    if record:
        memset(&order, 0, sizeof(order))
        order.id = order_id
        order.account = acct
        order.symbol = sym
        order.slot = r.slot
        order.side = <int8_t>side
        order.market = market
        order.status = OS.WORKING
        order.price = p
        order.remaining = q
        st.order_index.set(order_id, <i32>st.orders.size())
        st.orders.push_back(order)
        st.order_next.push_back(-1)
        _defer_level(st, r.slot, side, <i32>st.orders.size() - 1)


cdef inline void _release(State* st, i32 leaf_slot, i64 side, i64 qty, i64 price, i64 price_key,
                          bint close) noexcept nogil:
    """Take ``qty`` of a working order off the books; ``close`` when it stops working."""
    cdef i32 s = leaf_slot
    cdef Slot_t* slot
    cdef Node_t* nd
    cdef Levels* book
    cdef i64 notional = qty * price * st.instruments[st.slots[leaf_slot].symbol].tick_value
    while s >= 0:
        slot = &st.slots[s]
        nd = &st.nodes[slot.node]
        if side > 0:
            slot.wbuy -= qty
            nd.wbuy_notional -= notional
        else:
            slot.wsell -= qty
            nd.wsell_notional -= notional
        if close:
            nd.open_orders -= 1
        s = slot.parent_slot
    if close:
        _flush_levels(st, leaf_slot, side)
        book = _resting_side(st, leaf_slot, side)
        book.remove(_level_key(side, price_key))
        slot = &st.slots[leaf_slot]
        if side > 0:
            slot.best_buy = INT64_MIN if book.empty() else book.best()
        else:
            slot.best_sell = INT64_MIN if book.empty() else book.best()


cdef inline void _replace(State* st, i32 row, i64 q, bint market, i64 now, const CheckResult* r) noexcept nogil:
    """Book a modify that just passed ``_evaluate``: the order's old terms off the books, its new ones on."""
    cdef Order_t* order = &st.orders[row]
    _release(st, order.slot, order.side, order.remaining, order.price,
             _price_key(order.side, order.price, order.market), True)
    _reserve(st, order.id, order.account, order.symbol, order.side, q, market, now, False, True, r)
    order.price = r.price
    order.remaining = q
    order.market = market
