from libc.stdint cimport uint8_t


cdef class Decision:
    cdef readonly uint8_t code
    cdef readonly double utilisation
    cdef readonly str node
    cdef readonly double value
    cdef readonly double limit


cdef Decision make_decision(uint8_t code, double utilisation, str node, double value, double limit)
