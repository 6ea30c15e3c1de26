from libc.stdint cimport uint8_t, int8_t

from riskcore._types cimport i64, i32, CheckResult
from riskcore._state cimport State
from riskcore.clock cimport Clock
from riskcore.decision cimport Decision


cdef class RiskEngine:
    cdef Clock _clock
    cdef State _s                                      # the tables (state.h)
    cdef dict _account_ids
    cdef list _account_names
    cdef dict _symbol_ids
    cdef list _symbol_names
    cdef set _exec_ids                                 # today's execution ids
    cdef set _exec_ids_before                          # the previous day's

    # Inline: the order and fill paths call them directly, not through the method table.
    cdef inline i32 _lookup_account(self, object account) except -2
    cdef inline i32 _lookup_symbol(self, object symbol) except -2
    cdef inline i64 _fill_price(self, i32 sym, object price) except -1
    cdef inline bint _seen_exec_id(self, object exec_id) except -1
    cdef inline bint _finish(self, i64 order_id, int8_t status) except -1
    cdef inline Decision _decision(self, uint8_t code, CheckResult* r, object quantity=*)
