"""Snapshots of an engine: its whole state as plain data, and back.

Struct tables go out as raw bytes of their fixed layout (checked on the way
back in), everything else as lists, sets, dicts and ints, versioned by
``riskcore.engine.STATE_VERSION``. A restore checks every cross-table index
before use (a bad snapshot must fail, not read outside memory) and ends with
``verify()``. Version 2 (position cost in tick-units) is converted on load.
"""
from libc.string cimport memcpy
from libcpp.vector cimport vector
from libcpp.utility cimport pair

from riskcore._types cimport (
    i64, i32, i128, INT64_MAX, INT64_MIN, MAX_DEPTH, Instrument_t, Node_t, Slot_t, Order_t, Event_t, PositionLimit_t,
    PendingRun,
)
from riskcore.bounds cimport CAPACITY, within
from riskcore.fixedpoint cimport iabs
from riskcore.clock cimport Clock, SystemClock
from riskcore.engine cimport RiskEngine
from riskcore._state cimport DupKey, _mark_allowlists
from riskcore._booking cimport _level_key, _flush_all_levels
from riskcore._throttle cimport W_NEW, W_MODIFY, W_CANCEL, W_FILL, _window
from riskcore.tables cimport Levels, OrderIndex, Window

from riskcore.engine import STATE_VERSION
from riskcore.errors import StateError


def engine_state(RiskEngine self):
    """Return the whole engine state as plain data (for snapshots).

    Struct tables are raw bytes of a fixed layout, versioned by
    ``STATE_VERSION``; everything else is lists, sets, dicts and ints.
    """
    _flush_all_levels(&self._s)
    return {
        "version": STATE_VERSION,
        "layout": (sizeof(Instrument_t), sizeof(Node_t), sizeof(Slot_t), sizeof(Order_t), sizeof(Event_t),
                   sizeof(PositionLimit_t)),
        "instruments": _vector_bytes(self._s.instruments.data(), self._s.instruments.size(), sizeof(Instrument_t)),
        "nodes": _vector_bytes(self._s.nodes.data(), self._s.nodes.size(), sizeof(Node_t)),
        "slots": _vector_bytes(self._s.slots.data(), self._s.slots.size(), sizeof(Slot_t)),
        "realized": _vector_bytes(self._s.realized.data(), self._s.realized.size(), sizeof(i64)),
        "position_limits": _vector_bytes(self._s.position_limits.data(), self._s.position_limits.size(),
                                         sizeof(PositionLimit_t)),
        "orders": _vector_bytes(self._s.orders.data(), self._s.orders.size(), sizeof(Order_t)),
        "events": _vector_bytes(self._s.events.data(), self._s.events.size(), sizeof(Event_t)),
        "order_index": _order_index_dict(self._s.order_index),
        "windows": [_windows_list(self._s.windows, which) for which in (W_NEW, W_MODIFY, W_CANCEL, W_FILL)],
        "resting": [(j, _levels_dict(self._s.rest_buy[j], 1), _levels_dict(self._s.rest_sell[j], -1))
                    for j in range(self._s.slots.size())
                    if not (self._s.rest_buy[j].empty() and self._s.rest_sell[j].empty())],
        "dup_last": dict(self._s.dup_last),
        "dup_expiry": [(self._s.dup_expiry[j].first, self._s.dup_expiry[j].second)
                       for j in range(self._s.dup_expiry.size())],
        "dup_window": self._s.dup_window,
        "accounts": list(self._account_names),
        "symbols": list(self._symbol_names),
        # Copies, not sorted lists: sorting a day's million ids took a second per snapshot.
        "exec_ids": set(self._exec_ids),
        "exec_ids_before": set(self._exec_ids_before),
    }



