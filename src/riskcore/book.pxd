from libc.stdint cimport int64_t, uint32_t

from riskcore.bookstate cimport BookState, SymbolBook


cdef class Book:
    cdef BookState _state
    cdef bint _busy                  # a feed is running without the GIL: refuse other calls
    cdef dict _names                 # symbol name -> stock locate
    cdef uint32_t _named_indexed     # _state.named when _names was built

    cdef Py_ssize_t _feed(self, object buffer, bint final, int64_t until) except -1
    cdef int _idle(self) except -1
    cdef int _locate(self, object symbol) except -1
    cdef SymbolBook* _book(self, int locate) noexcept
    cdef object _mark(self, int locate)
