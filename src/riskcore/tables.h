// Flat tables for the engine's hot lookups.
//
// The standard containers cost a heap node per entry: an unordered_map lookup
// is two or three dependent cache misses and a std::map insert is a malloc.
// With an order flow spread over 100k positions those misses are the whole
// cost of a check, so the two structures every order touches are kept flat:
// one probe into a contiguous table, and a sorted vector that stops
// allocating once it has grown.
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

namespace riskcore {

// One (node, symbol) pair: the node's netted aggregate in that symbol. Exactly
// one cache line, aligned to one (C++17 allocates over-aligned types aligned),
// holding all an order check reads of the slot: a flow spread over a big book
// misses once per slot, not twice. What the order path seldom reads (realized
// P&L, position limits) lives in the engine's side tables.
struct alignas(64) Slot {
    int32_t node;
    int32_t symbol;
    int32_t parent_slot;   // same symbol one level up, -1 at the firm
    uint8_t saved;         // kept by the running what-if batch, to put back at its end
    uint8_t permitted;     // on the node's allow-list
    uint8_t limited;       // has a position limit (then see the engine's limit table)
    int64_t pos;
    int64_t cost;          // signed micro-units of the open position (average cost)
    int64_t wbuy;          // working buy quantity
    int64_t wsell;
    int64_t best_buy;      // best level key of the working orders per side (see Levels),
    int64_t best_sell;     // INT64_MIN when the side has none
};
static_assert(sizeof(Slot) == 64, "a slot row is one cache line");

// int64 key -> int32 value by open addressing with linear probing, at most
// half full. Entries are never erased (the engine overwrites values instead),
// so probing needs no tombstones.
class IdMap {
  public:
    IdMap() { reset(32); }

    // Pointer to the value stored under key, or nullptr.
    int32_t* find(int64_t key) {
        for (size_t i = bucket(key);; i = (i + 1) & mask_) {
            Entry& e = table_[i];
            if (e.value == EMPTY) return nullptr;
            if (e.key == key) return &e.value;
        }
    }

    // Store value (never INT32_MIN) under key.
    void set(int64_t key, int32_t value) {
        if (2 * (size_ + 1) > table_.size()) grow();
        place(key, value);
    }

    // Make room for n keys in all, so that adding them does not rehash midway.
    void reserve(size_t n) {
        size_t capacity = table_.size();
        while (2 * n > capacity) capacity *= 2;
        if (capacity == table_.size()) return;
        std::vector<Entry> old;
        old.swap(table_);
        reset(capacity);
        for (const Entry& e : old)
            if (e.value != EMPTY) place(e.key, e.value);
    }

    // Start loading the cache line key hashes to, ahead of a find.
    //
    // Every prefetch member is always inlined. Out of line, GCC finds that it
    // has no side effect (a prefetch is none), marks it pure, and deletes a
    // call whose result is unused: every call. The batch loops' look-ahead
    // into the slot and order indexes had compiled to nothing that way.
    [[gnu::always_inline]] void prefetch(int64_t key) const { __builtin_prefetch(&table_[bucket(key)]); }

    size_t size() const { return size_; }

    // Iteration over the raw table, for snapshots: skip positions not occupied.
    size_t capacity() const { return table_.size(); }
    bool occupied(size_t i) const { return table_[i].value != EMPTY; }
    int64_t key_at(size_t i) const { return table_[i].key; }
    int32_t value_at(size_t i) const { return table_[i].value; }

  private:
    struct Entry {
        int64_t key;
        int32_t value;
    };
    static constexpr int32_t EMPTY = INT32_MIN;

    // Keys are hashed in groups of 16 consecutive values (Fibonacci hashing of
    // key / 16), and a group's keys fill one 256-byte block in a scrambled order:
    // sequential order ids and one node's symbols then share cache lines and
    // pages, while keys 16 apart land in scattered blocks and offsets.
    size_t bucket(int64_t key) const {
        const uint64_t mixed = (static_cast<uint64_t>(key) >> 4) * 0x9E3779B97F4A7C15ull;
        return static_cast<size_t>((mixed >> shift_) << 4 | ((static_cast<uint64_t>(key) ^ (mixed >> 32)) & 15));
    }

