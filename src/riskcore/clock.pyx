"""Injectable clocks: every time-dependent decision reads one of these.

The engine reads a clock through a C call, so neither clock costs a Python
call or an allocation on the check path.
"""
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME

from riskcore._types cimport i64


cdef class Clock:
    """Base class of the kernel's clocks (nanoseconds since the Unix epoch)."""

    cdef i64 now(self) noexcept:
        return 0

    def now_ns(self):
        """Return the current time in nanoseconds."""
        return self.now()


cdef class SystemClock(Clock):
    """Wall-clock time from ``clock_gettime(CLOCK_REALTIME)``."""

    cdef i64 now(self) noexcept:
        cdef timespec ts
        clock_gettime(CLOCK_REALTIME, &ts)
        return <i64>ts.tv_sec * 1_000_000_000 + ts.tv_nsec


cdef class ManualClock(Clock):
    """A clock that only moves when told to, for deterministic tests and replay.

    Parameters
    ----------
    time_ns : int
        The starting time in nanoseconds.
    """

    def __init__(self, i64 time_ns=0):
        self.time_ns = time_ns

    cdef i64 now(self) noexcept:
        return self.time_ns

    def advance(self, seconds):
        """Move the clock forward by ``seconds`` (rounded to whole nanoseconds)."""
        cdef i64 step = round(seconds * 1e9)
        if step < 0:
            raise ValueError(f"seconds must not be negative, got {seconds!r}")
        self.time_ns += step

    def set(self, i64 time_ns):
        """Set the clock to ``time_ns``; it may not move backwards."""
        if time_ns < self.time_ns:
            raise ValueError(f"time_ns {time_ns} is before the clock's {self.time_ns}")
        self.time_ns = time_ns
