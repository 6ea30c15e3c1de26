# The engine's numeric domain: what may enter it and what its totals may hold.
#
# Every input is range-checked at the boundary against these bounds, and every
# change to a kept total is checked against CAPACITY before it is written, so
# no sum the engine keeps can wrap (README "Bounds"):
#
# - A message carries at most MAX_QUANTITY (10^12) units at a price below
#   MAX_PRICE_TICKS (10^15) ticks. Their product can reach 10^27 units x ticks,
#   far past 64 bits, so the bounds alone do not make sums safe: CAPACITY does.
# - An instrument's tick value is at most 10^10 micro-units (10,000 in
#   currency per tick and unit; riskcore.config checks it): no real contract
#   is worth more per tick, and a typo in a multiplier should not pass.
# - CAPACITY is 2^62 micro-units (4.6e12 in account currency). Each money total
#   the engine keeps stays within +-CAPACITY: an order's notional, a node's long,
#   short, working buy and working sell notionals and their sum (gross), its
#   realized and unrealized P&L, and each position's quantity and cost. Two
#   such values add or subtract without leaving int64 (|a +- b| < 2^63).
#   Products and the sums that update a total use the processor's overflow
#   flag (fixedpoint.pxd): a step that does not overflow is exact, one that
#   does is past CAPACITY. An order's gross (four terms) is summed in 128
#   bits, a daily P&L (three) too when 64 overflow. A mark
#   needs no flag when one product proves it safe: the engine keeps, per
#   symbol, a bound on every slot's |position|, and when bound x |move| x tick
#   value is below CAPACITY no holder's change can leave int64
#   (_positions._revalue_holders).
# - An order that would pass CAPACITY is rejected (NOTIONAL_OVERFLOW). A fill or
#   a mark that would take a total past it is refused whole (CapacityError,
#   nothing applied) and the account or symbol goes HALTED with a
#   NOTIONAL_OVERFLOW breach event: its books no longer hold everything the
#   venue did, so nothing more may be approved against them.
from riskcore._types cimport i64, i128

cdef extern from *:
    """
    static const long long RISKCORE_MAX_QUANTITY = 1000000000000LL;
    static const long long RISKCORE_MAX_PRICE_TICKS = 1000000000000000LL;
    static const long long RISKCORE_CAPACITY = 4611686018427387904LL;
    """
    const i64 MAX_QUANTITY "RISKCORE_MAX_QUANTITY"
    const i64 MAX_PRICE_TICKS "RISKCORE_MAX_PRICE_TICKS"
    const i64 CAPACITY "RISKCORE_CAPACITY"


cdef inline bint within(i64 value) noexcept nogil:
    """True when a total fits the engine's capacity (|value| <= 2^62)."""
    return -CAPACITY <= value <= CAPACITY


cdef inline bint pnl_within(i64 value) noexcept nogil:
    """True when a P&L total fits: strictly inside CAPACITY, so realized + unrealized
    (a day's baseline) stays inside int64 even at both bounds."""
    return -CAPACITY < value < CAPACITY


cdef inline bint gross_within(i64 long_, i64 short, i64 working_buy, i64 working_sell) noexcept nogil:
    """True when long + short + working buy + working sell fits the capacity; each term must
    already be within [0, CAPACITY], so the subtractions below stay inside int64."""
    return long_ <= CAPACITY - short - working_buy - working_sell
