# A fill's arithmetic on a position, positions' values, and the revaluation of their
# holders when a reference moves.
#
# Functions over the engine's tables (nodes and slots), inline and nogil: the
# engine's marks (_set_reference) and fills call them directly, with no call
# through the engine's method table. Money is in micro-units (bounds.pxd).
from riskcore._types cimport i64, i32, Node_t, Slot_t
from riskcore.bounds cimport CAPACITY, within, pnl_within, gross_within
from riskcore.fixedpoint cimport (
    tdiv_mul, sign, positive_part, iabs, add_overflows, sub_overflows, money_overflows,
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
