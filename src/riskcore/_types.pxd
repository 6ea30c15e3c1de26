# Shared C types of the kernel: integer typedefs, the reason codes, sides,
# trading states and the plain structs the engine keeps in C++ vectors.
from libc.stdint cimport int8_t, uint8_t, int32_t, int64_t

ctypedef int64_t i64
ctypedef int32_t i32

cdef extern from "<stdint.h>":
    const int64_t INT64_MAX
    const int64_t INT64_MIN

cdef extern from *:
    # 128-bit intermediate for products of two 64-bit quantities (GCC/Clang).
    ctypedef long long i128 "__int128"

cdef extern from "rows.h" namespace "riskcore":
    cdef enum:
        MAX_DEPTH       # levels of the account tree, the firm included

cpdef enum Reason:
    OK = 0
    INVALID_SIDE = 1
    INVALID_QUANTITY = 2
    INVALID_PRICE = 3
    DUPLICATE_ORDER_ID = 4
    UNKNOWN_ORDER = 5
    UNKNOWN_SYMBOL = 6
    SYMBOL_RESTRICTED = 7
    UNKNOWN_ACCOUNT = 8
    ACCOUNT_NOT_TRADABLE = 9
    SYMBOL_NOT_PERMITTED = 10
    LOT_SIZE = 11
    TICK_SIZE = 12
    NOTIONAL_OVERFLOW = 13
    TRADING_HALTED = 14
    REDUCE_ONLY = 15
    DAILY_LOSS_LIMIT = 16
    EXECUTION_THROTTLE = 17
    NO_REFERENCE_PRICE = 18
    STALE_REFERENCE_PRICE = 19
    PRICE_OUT_OF_RANGE = 20
    PRICE_COLLAR = 21
    MAX_ORDER_QUANTITY = 22
    MAX_ORDER_NOTIONAL = 23
    POSITION_LIMIT = 24
    MAX_GROSS_NOTIONAL = 25
    MAX_NET_NOTIONAL = 26
    MAX_OPEN_ORDERS = 27
    ORDER_RATE_LIMIT = 28
    MODIFY_RATE_LIMIT = 29
    CANCEL_RATE_LIMIT = 30
    DUPLICATE_ORDER = 31
    SELF_MATCH = 32

cpdef enum TradingState:
    ACTIVE = 0
    REDUCING = 1
    HALTED = 2

cpdef enum OrderStatus:
    WORKING = 0
    FILLED = 1
    CANCELLED = 2
    EXPIRED = 3
    REJECTED = 4

cdef extern from "rows.h" namespace "riskcore":
    # The tables' rows (rows.h: their layout is the snapshot's).
    ctypedef struct Instrument_t "riskcore::Instrument":
        double tick_size
        i64 tick_value          # money micros per tick per unit
        i64 lot_size
        i64 ref                 # reference price in ticks, 0 = none
        i64 ref_time            # ns
        i64 max_ref_age         # ns, 0 = no staleness limit
        i64 collar_bps_buy      # -1 = unset
        i64 collar_bps_sell
        i64 collar_ticks_buy
        i64 collar_ticks_sell
        i64 min_price           # ticks, 0 = unset
        i64 max_price           # ticks, INT64_MAX = unset
        uint8_t require_ref
        uint8_t tradable
        int8_t state

    ctypedef struct Limits_t "riskcore::Limits":
        i64 max_order_qty
        i64 max_order_notional
        i64 max_gross
        i64 max_net
        i64 max_open_orders
        i64 max_daily_loss
        i64 new_rate_count
        i64 new_rate_window
        i64 modify_rate_count
        i64 modify_rate_window
        i64 cancel_rate_count
        i64 cancel_rate_window
        i64 fill_count
        i64 fill_window

    ctypedef struct Node_t "riskcore::Node":
        i32 parent
        i32 depth
        i32 path[MAX_DEPTH]
        i32 n_children
        uint8_t active
        uint8_t has_allowlist
        int8_t state
        uint8_t state_cause
        Limits_t limits
        i64 long_notional
        i64 short_notional
        i64 wbuy_notional
        i64 wsell_notional
        i64 realized
        i64 unrealized
        i64 open_orders
        i64 sod_pnl
        i32 saved

    ctypedef struct PositionLimit_t "riskcore::PositionLimit":
        i64 max_long            # INT64_MAX = unlimited
        i64 max_short

    ctypedef struct Order_t "riskcore::Order":
        i64 id
        i32 account
        i32 symbol
        i32 slot
        int8_t side
        uint8_t market
        int8_t status
        i64 price
        i64 remaining
        i64 filled

    ctypedef struct Event_t "riskcore::Event":
        i64 time
        i32 node
        i32 symbol
        uint8_t reason
        i64 value
        i64 limit

    ctypedef struct SlotSum "riskcore::SlotSum":
        i64 pos
        i64 cost
        i64 realized

    ctypedef struct SavedRow "riskcore::SavedRow":
        i32 slot
        i64 wbuy
        i64 wsell
        i64 best_buy
        i64 best_sell

    ctypedef struct PendingRun "riskcore::PendingRun":
        i32 newest
        i32 count

    ctypedef struct SavedNode "riskcore::SavedNode":
        i32 node
        i64 wbuy_notional
        i64 wsell_notional
        i64 open_orders
        i64 pushed

cdef extern from "tables.h" namespace "riskcore":
    # One (node, symbol) pair in one cache line: see tables.h.
    ctypedef struct Slot_t "riskcore::Slot":
        i32 node
        i32 symbol
        i32 parent_slot
        uint8_t saved
        uint8_t permitted
        uint8_t limited
        i64 pos
        i64 cost
        i64 wbuy
        i64 wsell
        i64 best_buy
        i64 best_sell

ctypedef struct CheckResult:
    # What a pre-trade evaluation found, returned to its caller (never parked on the engine):
    # for a rejection, the node, value and limit its message names; for an acceptance, the
    # highest utilisation and the order's terms that booking it needs.
    i32 node                # deciding node, -1 for none
    double value
    double limit
    double util
    i64 price               # ticks (the reference for a market order)
    i64 notional            # micro-units
    i32 slot                # the (account, symbol) leaf slot
