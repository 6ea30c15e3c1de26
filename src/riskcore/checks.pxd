# The pre-trade rules as pure arithmetic on integers: the engine looks the
# numbers up, these decide. Each rule is the README's Risk model, step by step.
cimport cython

from riskcore._types cimport i64, INT64_MAX


cdef inline bint reduces_position(i64 pos, i64 wbuy, i64 wsell, i64 side, i64 dq) noexcept nogil:
    """Reduce-only rule: the worst case on the order's side must not leave zero's side."""
    if side > 0:
        return pos + wbuy + dq <= 0
    return pos - wsell - dq >= 0


@cython.cdivision(True)          # ref and bps are never negative: C division, by a multiply
cdef inline i64 collar_band(i64 ref, i64 bps, i64 ticks) noexcept nogil:
    """Width of the collar in ticks (the tighter of bps and ticks), -1 when unset."""
    cdef i64 band = -1
    if bps >= 0:
        band = ref * bps // 10000
    if ticks >= 0 and (band < 0 or ticks < band):
        band = ticks
    return band


cdef inline i64 worst_position(i64 pos, i64 wbuy, i64 wsell, i64 side, i64 dq) noexcept nogil:
    """Worst-case long (buy) or short (sell) quantity with same-side working orders."""
    if side > 0:
        return pos + wbuy + dq
    return -(pos - wsell - dq)


cdef inline double ratio(i64 value, i64 limit) noexcept nogil:
    if limit == INT64_MAX or limit <= 0:
        return 0.0
    return <double>value / <double>limit
