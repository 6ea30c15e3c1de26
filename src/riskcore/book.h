// Flat tables of the L3 market-data book (riskcore.book): the order store and
// the price levels of one side of one symbol's book.
//
// Every ITCH order event after an add names its order only by reference, so
// the store is probed once per message: it is one open-addressing table whose
// entries hold the order itself (no pointer to chase), and a removal shifts
// the probe run back instead of leaving tombstones, so a long day of adds and
// deletes does not degrade it. Price levels are a sorted vector per side with
// the best level last: most events land on the few levels near the top, which
// are found by a short scan and moved cheaply.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace riskcore {
namespace md {

// One resting order: 24 bytes, 8-byte aligned so a table block of 16 entries
// is 6 cache lines. side is 'B' or 'S'; 0 marks an empty table entry (the
// decoder refuses any other side byte, so a live order never has 0).
struct Order {
    uint64_t ref;
    uint32_t price;        // ITCH Price(4): 1/10,000 of a dollar
    uint32_t shares;       // remaining
    uint16_t locate;
    uint8_t side;
};
static_assert(sizeof(Order) == 24, "an order entry is 24 bytes");

// Order reference -> order, open addressing with linear probing, at most half
// full. Keys are hashed in groups of 16 consecutive references (Fibonacci
// hashing of ref / 16, as tables.h's IdMap does) and a group fills one block
// in a scrambled order: NASDAQ assigns references in increasing order, so the
// orders added in one burst, which are also the ones most often cancelled
// soon after, share cache lines.
class OrderStore {
  public:
    OrderStore() { reset(MIN_CAPACITY); }

    // The order stored under ref, or nullptr.
    Order* find(uint64_t ref) {
        for (size_t i = bucket(ref);; i = (i + 1) & mask_) {
            Order& e = table_[i];
            if (e.side == 0) return nullptr;
            if (e.ref == ref) return &e;
        }
    }

    // The entry for ref: the existing order (*existed set) or a new entry
    // with only ref filled in, which the caller must complete with a side.
    Order* insert(uint64_t ref, bool* existed) {
        if (2 * (size_ + 1) > table_.size()) rehash(2 * table_.size());
        for (size_t i = bucket(ref);; i = (i + 1) & mask_) {
            Order& e = table_[i];
            if (e.side == 0) {
                e.ref = ref;
                ++size_;
                *existed = false;
                return &e;
            }
            if (e.ref == ref) {
                *existed = true;
                return &e;
            }
        }
    }

    // Remove the entry (a pointer find() or insert() returned, not used since
    // another insert or erase). Backward-shift deletion: later entries of the
    // probe run move up into the hole, so no tombstone is left.
    void erase(Order* entry) {
        size_t hole = static_cast<size_t>(entry - table_.data());
        for (size_t j = (hole + 1) & mask_;; j = (j + 1) & mask_) {
            Order& e = table_[j];
            if (e.side == 0) break;
            const size_t home = bucket(e.ref);
            // e may fill the hole unless its home lies cyclically in (hole, j].
            const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
            if (!stays) {
                table_[hole] = e;
                hole = j;
            }
        }
        table_[hole].side = 0;
        --size_;
    }

    // Room for n orders in all, so that reaching n rehashes nothing.
    void reserve(size_t n) {
        size_t capacity = table_.size();
        while (2 * n > capacity) capacity *= 2;
        if (capacity != table_.size()) rehash(capacity);
    }

    void clear() { reset(MIN_CAPACITY); }

    size_t size() const { return size_; }
    size_t capacity() const { return table_.size(); }
    const Order& at(size_t i) const { return table_[i]; }   // for iteration: skip entries with side 0

  private:
    static constexpr size_t MIN_CAPACITY = 1024;

    size_t bucket(uint64_t ref) const {
        const uint64_t mixed = (ref >> 4) * 0x9E3779B97F4A7C15ull;
        return static_cast<size_t>((mixed >> shift_) << 4 | ((ref ^ (mixed >> 32)) & 15));
    }

    void reset(size_t capacity) {
        table_.assign(capacity, Order{0, 0, 0, 0, 0});
        mask_ = capacity - 1;
        shift_ = 64 - (__builtin_ctzll(capacity) - 4);     // capacity / 16 blocks (capacity >= 32)
        size_ = 0;
    }

    void rehash(size_t capacity) {
        std::vector<Order> old;
        old.swap(table_);
        reset(capacity);
        for (const Order& o : old) {
            if (o.side == 0) continue;
            size_t i = bucket(o.ref);
            while (table_[i].side != 0) i = (i + 1) & mask_;
            table_[i] = o;
            ++size_;
        }
    }

