from libc.stdint cimport uint8_t, int8_t
cimport cython

from riskcore._types cimport i64, i32, INT64_MAX, INT64_MIN, CheckResult
from riskcore._state cimport State
from riskcore.clock cimport Clock
from riskcore.decision cimport Decision
from riskcore.tables cimport Levels


cdef class RiskEngine:
    cdef Clock _clock
    cdef State _s                                      # the tables (state.h)
    cdef dict _account_ids
    cdef list _account_names
    cdef dict _symbol_ids
    cdef list _symbol_names
    cdef set _exec_ids                                 # today's execution ids
    cdef set _exec_ids_before                          # the previous day's

    cdef i64 _now(self) noexcept
    cdef i32 _lookup_account(self, object account) except -2
    cdef i32 _lookup_symbol(self, object symbol) except -2
    cdef i32 _add_node(self, str name, i32 parent) except -1
    cdef inline uint8_t _evaluate(self, i32 acct, i32 sym, i64 side, i64 q, double price, bint market,
                           i64 now, i32 oidx, bint check_id, i64 order_id, bint measure,
                           i32 leaf_slot, CheckResult* r) noexcept nogil
    @cython.final
    cdef bint _apply_fill(self, i32 leaf_slot, i64 signed_qty, i64 price, i64 released, i64 now) noexcept nogil
    cdef bint _seen_exec_id(self, object exec_id) except -1
    cdef i64 _fill_price(self, i32 sym, object price) except -1
    cdef bint _finish(self, i64 order_id, int8_t status) except -1
    @cython.final
    cdef bint _set_reference(self, i32 sym, i64 ref, i64 now) noexcept nogil
    cdef int _refuse(self, i32 node, i32 sym, i64 now, str what) except -1
    @cython.final
    cdef inline void _after_pnl_change(self, i32 node, i64 now) noexcept nogil
    cdef void _record_event(self, i64 now, i32 node, uint8_t reason, i64 value, i64 limit) noexcept nogil
    cdef object _fill_aggregates(self, out, dict columns)
    cdef Decision _decision(self, uint8_t code, CheckResult* r, object quantity=*)
