# The pre-trade check: the model's twelve steps, in order, for one order.
#
# One inline nogil function over the engine's state: check, submit, modify and
# the batch loops call it directly, and the C compiler inlines it into each,
# with no call through the engine's method table. What it finds goes to a
# CheckResult the caller owns (a rejection's node, value and limit, or an
# acceptance's terms for booking): nothing is parked on the engine. The rules
# are in checks.pxd; the model is the "Risk model" section of the README.
from libc.math cimport isfinite

from riskcore._types cimport (
    i64, i32, i128, uint8_t, INT64_MAX, INT64_MIN, Instrument_t, Node_t, Slot_t, Order_t, CheckResult,
)
from riskcore._types cimport Reason as R
from riskcore._types cimport TradingState as TS
from riskcore._state cimport State, DupKey, _slot_chain
from riskcore.checks cimport reduces_position, collar_band, worst_position, ratio
from riskcore.fixedpoint cimport sat_mul3, price_to_ticks, positive_part
from riskcore.bounds cimport MAX_QUANTITY, CAPACITY
from riskcore._throttle cimport W_NEW, W_MODIFY, _window, _dup_key, _is_duplicate
from riskcore._booking cimport _price_key, _level_key


cdef inline uint8_t _evaluate(State* st, i32 acct, i32 sym, i64 side, i64 q, double price, bint market,
                              i64 now, i32 oidx, bint check_id, i64 order_id, bint measure,
                              i32 leaf_slot, CheckResult* r) noexcept nogil:
    """Run the checks in the model's order; 0 (OK) or the first failing reason.

    ``oidx >= 0`` evaluates a modify of that order. ``leaf_slot`` is the
    (account, symbol) slot when the caller has looked it up, else -1. ``measure`` computes
    the highest limit utilisation (``r.util``): single decisions report it,
    batches return only codes and skip its divisions. What it found goes to
    ``r``: a rejection's node, value and limit, or an acceptance's terms for
    ``_reserve``. Changes nothing but the pruning of expired window entries
    (and creating empty slots).
    """
    cdef Instrument_t* ins
    cdef Node_t* node
    cdef Node_t* nd
    cdef Slot_t* slot
    cdef Slot_t* leaf
    cdef Order_t* order
    cdef i64 p, ref, tv, notional, dq, dn, v, lim, band, best, old_q = 0, old_n = 0, count, length
    cdef i32 s, k, n
    cdef bint stale, has_ref, is_modify = oidx >= 0, reducing
    cdef double util = 0.0
    cdef DupKey dkey
    r.node = -1
    r.value = 0.0
    r.limit = 0.0
    r.util = 0.0

    # 1. malformed
    if side != 1 and side != -1:
        return R.INVALID_SIDE
    if q <= 0 or q > MAX_QUANTITY:
        r.value = <double>q
        return R.INVALID_QUANTITY
    if not market and not (isfinite(price) and price > 0):
        r.value = price
        return R.INVALID_PRICE
    # 2. order id
    if check_id and st.order_index.contains(order_id):
        r.value = <double>order_id
        return R.DUPLICATE_ORDER_ID
    # 3. symbol and account
    if sym < 0 or sym >= <i32>st.instruments.size():
        return R.UNKNOWN_SYMBOL
    ins = &st.instruments[sym]
    if not ins.tradable:
        return R.SYMBOL_RESTRICTED
    if acct < 0 or acct >= <i32>st.nodes.size():
        return R.UNKNOWN_ACCOUNT
    node = &st.nodes[acct]
    if node.n_children > 0 or acct == 0:
        r.node = acct
        return R.ACCOUNT_NOT_TRADABLE
    if leaf_slot < 0:
        leaf_slot = _slot_chain(st, acct, sym)
    s = leaf_slot if st.path_allowlist[acct] else -1
    while s >= 0:
        slot = &st.slots[s]
        if st.nodes[slot.node].has_allowlist and not slot.permitted:
            r.node = slot.node
            return R.SYMBOL_NOT_PERMITTED
        s = slot.parent_slot
    # 4. grids
    tv = ins.tick_value
    if ins.lot_size != 1 and q % ins.lot_size != 0:     # (a division costs more than the test)
        r.value = <double>q
        r.limit = <double>ins.lot_size
        return R.LOT_SIZE
    p = 0
    if not market:
        p = price_to_ticks(price, ins.tick_size)
        if p < 0:
            r.value = price
            r.limit = ins.tick_size
            return R.TICK_SIZE
    # 5. trading state: the symbol, then the path from the account up
    leaf = &st.slots[leaf_slot]
    if is_modify:
        order = &st.orders[oidx]
        old_q = order.remaining
        old_n = order.remaining * order.price * tv
    dq = q - old_q
    reducing = (is_modify and dq <= 0) or reduces_position(leaf.pos, leaf.wbuy, leaf.wsell, side, dq)
    if ins.state == TS.HALTED:
        return R.TRADING_HALTED
    if ins.state == TS.REDUCING and not reducing:
        return R.REDUCE_ONLY
    for k in range(node.depth):
        n = node.path[k]
        nd = &st.nodes[n]
        if nd.state == TS.HALTED:
            r.node = n
            return R.EXECUTION_THROTTLE if nd.state_cause == R.EXECUTION_THROTTLE else R.TRADING_HALTED
        if nd.state == TS.REDUCING and not reducing:
            r.node = n
            return R.DAILY_LOSS_LIMIT if nd.state_cause == R.DAILY_LOSS_LIMIT else R.REDUCE_ONLY
    # 6. price: reference, band, collar. A modify that keeps its price (a limit
    # order's, or a market order's booked one) and adds no quantity only lowers
    # risk: no reference or band can stop it.
    ref = ins.ref
    has_ref = ref > 0
    stale = has_ref and ins.max_ref_age > 0 and now - ins.ref_time > ins.max_ref_age
    if is_modify and dq <= 0 and market and order.market:
        p = order.price
    elif not (is_modify and dq <= 0 and not market and p == order.price):
        if (market or ins.require_ref) and not has_ref:
            return R.NO_REFERENCE_PRICE
        if ins.require_ref and stale:
            r.value = (now - ins.ref_time) / 1e9
            r.limit = ins.max_ref_age / 1e9
            return R.STALE_REFERENCE_PRICE
        if market:
            p = ref
        if p < ins.min_price or p > ins.max_price:
            r.value = p * ins.tick_size
            r.limit = (ins.min_price if p < ins.min_price else ins.max_price) * ins.tick_size
            return R.PRICE_OUT_OF_RANGE
        if not market and has_ref:
            if side > 0:
                band = collar_band(ref, ins.collar_bps_buy, ins.collar_ticks_buy)
                if band >= 0 and p > ref + band:
                    r.value = p * ins.tick_size
                    r.limit = (ref + band) * ins.tick_size
                    return R.PRICE_COLLAR
            else:
                band = collar_band(ref, ins.collar_bps_sell, ins.collar_ticks_sell)
                if band >= 0 and p < ref - band:
                    r.value = p * ins.tick_size
                    r.limit = (ref - band) * ins.tick_size
                    return R.PRICE_COLLAR
    notional = sat_mul3(q, p, tv)
    if notional > CAPACITY:
        r.value = <double>notional / 1e6
        return R.NOTIONAL_OVERFLOW
    dn = notional - old_n
    # Keep every node's gross notional within range, so no aggregate can wrap.
    # Five terms below 2**59 cannot pass the cap (2**62): the 128-bit sum is
    # only needed when one of them is that large.
    for k in range(node.depth):
        nd = &st.nodes[node.path[k]]
        if ((nd.long_notional | nd.short_notional | nd.wbuy_notional | nd.wsell_notional
                | positive_part(dn)) >> 59 != 0
                and <i128>nd.long_notional + nd.short_notional + nd.wbuy_notional + nd.wsell_notional + dn
                > <i128>CAPACITY):
            r.node = node.path[k]
            r.value = <double>notional / 1e6
            return R.NOTIONAL_OVERFLOW
    # 7. order size along the path
    for k in range(node.depth):
        n = node.path[k]
        nd = &st.nodes[n]
        lim = nd.limits.max_order_qty
        if q > lim:
            r.node, r.value, r.limit = n, <double>q, <double>lim
            return R.MAX_ORDER_QUANTITY
        if measure:
            util = max(util, ratio(q, lim))
        lim = nd.limits.max_order_notional
        if notional > lim:
            r.node, r.value, r.limit = n, notional / 1e6, lim / 1e6
            return R.MAX_ORDER_NOTIONAL
        if measure:
            util = max(util, ratio(notional, lim))
    # 8. worst-case position per node in this symbol
    s = leaf_slot
    for k in range(node.depth):
        slot = &st.slots[s]
        v = worst_position(slot.pos, slot.wbuy, slot.wsell, side, dq)
        lim = INT64_MAX
        if slot.limited:
            lim = st.position_limits[s].max_long if side > 0 else st.position_limits[s].max_short
        if dq > 0 and v > lim:
            r.node, r.value, r.limit = slot.node, <double>v, <double>lim
            return R.POSITION_LIMIT
        if measure:
            util = max(util, ratio(v, lim))
        s = slot.parent_slot
    # 9. gross and net exposure along the path
    for k in range(node.depth):
        n = node.path[k]
        nd = &st.nodes[n]
        v = nd.long_notional + nd.short_notional + nd.wbuy_notional + nd.wsell_notional + dn
        lim = nd.limits.max_gross
        if dn > 0 and v > lim:
            r.node, r.value, r.limit = n, v / 1e6, lim / 1e6
            return R.MAX_GROSS_NOTIONAL
        if measure:
            util = max(util, ratio(v, lim))
        if side > 0:
            v = nd.long_notional - nd.short_notional + nd.wbuy_notional + dn
        else:
            v = nd.short_notional - nd.long_notional + nd.wsell_notional + dn
        lim = nd.limits.max_net
        if dn > 0 and v > lim:
            r.node, r.value, r.limit = n, v / 1e6, lim / 1e6
            return R.MAX_NET_NOTIONAL
        if measure:
            util = max(util, ratio(v, lim))
    # 10. open orders and message rates
    for k in range(node.depth):
        n = node.path[k]
        nd = &st.nodes[n]
        if not is_modify:
            lim = nd.limits.max_open_orders
            if nd.open_orders + 1 > lim:
                r.node, r.value, r.limit = n, nd.open_orders + 1.0, <double>lim
                return R.MAX_OPEN_ORDERS
            if measure:
                util = max(util, ratio(nd.open_orders + 1, lim))
            count, length = nd.limits.new_rate_count, nd.limits.new_rate_window
            if count >= 0:
                v = _window(st, n, W_NEW).count(now, length)
                if v >= count:
                    r.node, r.value, r.limit = n, <double>v, <double>count
                    return R.ORDER_RATE_LIMIT
        else:
            count, length = nd.limits.modify_rate_count, nd.limits.modify_rate_window
            if count >= 0:
                v = _window(st, n, W_MODIFY).count(now, length)
                if v >= count:
                    r.node, r.value, r.limit = n, <double>v, <double>count
                    return R.MODIFY_RATE_LIMIT
    # 11. duplicate content
    if not is_modify and st.dup_window > 0:
        dkey = _dup_key(acct, sym, side, q, _price_key(side, p, market))
        if _is_duplicate(st, &dkey, now, &v):
            r.value = v / 1e9
            return R.DUPLICATE_ORDER
    # 12. self-match against the account's own working orders (best level kept in the row)
    v = _price_key(side, p, market)
    best = leaf.best_sell if side > 0 else leaf.best_buy
    if best != INT64_MIN:
        best = _level_key(-side, best)
        if (v >= best) if side > 0 else (v <= best):
            r.limit = best * ins.tick_size
            return R.SELF_MATCH
    r.util = util
    r.price = p
    r.notional = notional
    r.slot = leaf_slot
    return R.OK