def restore_engine(cls, state, Clock clock=None):
    """Rebuild an engine from :meth:`to_state` output.

    Raises StateError when the state is from an incompatible version or
    its tables are inconsistent.
    """
    cdef RiskEngine eng = cls.__new__(cls)
    version = state.get("version") if isinstance(state, dict) else None
    if type(version) is not int or version not in (2, STATE_VERSION):
        raise StateError(f"snapshot version {state.get('version') if isinstance(state, dict) else None!r} "
                         f"is not a supported version (2 or {STATE_VERSION})")
    if tuple(state["layout"]) != (sizeof(Instrument_t), sizeof(Node_t), sizeof(Slot_t), sizeof(Order_t),
                                  sizeof(Event_t), sizeof(PositionLimit_t)):
        raise StateError("snapshot struct layout does not match this build")
    eng._clock = clock if clock is not None else SystemClock()
    eng._s.dup_window = state["dup_window"]
    eng._s.instruments.resize(_records(state["instruments"], sizeof(Instrument_t)))
    _copy_into(eng._s.instruments.data(), state["instruments"])
    eng._s.nodes.resize(_records(state["nodes"], sizeof(Node_t)))
    _copy_into(eng._s.nodes.data(), state["nodes"])
    eng._s.slots.resize(_records(state["slots"], sizeof(Slot_t)))
    _copy_into(eng._s.slots.data(), state["slots"])
    eng._s.realized.resize(_records(state["realized"], sizeof(i64)))
    _copy_into(eng._s.realized.data(), state["realized"])
    eng._s.position_limits.resize(_records(state["position_limits"], sizeof(PositionLimit_t)))
    _copy_into(eng._s.position_limits.data(), state["position_limits"])
    if eng._s.realized.size() != eng._s.slots.size() or eng._s.position_limits.size() != eng._s.slots.size():
        raise StateError("snapshot slot tables disagree in length")
    eng._s.orders.resize(_records(state["orders"], sizeof(Order_t)))
    _copy_into(eng._s.orders.data(), state["orders"])
    eng._s.events.resize(_records(state["events"], sizeof(Event_t)))
    _copy_into(eng._s.events.data(), state["events"])
    if (eng._s.nodes.size() != len(state["accounts"]) or eng._s.instruments.size() != len(state["symbols"])):
        raise StateError("snapshot tables disagree with its account and symbol lists")
    cdef size_t j
    cdef DupKey dkey
    eng._s.symbol_slots.resize(eng._s.instruments.size())
    eng._s.pos_bound.resize(eng._s.instruments.size(), 0)
    for j in range(eng._s.nodes.size()):
        eng._s.nodes[j].saved = -1
    for j in range(eng._s.slots.size()):
        if eng._s.slots[j].symbol < 0 or <size_t>eng._s.slots[j].symbol >= eng._s.instruments.size():
            raise StateError(f"slot {j} names an unknown symbol")
        if eng._s.slots[j].node < 0 or <size_t>eng._s.slots[j].node >= eng._s.nodes.size():
            raise StateError(f"slot {j} names an unknown account")
        eng._s.slots[j].saved = 0
        eng._s.slots[j].limited = (eng._s.position_limits[j].max_long != INT64_MAX
                                 or eng._s.position_limits[j].max_short != INT64_MAX)
        if eng._s.slot_index.find(eng._s.slots[j].node, eng._s.slots[j].symbol) >= 0:
            raise StateError(f"slot {j} repeats another slot's account and symbol")
        eng._s.slot_index.add(eng._s.slots[j].node, eng._s.slots[j].symbol, <i32>j)
        eng._s.symbol_slots[eng._s.slots[j].symbol].push_back(<i32>j)
        if not within(eng._s.slots[j].pos):
            raise StateError(f"slot {j} holds a position past the engine's capacity")
        # A mark's fast path relies on this bound (_positions._revalue_holders).
        eng._s.pos_bound[eng._s.slots[j].symbol] = max(eng._s.pos_bound[eng._s.slots[j].symbol], iabs(eng._s.slots[j].pos))
    for k, v in state["order_index"].items():
        if not -1 <= v < <i64>eng._s.orders.size():
            raise StateError(f"order index of order {k} points outside the order table")
        eng._s.order_index.set(k, v)
    _check_references(eng)
    if version == 2:
        _costs_to_micros(eng)
    _mark_allowlists(&eng._s)
    if len(state["windows"]) != 4 or any(len(kind) != eng._s.nodes.size() for kind in state["windows"]):
        raise StateError("snapshot windows disagree with its account table")
    eng._s.windows.resize(4 * eng._s.nodes.size())
    for which, kind in zip((W_NEW, W_MODIFY, W_CANCEL, W_FILL), state["windows"]):
        for j, runs in enumerate(kind):
            for t, c in runs:
                _window(&eng._s, j, which).append(t, c)
            _window(&eng._s, j, which).recount()
    eng._s.rest_buy.resize(eng._s.slots.size())
    eng._s.rest_sell.resize(eng._s.slots.size())
    eng._s.pending.resize(2 * eng._s.slots.size(), PendingRun(newest=-1, count=0))
    eng._s.order_next.resize(eng._s.orders.size(), -1)
    for j, buys, sells in state["resting"]:
        if not 0 <= j < <i64>eng._s.slots.size():
            raise StateError(f"working orders recorded for unknown slot {j}")
        _load_levels(&eng._s.rest_buy[j], buys, 1)
        _load_levels(&eng._s.rest_sell[j], sells, -1)
    for j in range(eng._s.slots.size()):
        eng._s.slots[j].best_buy = INT64_MIN if eng._s.rest_buy[j].empty() else eng._s.rest_buy[j].best()
        eng._s.slots[j].best_sell = INT64_MIN if eng._s.rest_sell[j].empty() else eng._s.rest_sell[j].best()
    for ((a, b), c), v in state["dup_last"].items():
        dkey.first.first, dkey.first.second, dkey.second = a, b, c
        eng._s.dup_last[dkey] = v
    for t, ((a, b), c) in state["dup_expiry"]:
        dkey.first.first, dkey.first.second, dkey.second = a, b, c
        eng._s.dup_expiry.push_back(pair[i64, DupKey](t, dkey))
    eng._account_names = list(state["accounts"])
    eng._account_ids = {name: i for i, name in enumerate(eng._account_names)}
    eng._symbol_names = list(state["symbols"])
    eng._symbol_ids = {name: i for i, name in enumerate(eng._symbol_names)}
    eng._exec_ids = set(state["exec_ids"])
    eng._exec_ids_before = set(state["exec_ids_before"])
    eng.verify()
    return eng




