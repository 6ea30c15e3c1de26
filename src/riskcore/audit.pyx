"""Audit of an engine: every aggregate rebuilt from scratch, and the proof that the kept ones agree.

``recompute`` sums the leaves and working orders with no use of the
incremental totals, checking every step for 64-bit overflow; ``verify``
compares the two, and each slot side's price levels with its working orders.
Recovery runs it after every restore.
"""
import numpy as np

from libcpp.vector cimport vector

from riskcore._types cimport i64, i32, uint8_t, INT64_MIN, Slot_t, Order_t, Instrument_t, SlotSum, PendingRun
from riskcore._types cimport OrderStatus as OS
from riskcore.bounds cimport CAPACITY, within
from riskcore.engine cimport RiskEngine
from riskcore.views cimport _aggregate_table
from riskcore._booking cimport _level_key, _price_key, _resting_side
from riskcore.fixedpoint cimport add_overflows, sub_overflows, money_overflows, positive_part
from riskcore.tables cimport Levels

from riskcore.views import _AGGREGATE_SUMS
from riskcore.errors import StateError
from riskcore.records import AGGREGATE_DTYPE as _AGGREGATE_DTYPE


ctypedef struct RunSum:
    # One run of a node's slots: the sums it adds to the node's totals.
    i64 long_
    i64 short
    i64 unrealized
    i64 realized

cdef enum:
    RUN_OVERFLOW = -2       # _carry_run's answer when a step overflows (runs end at index -1 or more)


cdef inline Py_ssize_t _carry_run(Slot_t* slots, const i64* realized_of, SlotSum* sums,
                                  const Instrument_t* instruments, Py_ssize_t k, bint leaf,
                                  RunSum* run) noexcept nogil:
    """Carry the run of one node's slots that ends at ``k`` (newest first) up to the parent slots
    and sum their values into ``*run``; the index before the run, or RUN_OVERFLOW.

    A leaf's totals are its slot's; a parent's, what its children carried up
    (cleared as read). Called with a constant ``leaf``: each case compiles to
    its own loop. Every step branches out on the overflow flag.
    """
    cdef i32 node = slots[k].node, parent
    cdef i64 pos, cost, realized, value, long_sum = 0, short_sum = 0, unreal_sum = 0, real_sum = 0
    cdef Slot_t* slot
    cdef SlotSum* up
    cdef const Instrument_t* ins
    while k >= 0 and slots[k].node == node:
        slot = &slots[k]
        if leaf:
            pos, cost, realized = slot.pos, slot.cost, realized_of[k]
        else:
            pos, cost, realized = sums[k].pos, sums[k].cost, sums[k].realized
            sums[k].pos = sums[k].cost = sums[k].realized = 0
        parent = slot.parent_slot
        if parent >= 0:
            up = &sums[parent]
            if (add_overflows(up.pos, pos, &up.pos) or add_overflows(up.cost, cost, &up.cost)
                    or add_overflows(up.realized, realized, &up.realized)):
                return RUN_OVERFLOW
        ins = &instruments[slot.symbol]
        # Branch-free sides: position signs are unpredictable across a book.
        if (money_overflows(pos, ins.ref, ins.tick_value, &value)
                or add_overflows(long_sum, positive_part(value), &long_sum)
                or sub_overflows(short_sum, value - positive_part(value), &short_sum)
                or (ins.ref > 0 and (sub_overflows(value, cost, &value)
                                     or add_overflows(unreal_sum, value, &unreal_sum)))
                or add_overflows(real_sum, realized, &real_sum)):
            return RUN_OVERFLOW
        k -= 1
    run.long_, run.short, run.unrealized, run.realized = long_sum, short_sum, unreal_sum, real_sum
    return k


cdef inline bint _add_run(i64* longv, i64* shortv, i64* unreal, i64* real, i32 node, const RunSum* run) noexcept nogil:
    """Add a run of one node's slots to its totals; True when a sum overflows."""
    return (add_overflows(longv[node], run.long_, &longv[node])
            or add_overflows(shortv[node], run.short, &shortv[node])
            or add_overflows(unreal[node], run.unrealized, &unreal[node])
            or add_overflows(real[node], run.realized, &real[node]))




