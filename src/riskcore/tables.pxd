# The flat tables of tables.h (see there for why they exist).
from libcpp.utility cimport pair
from libcpp.vector cimport vector

from riskcore._types cimport i64, i32

cdef extern from "tables.h" namespace "riskcore" nogil:
    cdef cppclass OrderIndex:
        OrderIndex()
        i32* find(i64 id)
        bint contains(i64 id)
        void set(i64 id, i32 row)
        void reserve_more(size_t more)
        void prefetch(i64 id)
        vector[pair[i64, i32]] items()

    cdef cppclass SlotIndex:
        SlotIndex()
        i32 find(i32 node, i32 symbol)
        void prefetch(i32 node, i32 symbol)
        void add(i32 node, i32 symbol, i32 slot)
        size_t size()

    cdef cppclass Levels:
        Levels()
        void add(i64 key)
        void add(i64 key, i64 count)
        void remove(i64 key)
        bint empty()
        i64 best()
        size_t size()
        i64 key_at(size_t i)
        i64 count_at(size_t i)

    cdef cppclass Window:
        Window()
        i64 count(i64 now, i64 length)
        void push(i64 now)
        void unpush(i64 k)
        void append(i64 time, i64 events)
        size_t runs()
        pair[i64, i64] run(size_t i)
        void recount()

cdef extern from *:
    # Start loading a row into cache: the batch loops overlap their misses this way.
    void prefetch "__builtin_prefetch"(const void* address) nogil
