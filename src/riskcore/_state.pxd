# The engine's tables as one struct (state.h): RiskEngine owns one by value,
# and the kernel's inline functions take a pointer to it. Here too the lookups
# every module shares: a (node, symbol) slot, created on first use, and an
# order's row.
from libc.stdint cimport uint8_t
from libc.string cimport memset
from libcpp cimport bool as cbool
from libcpp.deque cimport deque
from libcpp.map cimport map as cmap
from libcpp.utility cimport pair
from libcpp.vector cimport vector

from riskcore._types cimport (
    i64, i32, INT64_MAX, INT64_MIN, Instrument_t, Node_t, Slot_t, Order_t, Event_t, PositionLimit_t, PendingRun, SavedRow, SavedNode,
    SlotSum,
)
from riskcore._types cimport OrderStatus as OS
from riskcore.tables cimport Levels, OrderIndex, SlotIndex, Window

cdef extern from "state.h" namespace "riskcore" nogil:
    # An order's content for the duplicate guard: ((account << 32 | symbol, 2 * quantity + is_buy), price key).
    ctypedef pair[pair[i64, i64], i64] DupKey

    cdef cppclass State:
        vector[Instrument_t] instruments
        vector[Node_t] nodes
        vector[uint8_t] path_allowlist
        vector[Slot_t] slots
        vector[i64] realized
        vector[PositionLimit_t] position_limits
        SlotIndex slot_index
        vector[vector[i32]] symbol_slots
        vector[i64] pos_bound
        vector[Order_t] orders
        OrderIndex order_index
        vector[Window] windows
        vector[Levels] rest_buy
        vector[Levels] rest_sell
        cmap[DupKey, i64] dup_last
        deque[pair[i64, DupKey]] dup_expiry
        i64 dup_window
        vector[Event_t] events
        cbool what_if
        vector[PendingRun] pending
        vector[i32] order_next
        vector[SavedRow] saved_rows
        vector[SavedNode] saved_nodes
        vector[DupKey] batch_dups
        vector[SlotSum] sums


cdef inline i32 _slot_chain(State* st, i32 node, i32 symbol) noexcept nogil:
    """The (node, symbol) slot, creating it and its ancestors' on first use."""
    cdef i32 sid = st.slot_index.find(node, symbol), parent_slot
    cdef Slot_t slot
    if sid >= 0:
        return sid
    parent_slot = -1
    if st.nodes[node].parent >= 0:
        parent_slot = _slot_chain(st, st.nodes[node].parent, symbol)
    memset(&slot, 0, sizeof(slot))
    slot.node = node
    slot.symbol = symbol
    slot.parent_slot = parent_slot
    slot.best_buy = slot.best_sell = INT64_MIN
    sid = <i32>st.slots.size()
    st.slots.push_back(slot)
    st.realized.push_back(0)
    st.position_limits.push_back(PositionLimit_t(max_long=INT64_MAX, max_short=INT64_MAX))
    st.slot_index.add(node, symbol, sid)
    st.symbol_slots[symbol].push_back(sid)
    st.rest_buy.push_back(Levels())
    st.rest_sell.push_back(Levels())
    st.pending.push_back(PendingRun(newest=-1, count=0))
    st.pending.push_back(PendingRun(newest=-1, count=0))
    return sid


cdef inline void _mark_allowlists(State* st) noexcept nogil:
    """Flag the nodes whose checks must look at allow-lists (most have none on their path)."""
    cdef size_t j
    cdef i32 k
    st.path_allowlist.assign(st.nodes.size(), 0)
    for j in range(st.nodes.size()):
        for k in range(st.nodes[j].depth):
            if st.nodes[st.nodes[j].path[k]].has_allowlist:
                st.path_allowlist[j] = 1


cdef inline i32 _order_row(State* st, i64 order_id) noexcept nogil:
    """Row of an order in the order table, -1 when unknown or forgotten."""
    cdef i32* found = st.order_index.find(order_id)
    return -1 if found == NULL else found[0]


cdef inline i32 _working(State* st, i64 order_id) noexcept nogil:
    cdef i32 row = _order_row(st, order_id)
    if row < 0 or st.orders[row].status != OS.WORKING:
        return -1
    return row
