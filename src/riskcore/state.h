// The engine's tables, in one struct with one owner.
//
// RiskEngine holds a State by value; the kernel's logic is inline functions
// over it (_pretrade.pxd, _booking.pxd, _positions.pxd, _throttle.pxd,
// _whatif.pxd), which the C compiler inlines into the engine's methods and
// batch loops: no call through a method table on the order path. Python
// objects (names, execution ids, the clock) stay on the engine.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <utility>
#include <vector>

#include "rows.h"
#include "tables.h"

namespace riskcore {

// An order's content for the duplicate guard: ((account << 32 | symbol, 2 * quantity + is_buy), price key).
using DupKey = std::pair<std::pair<int64_t, int64_t>, int64_t>;

struct State {
    std::vector<Instrument> instruments;
    std::vector<Node> nodes;
    std::vector<uint8_t> path_allowlist;             // per node: a node on its path has an allow-list
    std::vector<Slot> slots;
    std::vector<int64_t> realized;                   // per slot: realized P&L
    std::vector<PositionLimit> position_limits;      // per slot, read when the row is ``limited``
    SlotIndex slot_index;                            // (node, symbol) -> slot
    std::vector<std::vector<int32_t>> symbol_slots;  // slots per symbol, for price fan-out
    std::vector<int64_t> pos_bound;                  // per symbol: >= |pos| of each of its slots (marks' fast path)
    std::vector<Order> orders;
    OrderIndex order_index;                          // order id -> row, -1 once forgotten
    std::vector<Window> windows;                     // 4 per node: new orders, modifies, cancels, fills
    std::vector<Levels> rest_buy;                    // per slot: working orders per buy price key
    std::vector<Levels> rest_sell;                   // and per sell price key, bit-inverted
    std::map<DupKey, int64_t> dup_last;
    std::deque<std::pair<int64_t, DupKey>> dup_expiry;
    int64_t dup_window = 0;
    std::vector<Event> events;
    // A what-if batch (check_batch) books as it goes and then puts back the rows
    // and nodes it saved on first change: no per-order take-back (_whatif.pxd).
    bool what_if = false;
    // A new working order joins its slot's price levels later, when an event
    // first needs them (_booking.pxd): the order path writes only the row's
    // best price, which is all the checks read.
    std::vector<PendingRun> pending;                 // per slot side: 2 * slot, + 1 for sells
    std::vector<int32_t> order_next;                 // per order row: the same slot side's previous order
    std::vector<SavedRow> saved_rows;
    std::vector<SavedNode> saved_nodes;
    std::vector<DupKey> batch_dups;                  // duplicate-guard entries it added, in order
    std::vector<SlotSum> sums;                       // recompute()'s per-slot totals
};

}  // namespace riskcore
