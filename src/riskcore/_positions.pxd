# Positions: a fill's arithmetic and its carry up the account tree, positions'
# values, the revaluation of their holders when a reference moves, and what
# a P&L change sets off (the daily loss limit, the fill throttle, breach events).
#
# Functions over the engine's state, inline and nogil: fills and marks call
# them directly, with no call through the engine's method table. Money is in
# micro-units (bounds.pxd).
from libc.string cimport memset

from riskcore._types cimport (
    i64, i32, i128, uint8_t, INT64_MAX, INT64_MIN, MAX_DEPTH, Instrument_t, Node_t, Slot_t, Event_t,
)
from riskcore._types cimport Reason as R
from riskcore._types cimport TradingState as TS
from riskcore._state cimport State
from riskcore._throttle cimport W_FILL, _window
from riskcore.bounds cimport CAPACITY, within, pnl_within, gross_within
from riskcore.fixedpoint cimport (
    tdiv_mul, sign, positive_part, iabs, add_overflows, sub_overflows, money_overflows, mark_ticks,
)


cdef inline bint _fill_position(i64* pos, i64* cost, i64* realized, i64 signed_qty, i64 price, i64 tv) noexcept nogil:
    """Apply a fill of ``signed_qty`` at ``price`` ticks to a position and its cost; False past 64 bits.

    Average cost in micro-units: a closing fill takes its share of the cost
    (truncated to the micro-unit), so realized P&L (``*realized``, the fill's)
    is exact to the micro-unit and the cost left is what the rest of the
    position carries. On False the outputs are not usable (the fill is refused).
    """
    cdef i64 closing, removed, rest, amount
    if pos[0] == 0 or sign(signed_qty) == sign(pos[0]):
        return not (money_overflows(signed_qty, price, tv, &amount) or add_overflows(pos[0], signed_qty, pos)
                    or add_overflows(cost[0], amount, cost))
    closing = min(iabs(signed_qty), iabs(pos[0]))
    removed = tdiv_mul(cost[0], closing, iabs(pos[0]))         # truncated toward zero; |removed| <= |cost|
    if money_overflows(sign(pos[0]) * closing, price, tv, &amount) or sub_overflows(amount, removed, realized):
        return False
    cost[0] -= removed
    pos[0] += sign(signed_qty) * closing
    rest = iabs(signed_qty) - closing
    if rest > 0:
        pos[0] = sign(signed_qty) * rest
        if money_overflows(pos[0], price, tv, cost):
            return False
    return True


cdef inline i64 _unrealized(i64 pos, i64 cost, i64 ref, i64 tv) noexcept nogil:
    # ``cost`` is in micro-units; kept totals are within CAPACITY, so this cannot wrap.
    return pos * ref * tv - cost if ref > 0 else 0


cdef inline bint _revalue_node(Node_t* nd, Slot_t* slot, i64 old, i64 ref, i64 tv) noexcept nogil:
    """Move a holder's node totals from reference ``old`` to ``ref``; False (nothing written) past CAPACITY.

    64-bit arithmetic with the processor's overflow flag: every kept total is
    within CAPACITY, so a step that does not overflow is exact, and one that
    does is past CAPACITY (the mark is refused). Between two references the
    change is one product, ``pos * (ref - old) * tv``, for the long or short
    side and for the unrealized P&L alike; from or to no reference, where
    unrealized P&L starts or stops counting, the values are taken whole.
    """
    cdef i64 delta, value, was, long_after, short_after, unreal_after, long_mask
    if old > 0 and ref > 0:
        # |delta| <= the larger of the two values (same sign): an overflow means the new one is past 2^63.
        # Masks, not branches: position signs are unpredictable across holders.
        long_mask = -<i64>(slot.pos > 0)
        if (money_overflows(slot.pos, ref - old, tv, &delta)
                or add_overflows(nd.long_notional, delta & long_mask, &long_after)
                or sub_overflows(nd.short_notional, delta & ~long_mask, &short_after)
                or add_overflows(nd.unrealized, delta, &unreal_after)):
            return False
    else:
        was = slot.pos * old * tv            # a kept value: within CAPACITY
        if (money_overflows(slot.pos, ref, tv, &value)
                or add_overflows(nd.long_notional - positive_part(was), positive_part(value), &long_after)
                or sub_overflows(nd.short_notional + (was - positive_part(was)), value - positive_part(value),
                                 &short_after)
                or sub_overflows(value, slot.cost, &value)
                or add_overflows(nd.unrealized - (was - slot.cost if old > 0 else 0), value if ref > 0 else 0,
                                 &unreal_after)):
            return False
    if not (within(long_after) and within(short_after) and pnl_within(unreal_after)
            and gross_within(long_after, short_after, nd.wbuy_notional, nd.wsell_notional)):
        return False
    nd.long_notional, nd.short_notional, nd.unrealized = long_after, short_after, unreal_after
    return True


