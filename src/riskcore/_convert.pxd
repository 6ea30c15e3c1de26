# Conversions at the Python boundary: the values a caller passes (names or
# ids, numbers of any numeric type, sides as ints or strings) to the integers
# the kernel computes with.
#
# Inline functions: the single-order calls (check, submit, modify, fills) run
# their fast paths (an exact int, float or str) with no call at all. A value
# that is not a number, a name or an id raises TypeError; one that is but is
# out of range converts to the kernel's "invalid" (0 or -1), a rejection.
cimport numpy as cnp
from libc.math cimport isfinite

from riskcore._types cimport i64, i32, INT64_MAX
from riskcore.bounds cimport MAX_QUANTITY


cdef inline i64 _seconds_to_ns(object seconds):
    return round(seconds * 1e9)


cdef inline i64 _money(object value):
    # Limits are given in currency; the engine compares integer micro-units.
    return INT64_MAX if value is None else round(value * 1e6)


cdef inline bint _is_integer(object value):
    # Python and numpy integers, not bools.
    return (isinstance(value, int) or isinstance(value, cnp.integer)) and not isinstance(value, bool)


cdef inline bint _is_number(object value):
    # Python and numpy numbers, not bools.
    return (isinstance(value, (int, float)) or isinstance(value, cnp.number)) and not isinstance(value, bool)


cdef inline i32 _resolve(object key, dict ids, Py_ssize_t count, str what) except -2:
    """Id of a name or of an integer id, -1 when unknown; TypeError for anything else."""
    cdef object found
    if type(key) is str:
        found = ids.get(<str>key)
        return -1 if found is None else <i32>found
    if type(key) is int or _is_integer(key):
        return <i32>key if 0 <= key < count else -1
    raise TypeError(f"{what} must be a name or an id, got {type(key).__name__}")


cdef inline i64 _quantity(object quantity) except? -2:
    """Whole positive quantity, or 0 when the value is not one (a rejection)."""
    cdef double f
    if type(quantity) is int:
        if 0 < quantity <= MAX_QUANTITY:
            return quantity
        return 0
    if not _is_number(quantity):
        raise TypeError(f"quantity must be a number, got {type(quantity).__name__}")
    f = float(quantity)
    if isfinite(f) and 0 < f <= MAX_QUANTITY and f == <double><i64>f:
        return <i64>f
    return 0


cdef inline double _price(object price) except? -2.0:
    if type(price) is float:
        return price
    if not _is_number(price):
        raise TypeError(f"price must be a number or None, got {type(price).__name__}")
    return float(price)


cdef inline i64 _side(object side) except? -2:
    """+1 or -1, 0 for a value that is no side (a rejection); BUY/SELL, buy/sell and B/S as strings."""
    if type(side) is int:
        return side if side == 1 or side == -1 else 0
    if type(side) is str:
        if side == "BUY" or side == "buy" or side == "B":
            return 1
        if side == "SELL" or side == "sell" or side == "S":
            return -1
        return 0
    if _is_integer(side):
        return side if side == 1 or side == -1 else 0
    raise TypeError(f"side must be BUY (1), SELL (-1), 'BUY' or 'SELL', got {side!r}")
