# Message-rate windows and the duplicate-order guard.
#
# Functions over the engine's tables (its windows and the guard's map and
# expiry queue), inline and nogil: the check, booking, fills and what-if
# batches call them directly, with no call through the engine's method table.
from cython.operator cimport dereference as deref
from libcpp.deque cimport deque
from libcpp.map cimport map as cmap
from libcpp.utility cimport pair
from libcpp.vector cimport vector

from riskcore._types cimport i64, i32
from riskcore.tables cimport Window
from riskcore._state cimport DupKey

cdef enum:
    # Which of a node's four sliding windows.
    W_NEW = 0
    W_MODIFY = 1
    W_CANCEL = 2
    W_FILL = 3


cdef inline Window* _window(Window* windows, i32 node, int which) noexcept nogil:
    """One of a node's sliding windows of events (W_NEW, W_MODIFY, W_CANCEL, W_FILL)."""
    return &windows[4 * node + which]


cdef inline DupKey _dup_key(i32 acct, i32 sym, i64 side, i64 q, i64 price_key) noexcept nogil:
    cdef DupKey key
    key.first.first = (<i64>acct << 32) | <i64>sym
    key.first.second = q * 2 + (side > 0)
    key.second = price_key
    return key


cdef inline bint _is_duplicate(cmap[DupKey, i64]* last, i64 window, const DupKey* key, i64 now,
                               i64* age) noexcept nogil:
    """True when the same order was accepted less than ``window`` ns ago (``*age`` says how long)."""
    cdef cmap[DupKey, i64].iterator found = last.find(key[0])
    if found == last.end():
        return False
    age[0] = now - deref(found).second
    return age[0] < window


cdef inline void _remember_order(cmap[DupKey, i64]* last, deque[pair[i64, DupKey]]* expiry, i64 window,
                                 const DupKey* key, i64 now) noexcept nogil:
    """Note an accepted order's content, and forget what has left the window (the newest entry always stays)."""
    cdef DupKey old
    cdef cmap[DupKey, i64].iterator found
    deref(last)[key[0]] = now
    expiry.push_back(pair[i64, DupKey](now, key[0]))
    while expiry.front().first <= now - window:
        old = expiry.front().second
        found = last.find(old)
        # A later order with the same content owns the entry: it stays.
        if found != last.end() and deref(found).second == expiry.front().first:
            last.erase(found)
        expiry.pop_front()


cdef inline void _forget_orders(cmap[DupKey, i64]* last, deque[pair[i64, DupKey]]* expiry,
                                vector[DupKey]* added) noexcept nogil:
    """Take back the entries a what-if batch added (``added``, in order), newest first; empty ``added``."""
    cdef size_t j
    cdef DupKey key
    for j in range(added.size(), 0, -1):
        key = deref(added)[j - 1]
        if expiry.size() and expiry.back().second == key:
            expiry.pop_back()
        last.erase(key)
    added.clear()