cdef inline bint _shift_node(Node_t* nd, i64 pos, i64 delta) noexcept nogil:
    """Move a holder's node totals by ``delta``, its value's change; False (nothing written) past CAPACITY.

    The caller has proven ``|delta| < CAPACITY``: with every kept total within
    CAPACITY, no sum below leaves int64, so they need no overflow flag.
    """
    cdef i64 long_mask = -<i64>(pos > 0)       # a mask, not a branch: position signs are unpredictable
    cdef i64 long_after = nd.long_notional + (delta & long_mask)
    cdef i64 short_after = nd.short_notional - (delta & ~long_mask)
    cdef i64 unreal_after = nd.unrealized + delta
    if not (within(long_after) and within(short_after) and pnl_within(unreal_after)
            and gross_within(long_after, short_after, nd.wbuy_notional, nd.wsell_notional)):
        return False
    nd.long_notional, nd.short_notional, nd.unrealized = long_after, short_after, unreal_after
    return True


cdef inline size_t _revalue_holders(Node_t* nodes, Slot_t* slots, const i32* rows, size_t n,
                                    i64 old, i64 ref, i64 tv, i64* bound) noexcept nogil:
    """Revalue the holders ``rows[:n]`` of a symbol from reference ``old`` to ``ref``.

    Returns ``n``, or the index of the first holder whose totals would pass
    CAPACITY (those before it moved, it and those after did not). ``*bound``
    is at least every holder's |position|: when ``bound * |ref - old| * tv``
    is below CAPACITY, one multiplication proves that no holder's change can
    overflow, and each holder costs one unchecked product; otherwise every
    step is checked (_revalue_node), and the bound is tightened to the
    largest |position| seen.
    """
    cdef i64 dtv, span, largest = 0
    cdef size_t j
    cdef Slot_t* slot
    if old > 0 and not money_overflows(bound[0], iabs(ref - old), tv, &span) and span < CAPACITY:
        dtv = (ref - old) * tv if bound[0] > 0 else 0      # |dtv| <= span once a holder has a position
        for j in range(n):
            slot = &slots[rows[j]]
            if slot.pos != 0 and not _shift_node(&nodes[slot.node], slot.pos, slot.pos * dtv):
                return j
        return n
    for j in range(n):
        slot = &slots[rows[j]]
        if (slot.pos != 0 or slot.cost != 0) and not _revalue_node(&nodes[slot.node], slot, old, ref, tv):
            return j
        largest = max(largest, iabs(slot.pos))
    bound[0] = largest
    return n


cdef inline void _record_event(State* st, i64 now, i32 node, uint8_t reason, i64 value, i64 limit) noexcept nogil:
    """Keep a breach for the caller to read (``events()``)."""
    cdef Event_t event
    memset(&event, 0, sizeof(event))
    event.time, event.node, event.symbol, event.reason = now, node, -1, reason
    event.value, event.limit = value, limit
    st.events.push_back(event)


