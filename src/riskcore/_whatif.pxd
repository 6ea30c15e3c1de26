# What-if batches (check_batch): a batch books its orders as it goes, so that
# order i is checked as if the accepted ones before it were working, and at
# its end puts back every slot row and node it changed, from what it saved
# before their first change: one write per distinct row, not a take-back per order.
#
# Functions over the engine's tables, inline and nogil: booking and the batch
# loop call them directly, with no call through the engine's method table.
from libcpp.vector cimport vector

from riskcore._types cimport i32, Node_t, Slot_t, SavedRow, SavedNode
from riskcore.tables cimport Window, prefetch
from riskcore._throttle cimport W_NEW, _window


cdef inline void _save_row(Slot_t* slots, i32 s, vector[SavedRow]* saved) noexcept nogil:
    """Keep a slot row's working orders before the batch first changes them."""
    cdef Slot_t* slot = &slots[s]
    if not slot.saved:
        slot.saved = 1
        saved.push_back(SavedRow(slot=s, wbuy=slot.wbuy, wsell=slot.wsell,
                                 best_buy=slot.best_buy, best_sell=slot.best_sell))


cdef inline SavedNode* _save_node(Node_t* nodes, i32 n, vector[SavedNode]* saved) noexcept nogil:
    """Keep a node's working totals before the batch first changes them; return the record."""
    cdef Node_t* nd = &nodes[n]
    if nd.saved < 0:
        nd.saved = <i32>saved.size()
        saved.push_back(SavedNode(node=n, wbuy_notional=nd.wbuy_notional, wsell_notional=nd.wsell_notional,
                                  open_orders=nd.open_orders, pushed=0))
    return &saved.data()[nd.saved]


cdef inline void _restore_rows(Slot_t* slots, vector[SavedRow]* saved, size_t lookahead) noexcept nogil:
    """Put back every saved slot row, loading the row ``lookahead`` ahead meanwhile; forget them."""
    cdef size_t j, rows = saved.size()
    cdef SavedRow* row
    cdef Slot_t* slot
    for j in range(rows):
        if j + lookahead < rows:
            prefetch(&slots[saved.data()[j + lookahead].slot])
        row = &saved.data()[j]
        slot = &slots[row.slot]
        slot.wbuy, slot.wsell, slot.best_buy, slot.best_sell = row.wbuy, row.wsell, row.best_buy, row.best_sell
        slot.saved = 0
    saved.clear()


cdef inline void _restore_nodes(Node_t* nodes, Window* windows, vector[SavedNode]* saved) noexcept nogil:
    """Put back every saved node's working totals and new-order window; forget them."""
    cdef size_t j
    cdef SavedNode* record
    cdef Node_t* nd
    for j in range(saved.size()):
        record = &saved.data()[j]
        nd = &nodes[record.node]
        nd.wbuy_notional, nd.wsell_notional, nd.open_orders = (
            record.wbuy_notional, record.wsell_notional, record.open_orders)
        nd.saved = -1
        _window(windows, record.node, W_NEW).unpush(record.pushed)
    saved.clear()
