# NASDAQ TotalView-ITCH 5.0: field readers, message lengths and the one
# decoder of a message's fields, shared by the buffer walk (itch.pyx) and the
# Python parse(); the offsets below are the spec's (section 4, "Message
# Formats"), each message starting at its type byte.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy

from riskcore.bookstate cimport BookState

cdef extern from *:
    uint16_t bswap16 "__builtin_bswap16"(uint16_t x) nogil
    uint32_t bswap32 "__builtin_bswap32"(uint32_t x) nogil
    uint64_t bswap64 "__builtin_bswap64"(uint64_t x) nogil


# All integers on the wire are unsigned big-endian (spec 1.1, "Data Types").
cdef inline uint16_t read_u16(const uint8_t* p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return bswap16(v)


cdef inline uint32_t read_u32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return bswap32(v)


cdef inline uint64_t read_u64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return bswap64(v)


cdef inline uint64_t read_u48(const uint8_t* p) noexcept nogil:
    # Timestamp: 6 bytes, nanoseconds since midnight.
    return (<uint64_t>read_u16(p) << 32) | read_u32(p + 2)


cdef enum:
    HEADER_LENGTH = 11      # type 1 | stock locate 2 | tracking number 2 | timestamp 6


# Message types (the type byte) the book applies.
cdef enum:
    MSG_SYSTEM_EVENT = 83           # 'S'
    MSG_STOCK_DIRECTORY = 82        # 'R'
    MSG_TRADING_ACTION = 72         # 'H'
    MSG_ADD = 65                    # 'A'
    MSG_ADD_MPID = 70               # 'F'
    MSG_EXECUTED = 69               # 'E'
    MSG_EXECUTED_PRICE = 67         # 'C'
    MSG_CANCEL = 88                 # 'X'
    MSG_DELETE = 68                 # 'D'
    MSG_REPLACE = 85                # 'U'
    MSG_TRADE = 80                  # 'P'
    MSG_CROSS_TRADE = 81            # 'Q'


# What decode_message found.
cdef enum Status:
    DECODED = 0
    SHORT_MESSAGE = 1       # shorter than its type's length
    UNKNOWN_TYPE = 2
    BAD_FIELD = 3           # side not B/S, zero shares on an add, stock locate 0 on a stock message,
                            # a trading state not H/P/Q/T


# The fields of one message; which are set depends on the type.
ctypedef struct Message:
    uint8_t type
    uint16_t locate
    uint16_t tracking
    uint64_t timestamp
    uint64_t ref            # order reference (U: the original)
    uint64_t new_ref        # U
    uint64_t shares         # 8 bytes on the wire only in Q
    uint64_t match          # match number (E, C, P, Q)
    uint32_t price          # Price(4)
    uint8_t side            # A, F, P: 'B' or 'S'
    uint8_t code            # S event code, H trading state, C printable, Q cross type
    const uint8_t* stock    # 8 space-padded bytes in the message (R, H, A, F, P, Q), else NULL


cdef inline int message_length(uint8_t t) noexcept nogil:
    """The ITCH 5.0 length of a message of type t (type byte included), 0 for an unknown type."""
    if t == b'S': return 12
    if t == b'R': return 39
    if t == b'H': return 25
    if t == b'Y': return 20
    if t == b'L': return 26
    if t == b'V': return 35
    if t == b'W': return 12
    if t == b'K': return 28
    if t == b'J': return 35
    if t == b'h': return 21
    if t == b'A': return 36
    if t == b'F': return 40
    if t == b'E': return 31
    if t == b'C': return 36
    if t == b'X': return 23
    if t == b'D': return 19
    if t == b'U': return 35
    if t == b'P': return 44
    if t == b'Q': return 40
    if t == b'B': return 19
    if t == b'I': return 50
    if t == b'N': return 20
    if t == b'O': return 48
    return 0


cdef inline Status decode_message(const uint8_t* m, Py_ssize_t length, Message* out) noexcept nogil:
    """Read the fields of the message at m (length bytes from its type byte) into out.

    A message longer than its type's length is decoded from its first bytes
    (the framing says where the next one starts).
    """
    if length < 1:
        return SHORT_MESSAGE
    cdef uint8_t t = m[0]
    cdef int need = message_length(t)
    out.type = t
    if need == 0:
        return UNKNOWN_TYPE
    if length < need:
        return SHORT_MESSAGE
    out.locate = read_u16(m + 1)
    out.tracking = read_u16(m + 3)
    out.timestamp = read_u48(m + 5)
    out.stock = NULL
    if t == MSG_ADD or t == MSG_ADD_MPID:
        out.ref = read_u64(m + 11)
        out.side = m[19]
        out.shares = read_u32(m + 20)
        out.stock = m + 24
        out.price = read_u32(m + 32)
        if (out.side != b'B' and out.side != b'S') or out.shares == 0 or out.locate == 0:
            return BAD_FIELD
    elif t == MSG_DELETE:
        out.ref = read_u64(m + 11)
    elif t == MSG_EXECUTED:
        out.ref = read_u64(m + 11)
        out.shares = read_u32(m + 19)
        out.match = read_u64(m + 23)
    elif t == MSG_CANCEL:
        out.ref = read_u64(m + 11)
        out.shares = read_u32(m + 19)
    elif t == MSG_REPLACE:
        out.ref = read_u64(m + 11)
        out.new_ref = read_u64(m + 19)
        out.shares = read_u32(m + 27)
        out.price = read_u32(m + 31)
        if out.shares == 0:
            return BAD_FIELD
    elif t == MSG_EXECUTED_PRICE:
        out.ref = read_u64(m + 11)
        out.shares = read_u32(m + 19)
        out.match = read_u64(m + 23)
        out.code = m[31]
        out.price = read_u32(m + 32)
    elif t == MSG_TRADE:
        out.ref = read_u64(m + 11)
        out.side = m[19]
        out.shares = read_u32(m + 20)
        out.stock = m + 24
        out.price = read_u32(m + 32)
        out.match = read_u64(m + 36)
        if (out.side != b'B' and out.side != b'S') or out.locate == 0:
            return BAD_FIELD
    elif t == MSG_CROSS_TRADE:
        out.shares = read_u64(m + 11)
        out.stock = m + 19
        out.price = read_u32(m + 27)
        out.match = read_u64(m + 31)
        out.code = m[39]
        if out.locate == 0:
            return BAD_FIELD
    elif t == MSG_TRADING_ACTION:
        out.stock = m + 11
        out.code = m[19]
        if out.locate == 0 or (out.code != b'H' and out.code != b'P' and out.code != b'Q' and out.code != b'T'):
            return BAD_FIELD
    elif t == MSG_STOCK_DIRECTORY:
        out.stock = m + 11
        if out.locate == 0:
            return BAD_FIELD
    elif t == MSG_SYSTEM_EVENT:
        out.code = m[11]
    return DECODED


cdef Py_ssize_t decode_into(BookState* st, const uint8_t* buf, Py_ssize_t n, bint final,
                           int64_t until) noexcept nogil