cdef inline void _after_pnl_change(State* st, i32 n, i64 now) noexcept nogil:
    """Switch a node to REDUCING when its daily P&L is below its loss limit."""
    cdef Node_t* nd = &st.nodes[n]
    cdef i64 lim = nd.limits.max_daily_loss, pnl
    cdef i128 wide
    if lim == INT64_MAX or nd.state != TS.ACTIVE:
        return
    # Three terms: in 64 bits with the overflow flag, in 128 only when that overflows.
    if add_overflows(nd.realized, nd.unrealized, &pnl) or sub_overflows(pnl, nd.sod_pnl, &pnl):
        wide = <i128>nd.realized + nd.unrealized - nd.sod_pnl
        pnl = INT64_MIN if wide < INT64_MIN else INT64_MAX if wide > INT64_MAX else <i64>wide
    if pnl < -lim:                                              # 0 <= lim <= MAX_MONEY
        nd.state = TS.REDUCING
        nd.state_cause = R.DAILY_LOSS_LIMIT
        _record_event(st, now, n, R.DAILY_LOSS_LIMIT, INT64_MAX if pnl == INT64_MIN else -pnl, lim)


cdef inline bint _apply_fill(State* st, i32 leaf_slot, i64 signed_qty, i64 price, i64 released, i64 now) noexcept nogil:
    """Apply a fill to the leaf position and carry the change up the tree.

    Every new total is computed before anything is written, in 64 bits with
    the processor's overflow flag (kept totals are within CAPACITY, so a step
    without overflow is exact): when one would pass CAPACITY the fill is
    refused whole (False). ``released`` is the working notional this fill
    took off the path first (a fill of a working order): it no longer
    counts in the gross.
    """
    cdef Slot_t* slot = &st.slots[leaf_slot]
    cdef Instrument_t* ins = &st.instruments[slot.symbol]
    cdef i64 tv = ins.tick_value, ref = ins.ref, fills
    cdef i64 pos = slot.pos, cost = slot.cost, realized = 0, dpos, dcost
    cdef i64 pos_after, cost_after, long_after, short_after, unreal_after, real_after, slot_real, value
    cdef i64 was, short_value
    cdef i64 new_long[MAX_DEPTH]
    cdef i64 new_short[MAX_DEPTH]
    cdef i64 new_unreal[MAX_DEPTH]
    cdef i32 s, k
    cdef Node_t* nd
    cdef Node_t* leaf_node = &st.nodes[slot.node]
    cdef i32 ins_sym = slot.symbol
    cdef i64 bound = st.pos_bound[ins_sym]
    if not _fill_position(&pos, &cost, &realized, signed_qty, price, tv):
        return False
    dpos = pos - slot.pos                   # both within 2^62 + 10^12: no overflow
    if sub_overflows(cost, slot.cost, &dcost):
        return False
    s, k = leaf_slot, 0
    while s >= 0:
        slot = &st.slots[s]
        nd = &st.nodes[slot.node]
        # One product each for the old and the new value: its sign is the side
        # (long: its positive part; short: the positive part of its negation).
        was = slot.pos * ref * tv           # a kept value: within CAPACITY
        if (add_overflows(slot.pos, dpos, &pos_after) or add_overflows(slot.cost, dcost, &cost_after)
                or add_overflows(st.realized[s], realized, &slot_real)
                or add_overflows(nd.realized, realized, &real_after)
                or money_overflows(pos_after, ref, tv, &value)
                or add_overflows(nd.long_notional - positive_part(was), positive_part(value), &long_after)
                or sub_overflows(positive_part(value), value, &short_value)
                or add_overflows(nd.short_notional - (positive_part(was) - was), short_value, &short_after)
                or sub_overflows(value, cost_after, &value)
                or add_overflows(nd.unrealized - (was - slot.cost if ref > 0 else 0),
                                 value if ref > 0 else 0, &unreal_after)):
            return False
        if not (within(pos_after) and within(cost_after) and pnl_within(slot_real)
                and within(long_after) and within(short_after) and pnl_within(unreal_after)
                and pnl_within(real_after)
                and gross_within(long_after, short_after, nd.wbuy_notional - (released if signed_qty > 0 else 0),
                                 nd.wsell_notional - (released if signed_qty < 0 else 0))):
            return False
        new_long[k], new_short[k], new_unreal[k] = long_after, short_after, unreal_after
        s, k = slot.parent_slot, k + 1
    leaf_node.active = 1
    s, k = leaf_slot, 0
    while s >= 0:
        slot = &st.slots[s]
        nd = &st.nodes[slot.node]
        slot.pos += dpos
        slot.cost += dcost
        st.realized[s] += realized
        nd.long_notional, nd.short_notional, nd.unrealized = new_long[k], new_short[k], new_unreal[k]
        nd.realized += realized
        bound = max(bound, iabs(slot.pos))
        s, k = slot.parent_slot, k + 1
    st.pos_bound[ins_sym] = bound
    # The fill throttle and the daily loss, node by node from the account up.
    for k in range(leaf_node.depth):
        s = leaf_node.path[k]
        nd = &st.nodes[s]
        if nd.limits.fill_count >= 0:
            _window(st, s, W_FILL).push(now)
            fills = _window(st, s, W_FILL).count(now, nd.limits.fill_window)
            if fills > nd.limits.fill_count and nd.state != TS.HALTED:
                nd.state = TS.HALTED
                nd.state_cause = R.EXECUTION_THROTTLE
                _record_event(st, now, s, R.EXECUTION_THROTTLE, fills, nd.limits.fill_count)
        _after_pnl_change(st, s, now)
    return True


