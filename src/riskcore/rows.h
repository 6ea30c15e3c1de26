// The rows of the engine's tables, other than the slot row (tables.h).
//
// Plain structs, declared here rather than in Cython so that the engine's
// state (state.h) can hold vectors of them. Their layout is the snapshot's
// (riskcore.snapshot writes the tables as raw bytes): fields and order are
// those of state version 3, and a change needs a new STATE_VERSION.
#pragma once

#include <cstdint>

namespace riskcore {

constexpr int MAX_DEPTH = 8;       // levels of the account tree, the firm included

struct Instrument {
    double tick_size;
    int64_t tick_value;            // money micros per tick per unit
    int64_t lot_size;
    int64_t ref;                   // reference price in ticks, 0 = none
    int64_t ref_time;              // ns
    int64_t max_ref_age;           // ns, 0 = no staleness limit
    int64_t collar_bps_buy;        // -1 = unset
    int64_t collar_bps_sell;
    int64_t collar_ticks_buy;
    int64_t collar_ticks_sell;
    int64_t min_price;             // ticks, 0 = unset
    int64_t max_price;             // ticks, INT64_MAX = unset
    uint8_t require_ref;
    uint8_t tradable;
    int8_t state;
};

struct Limits {
    int64_t max_order_qty;
    int64_t max_order_notional;
    int64_t max_gross;
    int64_t max_net;
    int64_t max_open_orders;
    int64_t max_daily_loss;
    int64_t new_rate_count;
    int64_t new_rate_window;
    int64_t modify_rate_count;
    int64_t modify_rate_window;
    int64_t cancel_rate_count;
    int64_t cancel_rate_window;
    int64_t fill_count;
    int64_t fill_window;
};

struct Node {
    int32_t parent;
    int32_t depth;                 // entries used in path
    int32_t path[MAX_DEPTH];       // the node itself, then its ancestors up to the firm
    int32_t n_children;
    uint8_t active;                // has had orders or positions: may not get children
    uint8_t has_allowlist;
    int8_t state;
    uint8_t state_cause;           // Reason that set the state automatically, 0 = operator
    Limits limits;
    int64_t long_notional;
    int64_t short_notional;
    int64_t wbuy_notional;
    int64_t wsell_notional;
    int64_t realized;
    int64_t unrealized;
    int64_t open_orders;
    int64_t sod_pnl;               // realized + unrealized at the last start-of-day roll
    int32_t saved;                 // where the running what-if batch kept it (-1 = not kept)
};

// A slot's position limits, read only when the slot row says ``limited``.
struct PositionLimit {
    int64_t max_long;              // INT64_MAX = unlimited
    int64_t max_short;
};

struct Order {
    int64_t id;
    int32_t account;
    int32_t symbol;
    int32_t slot;                  // the leaf slot
    int8_t side;                   // +1 buy, -1 sell
    uint8_t market;
    int8_t status;
    int64_t price;                 // ticks (reference at acceptance for market orders)
    int64_t remaining;
    int64_t filled;
};

struct Event {
    int64_t time;
    int32_t node;
    int32_t symbol;                // -1 when not about one symbol
    uint8_t reason;
    int64_t value;
    int64_t limit;
};

// A slot's totals while recompute() carries leaves up the tree.
struct SlotSum {
    int64_t pos;
    int64_t cost;
    int64_t realized;
};

// A slot row's working orders before a what-if batch first changed it.
struct SavedRow {
    int32_t slot;
    int64_t wbuy;
    int64_t wsell;
    int64_t best_buy;
    int64_t best_sell;
};

// A slot side's newest orders not yet in its price levels: ``count`` of
// them, from order row ``newest`` back through the state's ``order_next``.
struct PendingRun {
    int32_t newest;
    int32_t count;
};

// A node's working totals before a what-if batch first changed them,
// and the new-order events the batch has added to its rate window since.
struct SavedNode {
    int32_t node;
    int64_t wbuy_notional;
    int64_t wsell_notional;
    int64_t open_orders;
    int64_t pushed;
};

// The snapshot's layout tuple, as state version 3 wrote it.
static_assert(sizeof(Instrument) == 104, "the snapshot layout of an instrument row");
static_assert(sizeof(Node) == 232, "the snapshot layout of a node row");
static_assert(sizeof(Order) == 48, "the snapshot layout of an order row");
static_assert(sizeof(Event) == 40, "the snapshot layout of an event row");
static_assert(sizeof(PositionLimit) == 16, "the snapshot layout of a position-limit row");

}  // namespace riskcore
