# The engine's tables as one struct (state.h): RiskEngine owns one by value,
# and the kernel's inline functions take a pointer to it.
from libc.stdint cimport uint8_t
from libcpp cimport bool as cbool
from libcpp.deque cimport deque
from libcpp.map cimport map as cmap
from libcpp.utility cimport pair
from libcpp.vector cimport vector

from riskcore._types cimport (
    i64, i32, Instrument_t, Node_t, Slot_t, Order_t, Event_t, PositionLimit_t, PendingRun, SavedRow, SavedNode,
    SlotSum,
)
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
