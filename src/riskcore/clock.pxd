from riskcore._types cimport i64


cdef class Clock:
    cdef i64 now(self) noexcept


cdef class SystemClock(Clock):
    pass


cdef class ManualClock(Clock):
    cdef public i64 time_ns