    std::vector<Order> table_;
    size_t mask_ = 0;
    int shift_ = 0;
    size_t size_ = 0;
};

// One price level: the resting orders and shares at one price.
struct Level {
    uint32_t key;          // the price for bids, ~price for asks (see PriceLevels)
    uint32_t orders;
    uint64_t shares;       // a sum of uint32 order sizes: 64 bits cannot wrap
};
static_assert(sizeof(Level) == 16, "a level is 16 bytes");

// The levels of one side, ascending by key with the best level last. Bid keys
// are prices and ask keys are bit-inverted prices, so "best" is the highest
// bid and the lowest ask alike. Each change reports whether it touched the
// top level (the best before or after it), which is what a quote consumer
// needs to know.
class PriceLevels {
  public:
    // Add one order of `shares` at key.
    bool add(uint32_t key, uint32_t shares) {
        auto it = locate(key);
        const bool top = it == levels_.end() || (it + 1 == levels_.end() && it->key == key);
        if (it != levels_.end() && it->key == key) {
            it->orders += 1;
            it->shares += shares;
        } else {
            levels_.insert(it, Level{key, 1, shares});
        }
        return top;
    }

    // Take `shares` off key's level, and one order when `order_gone`; the
    // level goes when its last order does. A key with no level changes nothing.
    bool reduce(uint32_t key, uint32_t shares, bool order_gone) {
        auto it = locate(key);
        if (it == levels_.end() || it->key != key) return false;
        const bool top = it + 1 == levels_.end();
        it->shares -= std::min<uint64_t>(shares, it->shares);
        if (order_gone && --it->orders == 0) levels_.erase(it);
        return top;
    }

    bool empty() const { return levels_.empty(); }
    const Level& best() const { return levels_.back(); }
    size_t size() const { return levels_.size(); }
    // The i-th level counting from the best (0 = best).
    const Level& from_best(size_t i) const { return levels_[levels_.size() - 1 - i]; }

  private:
    static constexpr std::ptrdiff_t NEAR_BEST = 4;

    // First level whose key is not below key: the few best levels are scanned
    // from the top (where most events land), the rest by binary search.
    std::vector<Level>::iterator locate(uint32_t key) {
        auto it = levels_.end();
        for (std::ptrdiff_t k = 0; k < NEAR_BEST && it != levels_.begin(); ++k) {
            if ((it - 1)->key < key) return it;
            --it;
        }
        return std::lower_bound(levels_.begin(), it, key,
                                [](const Level& level, uint32_t k) { return level.key < k; });
    }

    std::vector<Level> levels_;
};

// One symbol's book (indexed by ITCH stock locate).
struct SymbolBook {
    PriceLevels bids;
    PriceLevels asks;
    uint64_t last_size = 0;       // shares of the last trade (0: none yet)
    uint64_t last_time = 0;       // its timestamp, ns since midnight
    uint32_t last_price = 0;
    char name[8] = {0};           // from the Stock Directory, space padded; all 0 until one arrives
    uint8_t named = 0;
    uint8_t state = 0;            // Trading Action state: 'T', 'H', 'P', 'Q'; 0 until the first one
    uint8_t dirty = 0;            // top or last trade changed since the marks were last read
    uint8_t seen = 0;             // any message has been about this locate
};

// What the decoder counts, per reason. Order matters: riskcore.book lists the names in this order.
struct Counters {
    uint64_t messages;            // frames decoded and applied (every known type)
    uint64_t unknown_type;        // skipped by their framed length
    uint64_t short_message;       // shorter than their type's length (or empty): skipped
    uint64_t truncated_frame;     // a frame cut off at the end of the final buffer: dropped
    uint64_t bad_field;           // a side not B/S, zero shares on an add, stock locate 0, a state not H/P/Q/T
    uint64_t unknown_ref;         // an execution, cancel, delete or replace of an order not in the book
    uint64_t duplicate_add;       // an add (or a replace's new reference) of a reference already live
    uint64_t over_execution;      // executed or cancelled more than remaining: clamped
    uint64_t crossed_book;        // best bid >= best ask after an add or replace
};

// The whole state the decoder applies ITCH messages to.
struct BookState {
    std::vector<SymbolBook> symbols;     // by stock locate; grown on demand
    OrderStore orders;
    Counters counters = {};
    uint64_t by_type[256] = {};          // complete frames per type byte
    std::vector<uint16_t> dirty;         // locates whose dirty flag is set, in the order they changed
    uint64_t last_timestamp = 0;         // of the last message applied
    uint64_t event_time = 0;             // of the last System Event
    uint8_t event = 0;                   // its code ('O', 'S', 'Q', 'M', 'E', 'C'), 0 before any
    uint32_t named = 0;                  // Stock Directory messages applied (tells the Book to re-index names)

    // The locate's book, made on first use. The pointer is good until the
    // next call that makes a book (the vector may move).
    SymbolBook* symbol(uint16_t locate) {
        if (locate >= symbols.size()) symbols.resize(static_cast<size_t>(locate) + 1);
        SymbolBook* s = &symbols[locate];
        s->seen = 1;
        return s;
    }
};

}  // namespace md
}  // namespace riskcore
