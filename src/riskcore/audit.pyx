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
from riskcore.bounds cimport CAPACITY
from riskcore.engine cimport RiskEngine, _level_key, _price_key
from riskcore.fixedpoint cimport add_overflows, sub_overflows, money_overflows, positive_part
from riskcore.tables cimport Levels

from riskcore.engine import AGGREGATE_DTYPE as _AGGREGATE_DTYPE, _AGGREGATE_SUMS
from riskcore.errors import StateError


def recompute(RiskEngine self):
    """:meth:`RiskEngine.recompute`: one newest-to-oldest pass over the slots (a parent slot is
    created before its children), every step checked for 64-bit overflow."""
    cdef size_t nn = self._nodes.size(), ns = self._slots.size(), j
    cdef vector[SlotSum]* sums = &self._sums
    cdef vector[uint8_t] leaf = vector[uint8_t](nn, 0)
    columns = {name: np.zeros(nn, dtype=np.int64) for name in _AGGREGATE_SUMS}
    cdef i64[::1] longv = columns["long"], shortv = columns["short"], wb = columns["working_buy"]
    cdef i64[::1] ws = columns["working_sell"], real = columns["realized"], unreal = columns["unrealized"]
    cdef i64[::1] opn = columns["open_orders"]
    cdef Slot_t* slot
    cdef SlotSum* sum
    cdef SlotSum* up
    cdef SlotSum own
    cdef Order_t* o
    cdef Instrument_t* ins
    cdef Py_ssize_t k
    cdef i32 parent, node = -1
    cdef i64 notional, value, tv, long_sum = 0, short_sum = 0, unreal_sum = 0, real_sum = 0
    cdef bint is_leaf = False, overflow = False
    with nogil:
        for j in range(1, nn):
            leaf[j] = self._nodes[j].n_children == 0
        # The engine's own buffer, all zeros between calls: each parent's entry is
        # cleared as it is read, so no call pages in or wipes 24 bytes per slot.
        if sums.size() < ns:
            sums.resize(ns, SlotSum(pos=0, cost=0, realized=0))
        # One read of each slot: by the time a slot is visited, all its children
        # (created after it) have added themselves to it. A leaf has no children.
        # A node's slots mostly come in runs (created one after another): its
        # totals are summed in registers and written once per run.
        for k in range(<Py_ssize_t>ns - 1, -1, -1):
            slot = &self._slots[k]
            if slot.node != node:
                if node >= 0:
                    overflow |= add_overflows(longv[node], long_sum, &longv[node])
                    overflow |= add_overflows(shortv[node], short_sum, &shortv[node])
                    overflow |= add_overflows(unreal[node], unreal_sum, &unreal[node])
                    overflow |= add_overflows(real[node], real_sum, &real[node])
                node = slot.node
                is_leaf = leaf[node]
                long_sum = short_sum = unreal_sum = real_sum = 0
            if is_leaf:
                own.pos, own.cost, own.realized = slot.pos, slot.cost, self._realized[k]
            else:
                own = sums[0][k]
                sums[0][k] = SlotSum(pos=0, cost=0, realized=0)
            sum = &own
            parent = slot.parent_slot
            if parent >= 0:
                up = &sums[0][parent]
                overflow |= add_overflows(up.pos, sum.pos, &up.pos)
                overflow |= add_overflows(up.cost, sum.cost, &up.cost)
                overflow |= add_overflows(up.realized, sum.realized, &up.realized)
            ins = &self._instruments[slot.symbol]
            tv = ins.tick_value
            overflow |= money_overflows(sum.pos, ins.ref, tv, &value)
            # Branch-free: position signs are unpredictable across a book.
            overflow |= add_overflows(long_sum, positive_part(value), &long_sum)
            overflow |= sub_overflows(short_sum, value - positive_part(value), &short_sum)
            if ins.ref > 0:
                overflow |= sub_overflows(value, sum.cost, &value)
                overflow |= add_overflows(unreal_sum, value, &unreal_sum)
            overflow |= add_overflows(real_sum, sum.realized, &real_sum)
        if node >= 0:
            overflow |= add_overflows(longv[node], long_sum, &longv[node])
            overflow |= add_overflows(shortv[node], short_sum, &shortv[node])
            overflow |= add_overflows(unreal[node], unreal_sum, &unreal[node])
            overflow |= add_overflows(real[node], real_sum, &real[node])
        for j in range(self._orders.size()):
            o = &self._orders[j]
            if o.status == OS.WORKING:
                overflow |= money_overflows(o.remaining, o.price, self._instruments[o.symbol].tick_value,
                                            &notional)
                if o.side > 0:
                    overflow |= add_overflows(wb[o.account], notional, &wb[o.account])
                else:
                    overflow |= add_overflows(ws[o.account], notional, &ws[o.account])
                opn[o.account] += 1
        # A parent node is created before its children: the same newest-first pass.
        for k in range(<Py_ssize_t>nn - 1, 0, -1):
            parent = self._nodes[k].parent
            overflow |= add_overflows(wb[parent], wb[k], &wb[parent])
            overflow |= add_overflows(ws[parent], ws[k], &ws[parent])
            opn[parent] += opn[k]
    if overflow:
        raise StateError("an aggregate recomputes past 64 bits: the state is past the engine's capacity")
    for name in ("long", "short", "unrealized", "realized", "working_buy", "working_sell"):
        column = columns[name]
        outside = np.nonzero((column > CAPACITY) | (column < -CAPACITY))[0]
        if outside.size:
            raise StateError(f"aggregate {name} of {self._account_names[outside[0]]!r} recomputes to "
                             f"{int(column[outside[0]])} micro-units, past the engine's capacity")
    return self._fill_aggregates(np.zeros(nn, dtype=_AGGREGATE_DTYPE), columns)



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
    for j in range(self._orders.size()):
        o = &self._orders[j]
        if o.status == OS.WORKING:
            levels = working.setdefault((o.slot, o.side), {})
            key = _level_key(o.side, _price_key(o.side, o.price, o.market))
            levels[key] = levels.get(key, 0) + 1
    for j in range(self._pending.size()):
        s, side = j // 2, (1 if j % 2 == 0 else -1)
        book, run, held = self._resting_side(s, side), &self._pending[j], {}
        for k in range(book.size()):
            held[book.key_at(k)] = book.count_at(k)
        row = run.newest
        for k in range(run.count):
            o = &self._orders[row]
            key = _level_key(side, _price_key(side, o.price, o.market))
            held[key] = held.get(key, 0) + 1
            row = self._order_next[row]
        best = self._slots[s].best_buy if side > 0 else self._slots[s].best_sell
        where = (f"{'buy' if side > 0 else 'sell'} side of {self._account_names[self._slots[s].node]!r} in "
                 f"{self._symbol_names[self._slots[s].symbol]!r}")
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