def recompute(RiskEngine self):
    """:meth:`RiskEngine.recompute`: one newest-to-oldest pass over the slots (a parent slot is
    created before its children), every step checked for 64-bit overflow."""
    cdef size_t nn = self._s.nodes.size(), ns = self._s.slots.size(), j
    cdef vector[uint8_t] leaf = vector[uint8_t](nn, 0)
    columns = {name: np.zeros(nn, dtype=np.int64) for name in _AGGREGATE_SUMS}
    cdef i64[::1] longv = columns["long"], shortv = columns["short"], wb = columns["working_buy"]
    cdef i64[::1] ws = columns["working_sell"], real = columns["realized"], unreal = columns["unrealized"]
    cdef i64[::1] opn = columns["open_orders"]
    cdef Slot_t* slots
    cdef SlotSum* sums
    cdef Instrument_t* instruments
    cdef const i64* realized_of
    cdef RunSum run
    cdef Order_t* o
    cdef Instrument_t* ins
    cdef Py_ssize_t k
    cdef i32 parent, node = -1
    cdef i64 notional
    cdef bint overflow = False, outside = False
    with nogil:
        for j in range(1, nn):
            leaf[j] = self._s.nodes[j].n_children == 0
        # The engine's own buffer, all zeros between calls: each parent's entry is
        # cleared as it is read, so no call pages in or wipes 24 bytes per slot.
        if self._s.sums.size() < ns:
            self._s.sums.resize(ns, SlotSum(pos=0, cost=0, realized=0))
        sums = self._s.sums.data()
        # One read of each slot: by the time a slot is visited, all its children
        # (created after it) have added themselves to it. A leaf has no children.
        # A node's slots mostly come in runs (created one after another): each run
        # is summed in registers by a loop of its own, leaf or parent, and added
        # to the node's totals once.
        slots, instruments, realized_of = self._s.slots.data(), self._s.instruments.data(), self._s.realized.data()
        k = <Py_ssize_t>ns - 1
        while k >= 0:
            node = slots[k].node
            if leaf[node]:
                k = _carry_run(slots, realized_of, sums, instruments, k, True, &run)
            else:
                k = _carry_run(slots, realized_of, sums, instruments, k, False, &run)
            if k == RUN_OVERFLOW or _add_run(&longv[0], &shortv[0], &unreal[0], &real[0], node, &run):
                overflow = True
                break
        if overflow:
            for j in range(ns):
                sums[j] = SlotSum(pos=0, cost=0, realized=0)
        for j in range(self._s.orders.size()):
            o = &self._s.orders[j]
            if o.status == OS.WORKING:
                overflow |= money_overflows(o.remaining, o.price, self._s.instruments[o.symbol].tick_value,
                                            &notional)
                if o.side > 0:
                    overflow |= add_overflows(wb[o.account], notional, &wb[o.account])
                else:
                    overflow |= add_overflows(ws[o.account], notional, &ws[o.account])
                opn[o.account] += 1
        # A parent node is created before its children: the same newest-first pass.
        for k in range(<Py_ssize_t>nn - 1, 0, -1):
            parent = self._s.nodes[k].parent
            overflow |= add_overflows(wb[parent], wb[k], &wb[parent])
            overflow |= add_overflows(ws[parent], ws[k], &ws[parent])
            opn[parent] += opn[k]
        for j in range(nn):
            outside |= not (within(longv[j]) and within(shortv[j]) and within(unreal[j]) and within(real[j])
                            and within(wb[j]) and within(ws[j]))
    if overflow:
        raise StateError("an aggregate recomputes past 64 bits: the state is past the engine's capacity")
    for name in ("long", "short", "unrealized", "realized", "working_buy", "working_sell") if outside else ():
        column = columns[name]
        past = np.nonzero((column > CAPACITY) | (column < -CAPACITY))[0]
        if past.size:
            raise StateError(f"aggregate {name} of {self._account_names[past[0]]!r} recomputes to "
                             f"{int(column[past[0]])} micro-units, past the engine's capacity")
    return _aggregate_table(self, columns)


def verify(RiskEngine self):
    """:meth:`RiskEngine.verify`: price levels against working orders, then kept against recomputed."""
    cdef size_t j, k
    cdef Order_t* o
    cdef PendingRun* run
    cdef Levels* book
    cdef i32 row
    # Each slot side's price levels and pending run hold exactly its working
    # orders, and the row's best price is the best of them.
    working = {}
    for j in range(self._s.orders.size()):
        o = &self._s.orders[j]
        if o.status == OS.WORKING:
            levels = working.setdefault((o.slot, o.side), {})
            key = _level_key(o.side, _price_key(o.side, o.price, o.market))
            levels[key] = levels.get(key, 0) + 1
    for j in range(self._s.pending.size()):
        s, side = j // 2, (1 if j % 2 == 0 else -1)
        book, run, held = _resting_side(&self._s, s, side), &self._s.pending[j], {}
        for k in range(book.size()):
            held[book.key_at(k)] = book.count_at(k)
        row = run.newest
        for k in range(run.count):
            o = &self._s.orders[row]
            key = _level_key(side, _price_key(side, o.price, o.market))
            held[key] = held.get(key, 0) + 1
            row = self._s.order_next[row]
        best = self._s.slots[s].best_buy if side > 0 else self._s.slots[s].best_sell
        where = (f"{'buy' if side > 0 else 'sell'} side of {self._account_names[self._s.slots[s].node]!r} in "
                 f"{self._symbol_names[self._s.slots[s].symbol]!r}")
        if held != working.get((s, side), {}):
            raise StateError(f"price levels of the {where} differ from its working orders")
        if best != (max(held) if held else INT64_MIN):
            raise StateError(f"best working price of the {where} differs from its price levels")
    kept, fresh = self.aggregates(), self.recompute()
    for field in _AGGREGATE_DTYPE.names:
        diff = np.nonzero(kept[field] != fresh[field])[0]
        if diff.size:
            j = int(diff[0])
            raise StateError(f"aggregate {field} of {self._account_names[j]!r}: kept "
                             f"{kept[field][j]} != recomputed {fresh[field][j]}")
    return True

