# Message-rate windows and the duplicate-order guard.
#
# Functions over the engine's state (its windows and the guard's map and
# expiry queue), inline and nogil: the check, booking, fills and what-if
# batches call them directly, with no call through the engine's method table.
from cython.operator cimport dereference as deref
from libcpp.map cimport map as cmap
from libcpp.utility cimport pair

from riskcore._types cimport i64, i32, uint8_t, Node_t, CheckResult
from riskcore._types cimport Reason as R
from riskcore.tables cimport Window
from riskcore._state cimport State, DupKey

cdef enum:
    # Which of a node's four sliding windows.
    W_NEW = 0
    W_MODIFY = 1
    W_CANCEL = 2
    W_FILL = 3


cdef inline Window* _window(State* st, i32 node, int which) noexcept nogil:
    """One of a node's sliding windows of events (W_NEW, W_MODIFY, W_CANCEL, W_FILL)."""
    return &st.windows[4 * node + which]


cdef inline DupKey _dup_key(i32 acct, i32 sym, i64 side, i64 q, i64 price_key) noexcept nogil:
    cdef DupKey key
    key.first.first = (<i64>acct << 32) | <i64>sym
    key.first.second = q * 2 + (side > 0)
    key.second = price_key
    return key


cdef inline bint _is_duplicate(State* st, const DupKey* key, i64 now, i64* age) noexcept nogil:
    """True when the same order was accepted less than the guard's window ago (``*age`` says how long)."""
    cdef cmap[DupKey, i64].iterator found = st.dup_last.find(key[0])
    if found == st.dup_last.end():
        return False
    age[0] = now - deref(found).second
    return age[0] < st.dup_window


cdef inline void _remember_order(State* st, const DupKey* key, i64 now) noexcept nogil:
    """Note an accepted order's content, and forget what has left the window (the newest entry always stays)."""
    cdef DupKey old
    cdef cmap[DupKey, i64].iterator found
    st.dup_last[key[0]] = now
    st.dup_expiry.push_back(pair[i64, DupKey](now, key[0]))
    while st.dup_expiry.front().first <= now - st.dup_window:
        old = st.dup_expiry.front().second
        found = st.dup_last.find(old)
        # A later order with the same content owns the entry: it stays.
        if found != st.dup_last.end() and deref(found).second == st.dup_expiry.front().first:
            st.dup_last.erase(found)
        st.dup_expiry.pop_front()


cdef inline void _forget_orders(State* st) noexcept nogil:
    """Take back the entries a what-if batch added (``st.batch_dups``, in order), newest first; empty it."""
    cdef size_t j
    cdef DupKey key
    for j in range(st.batch_dups.size(), 0, -1):
        key = st.batch_dups[j - 1]
        if st.dup_expiry.size() and st.dup_expiry.back().second == key:
            st.dup_expiry.pop_back()
        st.dup_last.erase(key)
    st.batch_dups.clear()


cdef inline uint8_t _count_cancel(State* st, i32 acct, i64 now, CheckResult* r) noexcept nogil:
    """Count a cancel request on every cancel-rate window of the account's path.

    CANCEL_RATE_LIMIT, with nothing counted and the first full window's node,
    count and limit in ``r``, when a node has reached its rate; else OK.
    """
    cdef Node_t* node = &st.nodes[acct]
    cdef Node_t* nd
    cdef i32 k, n
    cdef i64 v
    for k in range(node.depth):
        n = node.path[k]
        nd = &st.nodes[n]
        if nd.limits.cancel_rate_count >= 0:
            v = _window(st, n, W_CANCEL).count(now, nd.limits.cancel_rate_window)
            if v >= nd.limits.cancel_rate_count:
                r.node, r.value, r.limit = n, <double>v, <double>nd.limits.cancel_rate_count
                return R.CANCEL_RATE_LIMIT
    for k in range(node.depth):
        n = node.path[k]
        if st.nodes[n].limits.cancel_rate_count >= 0:
            _window(st, n, W_CANCEL).push(now)
    return R.OK
