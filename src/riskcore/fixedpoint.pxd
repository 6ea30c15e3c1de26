# Exact integer arithmetic helpers used on every hot path.
from libc.math cimport fabs, llround, isfinite
from riskcore._types cimport i64, i128, INT64_MAX
from riskcore.bounds cimport MAX_PRICE_TICKS


cdef inline i64 tdiv_mul(i64 a, i64 b, i64 d) noexcept nogil:
    """a * b / d truncated toward zero, with a 128-bit intermediate."""
    cdef i128 prod = <i128>a * <i128>b
    return <i64>(prod / <i128>d)


cdef extern from *:
    # True when a * b does not fit in *out (GCC/Clang: one multiply and a flag test).
    bint mul_overflows "__builtin_mul_overflow"(i64 a, i64 b, i64* out) nogil
    # True when a + b (a - b) does not fit in *out.
    bint add_overflows "__builtin_add_overflow"(i64 a, i64 b, i64* out) nogil
    bint sub_overflows "__builtin_sub_overflow"(i64 a, i64 b, i64* out) nogil


cdef inline i64 sat_mul3(i64 a, i64 b, i64 c) noexcept nogil:
    """a * b * c for non-negative operands, saturating at INT64_MAX."""
    cdef i64 ab, abc
    if mul_overflows(a, b, &ab) or mul_overflows(ab, c, &abc):
        return INT64_MAX
    return abc


cdef inline i64 round_half_away(double x) noexcept nogil:
    # llround rounds halfway cases away from zero, as the model specifies.
    return llround(x)


cdef inline i64 price_to_ticks(double price, double tick_size) noexcept nogil:
    """Ticks of a price on the grid, or -1 when it is off the grid or absurd."""
    cdef double ratio = price / tick_size
    cdef i64 ticks
    if not (ratio < <double>MAX_PRICE_TICKS):
        return -1
    # Rounds half up: a price half a tick off (the only case where that differs
    # from llround) fails the grid test below either way, and llround is a call.
    ticks = <i64>(ratio + 0.5)
    if ticks <= 0:
        return -1
    if fabs(<double>ticks * tick_size - price) > 1e-9 * (fabs(price) if fabs(price) > 1.0 else 1.0):
        return -1
    return ticks


cdef inline i64 mark_ticks(double price, double tick_size) noexcept nogil:
    """Ticks of a fill price or a mark, rounded half away and to at least one tick; -1 when out of domain.

    Venues fill on the grid, so an off-grid price is rounded, never refused;
    a price that is not finite, not positive or MAX_PRICE_TICKS ticks or more is.
    """
    cdef double ratio
    cdef i64 ticks
    if not (isfinite(price) and price > 0):
        return -1
    ratio = price / tick_size
    if not (ratio < <double>MAX_PRICE_TICKS):
        return -1
    ticks = round_half_away(ratio)
    if ticks >= MAX_PRICE_TICKS:
        return -1
    return ticks if ticks > 0 else 1


cdef inline i64 sign(i64 x) noexcept nogil:
    return (x > 0) - (x < 0)


cdef inline i64 iabs(i64 x) noexcept nogil:
    return -x if x < 0 else x


cdef inline i64 positive_part(i64 x) noexcept nogil:
    """max(x, 0) without a branch: position signs are unpredictable in a book."""
    return x & ~(x >> 63)


cdef inline bint money_overflows(i64 units, i64 ticks, i64 tick_value, i64* out) noexcept nogil:
    """``*out = units * ticks * tick_value``; True (``*out`` unusable) when it does not fit 64 bits."""
    cdef i64 product
    return mul_overflows(units, ticks, &product) or mul_overflows(product, tick_value, out)
