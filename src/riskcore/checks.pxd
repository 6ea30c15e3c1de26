# The pre-trade rules as pure arithmetic on integers: the engine looks the
# numbers up, these decide. Each rule is the README's Risk model, step by step.
from libcpp.deque cimport deque
from libcpp.utility cimport pair

from riskcore._types cimport i64, INT64_MAX

# A sliding window of events, run-length encoded: (time, events at that time).
# Every order of a batch shares one time, so a batch adds one run, not one
# entry per order; ``total`` is the number of events the runs hold.
ctypedef deque[pair[i64, i64]] Runs


cdef inline bint reduces_position(i64 pos, i64 wbuy, i64 wsell, i64 side, i64 dq) noexcept nogil:
    """Reduce-only rule: the worst case on the order's side must not leave zero's side."""
    if side > 0:
        return pos + wbuy + dq <= 0
    return pos - wsell - dq >= 0


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


cdef inline i64 window_count(Runs& window, i64* total, i64 now, i64 length) noexcept nogil:
    """Events in (now - length, now] of a sliding window, dropping the older ones."""
    while not window.empty() and window.front().first <= now - length:
        total[0] -= window.front().second
        window.pop_front()
    return total[0]


cdef inline void window_push(Runs& window, i64* total, i64 now) noexcept nogil:
    cdef pair[i64, i64]* last
    total[0] += 1
    if not window.empty():
        last = &window.back()
        if last.first == now:
            last.second += 1
            return
    window.push_back(pair[i64, i64](now, 1))


cdef inline void window_unpush(Runs& window, i64* total, i64 k) noexcept nogil:
    """Take back the ``k`` newest events (a what-if batch undoing its bookings)."""
    cdef pair[i64, i64]* last
    total[0] -= k
    while k > 0:
        last = &window.back()
        if last.second > k:
            last.second -= k
            return
        k -= last.second
        window.pop_back()


cdef inline double ratio(i64 value, i64 limit) noexcept nogil:
    if limit == INT64_MAX or limit <= 0:
        return 0.0
    return <double>value / <double>limit
