# What-if batches (check_batch): a batch books its orders as it goes, so that
# order i is checked as if the accepted ones before it were working, and at
# its end puts back every slot row and node it changed, from what it saved
# before their first change: one write per distinct row, not a take-back per order.
#
# Functions over the engine's state, inline and nogil: booking and the batch
# loop call them directly, with no call through the engine's method table.
from riskcore._types cimport i32, Node_t, Slot_t, SavedRow, SavedNode
from riskcore._state cimport State
from riskcore.tables cimport prefetch
from riskcore._throttle cimport W_NEW, _window, _forget_orders


cdef inline void _begin_what_if(State* st) noexcept nogil:
    """Start a what-if batch with nothing saved."""
    st.saved_rows.clear()
    st.saved_nodes.clear()
    st.batch_dups.clear()
    st.what_if = True


cdef inline void _save_row(State* st, i32 s) noexcept nogil:
    """Keep a slot row's working orders before the batch first changes them."""
    cdef Slot_t* slot = &st.slots[s]
    if not slot.saved:
        slot.saved = 1
        st.saved_rows.push_back(SavedRow(slot=s, wbuy=slot.wbuy, wsell=slot.wsell,
                                         best_buy=slot.best_buy, best_sell=slot.best_sell))


cdef inline SavedNode* _save_node(State* st, i32 n) noexcept nogil:
    """Keep a node's working totals before the batch first changes them; return the record."""
    cdef Node_t* nd = &st.nodes[n]
    if nd.saved < 0:
        nd.saved = <i32>st.saved_nodes.size()
        st.saved_nodes.push_back(SavedNode(node=n, wbuy_notional=nd.wbuy_notional, wsell_notional=nd.wsell_notional,
                                           open_orders=nd.open_orders, pushed=0))
    return &st.saved_nodes.data()[nd.saved]


cdef inline void _restore_rows(State* st, size_t lookahead) noexcept nogil:
    """Put back every saved slot row, loading the row ``lookahead`` ahead meanwhile; forget them."""
    cdef size_t j, rows = st.saved_rows.size()
    cdef Slot_t* slots = st.slots.data()
    cdef SavedRow* row
    cdef Slot_t* slot
    for j in range(rows):
        if j + lookahead < rows:
            prefetch(&slots[st.saved_rows.data()[j + lookahead].slot])
        row = &st.saved_rows.data()[j]
        slot = &slots[row.slot]
        slot.wbuy, slot.wsell, slot.best_buy, slot.best_sell = row.wbuy, row.wsell, row.best_buy, row.best_sell
        slot.saved = 0
    st.saved_rows.clear()


cdef inline void _restore_nodes(State* st) noexcept nogil:
    """Put back every saved node's working totals and new-order window; forget them."""
    cdef size_t j
    cdef SavedNode* record
    cdef Node_t* nd
    for j in range(st.saved_nodes.size()):
        record = &st.saved_nodes.data()[j]
        nd = &st.nodes[record.node]
        nd.wbuy_notional, nd.wsell_notional, nd.open_orders = (
            record.wbuy_notional, record.wsell_notional, record.open_orders)
        nd.saved = -1
        _window(st, record.node, W_NEW).unpush(record.pushed)
    st.saved_nodes.clear()


cdef inline void _take_back(State* st, size_t lookahead) noexcept nogil:
    """End a what-if batch: every row and node it changed goes back to what it saved.

    One write per distinct row, not one take-back per order: a batch of
    1M orders over 100k positions restores at most the 100k rows it touched
    (loading the row ``lookahead`` ahead meanwhile).
    """
    _restore_rows(st, lookahead)
    _restore_nodes(st)
    _forget_orders(st)
    st.what_if = False