cdef inline bint _set_reference(State* st, i32 sym, i64 ref, i64 now) noexcept nogil:
    """Move a symbol's reference and revalue every holder (O(holders)).

    Returns False, with nothing changed, when a holder's totals would pass CAPACITY.
    """
    cdef Instrument_t* ins = &st.instruments[sym]
    cdef i64 old = ins.ref
    cdef const i32* rows = st.symbol_slots[sym].data()
    cdef size_t n = st.symbol_slots[sym].size(), moved, j
    cdef Slot_t* slots = st.slots.data()
    cdef Slot_t* slot
    if old != ref:
        moved = _revalue_holders(st.nodes.data(), slots, rows, n, old, ref, ins.tick_value,
                                 &st.pos_bound[sym])
        if moved < n:
            # Back to the old reference: those totals were kept, so they fit.
            for j in range(moved):
                slot = &slots[rows[j]]
                if slot.pos != 0 or slot.cost != 0:
                    _revalue_node(&st.nodes[slot.node], slot, ref, old, ins.tick_value)
            return False
    ins.ref = ref
    ins.ref_time = now
    if old != ref:
        for j in range(n):
            slot = &slots[rows[j]]
            # The daily loss of each node with a position in the symbol, and on its first mark
            # also of a node netting to flat (its cost becomes P&L once there is a reference);
            # later marks leave a flat node's P&L where it was.
            if slot.pos != 0 or (old <= 0 and slot.cost != 0):
                _after_pnl_change(st, slot.node, now)
    return True


cdef inline Py_ssize_t _set_references(State* st, const i32* sids, const double* prices, Py_ssize_t n, i64 now,
                                       Py_ssize_t* refused) noexcept nogil:
    """Move many symbols' references (``_set_reference`` row by row) once every row is valid.

    Returns the first row with an unknown symbol or a price that is not a
    mark (nothing applied), else -1; ``*refused`` is the first row that
    would have passed CAPACITY (not applied, the others are), else -1.
    """
    cdef Py_ssize_t i
    cdef i32 nsym = <i32>st.instruments.size()
    refused[0] = -1
    for i in range(n):
        if sids[i] < 0 or sids[i] >= nsym or mark_ticks(prices[i], st.instruments[sids[i]].tick_size) < 0:
            return i
    for i in range(n):
        if (not _set_reference(st, sids[i], mark_ticks(prices[i], st.instruments[sids[i]].tick_size), now)
                and refused[0] < 0):
            refused[0] = i
    return -1