    void place(int64_t key, int32_t value) {
        for (size_t i = bucket(key);; i = (i + 1) & mask_) {
            Entry& e = table_[i];
            if (e.value == EMPTY) {
                e.key = key;
                e.value = value;
                ++size_;
                return;
            }
            if (e.key == key) {
                e.value = value;
                return;
            }
        }
    }

    void reset(size_t capacity) {
        table_.assign(capacity, Entry{0, EMPTY});
        mask_ = capacity - 1;
        shift_ = 64 - (__builtin_ctzll(capacity) - 4);     // capacity / 16 blocks
        size_ = 0;
    }

    void grow() { reserve(size_ + 1); }

    std::vector<Entry> table_;
    size_t mask_ = 0;
    int shift_ = 0;
    size_t size_ = 0;
};

// Order id -> order row. Ids that come in sequence (as most order entry
// systems number them) fill a direct array, 4 bytes each and written in
// order; every other id goes to the hash map. When the array grows over ids
// the map already holds, it takes their rows over (the map's copies are never
// read again): an id inside the array's range is always found there.
class OrderIndex {
  public:
    // Pointer to the row stored under id, or nullptr.
    int32_t* find(int64_t id) {
        const uint64_t k = offset(id);
        if (k < direct_.size()) return direct_[k] == EMPTY ? nullptr : &direct_[k];
        if (id < map_low_ || id > map_high_) return nullptr;       // a new id past both: no probe
        return map_.find(id);
    }

    bool contains(int64_t id) { return find(id) != nullptr; }

    // Store row (never INT32_MIN) under id.
    void set(int64_t id, int32_t row) {
        if (direct_.empty() && map_.size() == 0) base_ = id;
        const uint64_t k = offset(id);
        if (k >= direct_.size() && extends_to(k)) {
            const int64_t first_new = base_ + static_cast<int64_t>(direct_.size());
            const bool over_map = map_.size() > 0 && id >= map_low_ && first_new <= map_high_;
            while (direct_.size() <= k) {
                const int32_t* held = over_map ? map_.find(base_ + static_cast<int64_t>(direct_.size())) : nullptr;
                direct_.push_back(held ? *held : EMPTY);
                if (held) ++direct_count_;
            }
        }
        if (k < direct_.size()) {
            if (direct_[k] == EMPTY) ++direct_count_;
            direct_[k] = row;
            return;
        }
        map_.set(id, row);
        map_low_ = std::min(map_low_, id);
        map_high_ = std::max(map_high_, id);
    }

    // Make room for `more` new ids, in the array or the map, so adding them grows neither midway.
    void reserve_more(size_t more) {
        const size_t used = direct_.size();
        direct_.resize(used + more, EMPTY);     // touched here once, not page by page while booking
        direct_.resize(used);
        map_.reserve(map_.size() + more);
    }

    // Start loading where id is or would go (an id about to extend the array: its reserved room).
    [[gnu::always_inline]] void prefetch(int64_t id) const {     // always inlined: see IdMap::prefetch
        const uint64_t k = offset(id);
        if (k < direct_.capacity()) __builtin_prefetch(direct_.data() + k);
        else map_.prefetch(id);
    }

    size_t size() const { return direct_count_ + map_.size(); }

    // Every (id, row) pair, for snapshots.
    std::vector<std::pair<int64_t, int32_t>> items() const {
        std::vector<std::pair<int64_t, int32_t>> out;
        out.reserve(size());
        for (size_t k = 0; k < direct_.size(); ++k)
            if (direct_[k] != EMPTY) out.emplace_back(base_ + static_cast<int64_t>(k), direct_[k]);
        for (size_t i = 0; i < map_.capacity(); ++i)
            if (map_.occupied(i) && offset(map_.key_at(i)) >= direct_.size())
                out.emplace_back(map_.key_at(i), map_.value_at(i));
        return out;
    }

  private:
    static constexpr int32_t EMPTY = INT32_MIN;
    static constexpr uint64_t SLACK = 64;       // ids the array may grow by beyond its end at once

    uint64_t offset(int64_t id) const { return static_cast<uint64_t>(id) - static_cast<uint64_t>(base_); }

    // Whether the array may grow to hold offset k: close to its end, and at
    // least a quarter full afterwards.
    bool extends_to(uint64_t k) const {
        if (k - direct_.size() >= std::max<uint64_t>(SLACK, direct_.size())) return false;   // also: id below base_
        return 4 * (direct_count_ + 1) >= k + 1 || k < SLACK;
    }