cdef int _costs_to_micros(RiskEngine eng) except -1:
    # Version 2 kept a position's cost in tick-units; 3 keeps micro-units.
    cdef size_t j
    cdef Slot_t* slot
    cdef i128 cost
    for j in range(eng._s.slots.size()):
        slot = &eng._s.slots[j]
        cost = <i128>slot.cost * eng._s.instruments[slot.symbol].tick_value
        if not -<i128>CAPACITY <= cost <= <i128>CAPACITY:
            raise StateError(f"slot {j}: its cost does not fit the engine's capacity")
        slot.cost = <i64>cost
    return 0


cdef bytes _vector_bytes(const void* data, size_t n, size_t item):
    return (<const char*>data)[:n * item] if n else b""


cdef int _check_references(RiskEngine eng) except -1:
    # Every index stored in one table must point inside the table it names:
    # a snapshot that fails this would read outside memory, not just be wrong.
    cdef size_t j
    cdef i32 nn = <i32>eng._s.nodes.size(), ns = <i32>eng._s.slots.size(), nsym = <i32>eng._s.instruments.size()
    cdef Slot_t* slot
    cdef Order_t* o
    cdef Node_t* nd
    cdef i32 k
    for j in range(eng._s.nodes.size()):
        nd = &eng._s.nodes[j]
        if not (-1 <= nd.parent < nn and 1 <= nd.depth <= MAX_DEPTH):
            raise StateError(f"account {j} has an invalid parent or depth")
        for k in range(nd.depth):
            if not 0 <= nd.path[k] < nn:
                raise StateError(f"account {j} has an invalid path")
    for j in range(eng._s.slots.size()):
        slot = &eng._s.slots[j]
        if not (0 <= slot.node < nn and -1 <= slot.parent_slot < ns):
            raise StateError(f"position slot {j} points outside the tables")
    for j in range(eng._s.orders.size()):
        o = &eng._s.orders[j]
        if not (0 <= o.account < nn and 0 <= o.symbol < nsym and 0 <= o.slot < ns):
            raise StateError(f"order record {j} points outside the tables")
    for j in range(eng._s.events.size()):
        if not 0 <= eng._s.events[j].node < nn:
            raise StateError(f"event {j} names an unknown account")
    return 0


cdef size_t _records(bytes raw, size_t item) except? 0:
    if len(raw) % item:
        raise StateError(f"snapshot table of {len(raw)} bytes is not a whole number of {item}-byte records")
    return len(raw) // item


cdef void _copy_into(void* dst, bytes raw) noexcept:
    if len(raw):
        memcpy(dst, <const char*>raw, len(raw))


cdef list _windows_list(vector[Window]& windows, int which):
    """Runs (time, events) of one kind of window, per node."""
    cdef size_t j, k
    cdef Window* w
    out = []
    for j in range(windows.size() // 4):
        w = &windows[4 * j + which]
        out.append([(w.run(k).first, w.run(k).second) for k in range(w.runs())])
    return out


cdef dict _order_index_dict(OrderIndex& index):
    cdef vector[pair[i64, i32]] pairs = index.items()
    cdef size_t j
    return {pairs[j].first: pairs[j].second for j in range(pairs.size())}


cdef dict _levels_dict(Levels& levels, i64 side):
    """Price key -> count of one side's working orders (snapshots keep plain price keys)."""
    cdef size_t j
    return {_level_key(side, levels.key_at(j)): levels.count_at(j) for j in range(levels.size())}


cdef void _load_levels(Levels* levels, dict counts, i64 side) except *:
    for key, count in counts.items():
        if count <= 0:
            raise StateError(f"working order count {count!r} at price key {key!r} is not positive")
        levels.add(_level_key(side, key), count)