    std::vector<int32_t> direct_;
    int64_t base_ = 0;                 // id of direct_[0]
    size_t direct_count_ = 0;          // ids stored in direct_
    IdMap map_;
    int64_t map_low_ = INT64_MAX;      // range of the ids in map_
    int64_t map_high_ = INT64_MIN;
};

// (node, symbol) -> slot. A node holding slots in a good share of the symbol
// ids up to its highest gets a direct array indexed by symbol: 4 bytes per
// symbol, so a whole book's lookups fit in a core's cache (a 100-account,
// 1000-symbol book takes 400 KB, where the hash map takes 4 MB). Sparser
// nodes are found in the hash map, which holds every slot either way.
class SlotIndex {
  public:
    // The slot, or -1 when the node has none in the symbol.
    int32_t find(int32_t node, int32_t symbol) {
        if (const std::vector<int32_t>* direct = direct_of(node))
            return static_cast<size_t>(symbol) < direct->size() ? (*direct)[symbol] : -1;
        const int32_t* found = map_.find(key(node, symbol));
        return found ? *found : -1;
    }

    [[gnu::always_inline]] void prefetch(int32_t node, int32_t symbol) {     // always inlined: see IdMap::prefetch
        if (const std::vector<int32_t>* direct = direct_of(node)) {
            if (static_cast<size_t>(symbol) < direct->size()) __builtin_prefetch(&(*direct)[symbol]);
        } else {
            map_.prefetch(key(node, symbol));
        }
    }

    // Index a new slot (each (node, symbol) once; node and symbol >= 0).
    void add(int32_t node, int32_t symbol, int32_t slot) {
        map_.set(key(node, symbol), slot);
        if (static_cast<size_t>(node) >= nodes_.size()) nodes_.resize(node + 1);
        Node& n = nodes_[node];
        n.count += 1;
        n.span = std::max<int64_t>(n.span, int64_t{symbol} + 1);
        if (!n.direct.empty() && n.span > SPARSE * n.count) {
            std::vector<int32_t>().swap(n.direct);            // too sparse now: back to the map alone
        } else if (n.direct.empty() && n.span <= DENSE * n.count) {
            n.direct.assign(n.span, -1);                      // dense enough: fill from the map
            for (int32_t s = 0; s < n.span; ++s) {
                const int32_t* found = map_.find(key(node, s));
                if (found) n.direct[s] = *found;
            }
        } else if (!n.direct.empty()) {
            if (n.direct.size() < static_cast<size_t>(n.span)) n.direct.resize(n.span, -1);
            n.direct[symbol] = slot;
        }
    }

    size_t size() const { return map_.size(); }

  private:
    // A direct array is built at one slot per DENSE symbol ids and dropped
    // below one per SPARSE: it costs at most 4 * SPARSE bytes a slot, and the
    // gap between the two keeps a node from flapping.
    static constexpr int64_t DENSE = 8;
    static constexpr int64_t SPARSE = 32;

    struct Node {
        std::vector<int32_t> direct;
        int64_t count = 0;     // slots of the node
        int64_t span = 0;      // highest symbol id among them + 1
    };

    static int64_t key(int32_t node, int32_t symbol) {
        return static_cast<int64_t>((static_cast<uint64_t>(static_cast<uint32_t>(node)) << 32) |
                                    static_cast<uint32_t>(symbol));
    }

    const std::vector<int32_t>* direct_of(int32_t node) const {
        if (static_cast<size_t>(node) >= nodes_.size() || nodes_[node].direct.empty()) return nullptr;
        return &nodes_[node].direct;
    }

    IdMap map_;
    std::vector<Node> nodes_;
};

// How many working orders rest at each price key on one side of one slot,
// sorted ascending with the best level last: the engine stores buy keys as
// they are and sell keys bit-inverted (~key), so "best" is the highest buy and
// the lowest sell alike, and new quotes, which mostly join near the top of the
// book, move few entries.
class Levels {
  public:
    void add(int64_t key, int64_t count = 1) {
        if (levels_.capacity() == 0) levels_.reserve(INITIAL);   // one allocation for a typical quote book
        auto it = locate(key);
        if (it != levels_.end() && it->first == key)
            it->second += count;
        else
            levels_.insert(it, std::make_pair(key, count));
    }

    // Take one order off key's level; the level goes when it is empty.
    void remove(int64_t key) {
        auto it = locate(key);
        if (it == levels_.end() || it->first != key) return;
        if (--it->second == 0) levels_.erase(it);
    }

    bool empty() const { return levels_.empty(); }
    int64_t best() const { return levels_.back().first; }

    size_t size() const { return levels_.size(); }
    int64_t key_at(size_t i) const { return levels_[i].first; }
    int64_t count_at(size_t i) const { return levels_[i].second; }

  private:
    using Level = std::pair<int64_t, int64_t>;
    static constexpr std::ptrdiff_t NEAR_BEST = 4;   // the best levels: 64 bytes, one cache line
    static constexpr size_t INITIAL = 4;

    // First level not below key: the few best levels are scanned from the top
    // (where the flow lands, already in cache), the rest by binary search.
    std::vector<Level>::iterator locate(int64_t key) {
        auto it = levels_.end();
        for (std::ptrdiff_t k = 0; k < NEAR_BEST && it != levels_.begin(); ++k) {
            if ((it - 1)->first < key) return it;
            --it;
        }
        return std::lower_bound(levels_.begin(), it, key,
                                [](const Level& level, int64_t k) { return level.first < k; });
    }

    std::vector<Level> levels_;
};

// A sliding window of events (orders, modifies, cancels, fills of one node),
// run-length encoded as (time, events at that time). The newest run and the
// oldest run's time live in the object, next to the total: counting and adding
// events at the current time, which every order of a batch shares, touches
// nothing else. Older runs wait in a deque to leave the window.
class alignas(64) Window {
  public:
    // Events in (now - length, now], after dropping the runs at or before now - length.
    int64_t count(int64_t now, int64_t length) {
        const int64_t cutoff = now - length;
        if (oldest_ <= cutoff || (oldest_ == INT64_MAX && newest_count_ > 0 && newest_time_ <= cutoff))
            drop(cutoff);
        return total_;
    }

    // One more event at now.
    void push(int64_t now) {
        ++total_;
        if (newest_count_ > 0 && newest_time_ == now) {
            ++newest_count_;
            return;
        }
        append(now, 1);
    }

    // Take back the k newest events: a what-if batch undoing its bookings. A
    // batch's events share one time, so they are all in the newest run.
    void unpush(int64_t k) {
        total_ -= k;
        newest_count_ -= k;
        if (newest_count_ == 0 && !older_.empty()) {
            newest_time_ = older_.back().first;
            newest_count_ = older_.back().second;
            older_.pop_back();
            if (older_.empty()) oldest_ = INT64_MAX;
        }
    }

    // A run after all the others (events at a time not before the newest run's).
    void append(int64_t time, int64_t events) {
        if (newest_count_ > 0) {
            if (older_.empty()) oldest_ = newest_time_;
            older_.emplace_back(newest_time_, newest_count_);
        }
        newest_time_ = time;
        newest_count_ = events;
    }

    // Runs oldest first, for snapshots (append() rebuilds them in order).
    size_t runs() const { return older_.size() + (newest_count_ > 0); }
    std::pair<int64_t, int64_t> run(size_t i) const {
        return i < older_.size() ? older_[i] : std::make_pair(newest_time_, newest_count_);
    }

  private:
    // Drop the runs at or before cutoff, oldest first (the newest once no older one is left).
    __attribute__((noinline)) void drop(int64_t cutoff) {
        while (!older_.empty() && older_.front().first <= cutoff) {
            total_ -= older_.front().second;
            older_.pop_front();
        }
        oldest_ = older_.empty() ? INT64_MAX : older_.front().first;
        if (older_.empty() && newest_count_ > 0 && newest_time_ <= cutoff) {
            total_ -= newest_count_;
            newest_count_ = 0;
        }
    }

  public:
    // The events loaded by append() count too.
    void recount() {
        total_ = newest_count_;
        for (const auto& run : older_) total_ += run.second;
    }

  private:
    int64_t total_ = 0;
    int64_t oldest_ = INT64_MAX;     // time of older_.front()
    int64_t newest_time_ = 0;
    int64_t newest_count_ = 0;       // 0: no newest run
    std::deque<std::pair<int64_t, int64_t>> older_;
};

}  // namespace riskcore
