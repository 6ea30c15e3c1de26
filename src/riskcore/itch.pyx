"""NASDAQ TotalView-ITCH 5.0 decoding.

``decode_into`` walks a buffer of messages framed as NASDAQ's day files,
MoldUDP64 and SoupBinTCP frame them (a 2-byte big-endian length, then the
message) and applies each to an L3 book (:class:`riskcore.book.Book` calls it
with the GIL released). :func:`parse` decodes one message into a named tuple,
through the same field decoder, for tests, notebooks and tools.

Units: timestamps are nanoseconds since midnight (6 bytes on the wire);
prices are the wire's Price(4) integers, 1/10,000 of a dollar
(``PRICE_SCALE``); text fields are ASCII with their space padding stripped.
"""
from collections import namedtuple

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

from riskcore.bookstate cimport (
    BookState, add_order, execute_order, cancel_order, delete_order, replace_order, record_trade,
    set_trading_state, set_directory,
)
from riskcore.errors import MalformedMessageError

PRICE_SCALE = 10_000

# Every ITCH 5.0 message type and its length in bytes (type byte included).
MESSAGE_LENGTHS = {chr(t): message_length(t) for t in range(256) if message_length(t)}
# The types the book applies; the others are decoded, counted and skipped.
BOOK_TYPES = "SRHAFECXDUPQ"

SystemEvent = namedtuple("SystemEvent", "type locate tracking timestamp event_code")
StockDirectory = namedtuple(
    "StockDirectory",
    "type locate tracking timestamp stock market_category financial_status round_lot_size round_lots_only "
    "issue_classification issue_subtype authenticity short_sale_threshold ipo_flag luld_tier etp_flag "
    "etp_leverage inverse")
TradingAction = namedtuple("TradingAction", "type locate tracking timestamp stock state reserved reason")
AddOrder = namedtuple("AddOrder", "type locate tracking timestamp ref side shares stock price attribution")
OrderExecuted = namedtuple("OrderExecuted", "type locate tracking timestamp ref shares match")
OrderExecutedWithPrice = namedtuple(
    "OrderExecutedWithPrice", "type locate tracking timestamp ref shares match printable price")
OrderCancel = namedtuple("OrderCancel", "type locate tracking timestamp ref shares")
OrderDelete = namedtuple("OrderDelete", "type locate tracking timestamp ref")
OrderReplace = namedtuple("OrderReplace", "type locate tracking timestamp ref new_ref shares price")
Trade = namedtuple("Trade", "type locate tracking timestamp ref side shares stock price match")
CrossTrade = namedtuple("CrossTrade", "type locate tracking timestamp shares stock price match cross_type")
OtherMessage = namedtuple("OtherMessage", "type locate tracking timestamp body")

_STATUS_TEXT = {
    SHORT_MESSAGE: "shorter than its type's length",
    UNKNOWN_TYPE: "of an unknown type",
    BAD_FIELD: "has a bad field (side not B or S, zero shares on an add, stock locate 0, or a trading state "
               "not H, P, Q or T)",
}
_STATUS_REASON = {SHORT_MESSAGE: "short_message", UNKNOWN_TYPE: "unknown_type", BAD_FIELD: "bad_field"}


cdef inline void apply_message(BookState* st, const uint8_t* m, Py_ssize_t length) noexcept nogil:
    """Decode one framed message and apply it to the book, or count why not."""
    cdef Message msg
    if length >= 1:
        st.by_type[m[0]] += 1
    cdef Status status = decode_message(m, length, &msg)
    if status != DECODED:
        if status == SHORT_MESSAGE:
            st.counters.short_message += 1
        elif status == UNKNOWN_TYPE:
            st.counters.unknown_type += 1
        else:
            st.counters.bad_field += 1
        return
    cdef uint8_t t = msg.type
    if t == MSG_ADD or t == MSG_ADD_MPID:
        add_order(st, msg.locate, msg.ref, msg.side, <uint32_t>msg.shares, msg.price)
    elif t == MSG_DELETE:
        delete_order(st, msg.ref)
    elif t == MSG_EXECUTED:
        execute_order(st, msg.ref, <uint32_t>msg.shares, 0, True, True, msg.timestamp)
    elif t == MSG_CANCEL:
        cancel_order(st, msg.ref, <uint32_t>msg.shares)
    elif t == MSG_REPLACE:
        replace_order(st, msg.ref, msg.new_ref, <uint32_t>msg.shares, msg.price)
    elif t == MSG_EXECUTED_PRICE:
        # A non-printable execution reduces the order but is not a last sale.
        execute_order(st, msg.ref, <uint32_t>msg.shares, msg.price, False, msg.code == b'Y', msg.timestamp)
    elif t == MSG_TRADE or t == MSG_CROSS_TRADE:
        # P: hidden liquidity, a print and no change to the displayed book.
        # Q: a cross that matched nothing (0 shares) prints no trade, nor does a P of 0.
        if msg.shares > 0:
            record_trade(st, msg.locate, msg.price, msg.shares, msg.timestamp)
    elif t == MSG_TRADING_ACTION:
        set_trading_state(st, msg.locate, msg.code)
    elif t == MSG_STOCK_DIRECTORY:
        set_directory(st, msg.locate, msg.stock)
    elif t == MSG_SYSTEM_EVENT:
        st.event = msg.code
        st.event_time = msg.timestamp
    st.counters.messages += 1
    st.last_timestamp = msg.timestamp


cdef Py_ssize_t decode_into(BookState* st, const uint8_t* buf, Py_ssize_t n, bint final,
                           int64_t until) noexcept nogil:
    """Apply the length-framed messages of buf[0:n] to st; return the bytes consumed.

    Stops at a frame that does not fit in the buffer: with ``final`` that
    frame is counted as truncated and the whole buffer is consumed, otherwise
    the caller keeps the rest for the next buffer. With ``until >= 0`` it also
    stops before the first message stamped later than ``until``.
    """
    cdef Py_ssize_t pos = 0, length
    cdef const uint8_t* m
    while pos + 2 <= n:
        length = read_u16(buf + pos)
        if pos + 2 + length > n:
            break
        m = buf + pos + 2
        if until >= 0 and length >= HEADER_LENGTH and <int64_t>read_u48(m + 5) > until:
            return pos
        apply_message(st, m, length)
        pos += 2 + length
    if final and pos < n:
        st.counters.truncated_frame += 1
        pos = n
    return pos


cdef str _text(const uint8_t* p, Py_ssize_t n):
    return (<bytes>p[:n]).decode("latin-1").rstrip(" ")


def parse(message):
    """Decode one ITCH 5.0 message (its type byte first, no length prefix).

    Parameters
    ----------
    message : bytes-like
        The message; bytes past its type's length are ignored.

    Returns
    -------
    tuple
        A named tuple per type: ``SystemEvent``, ``StockDirectory``,
        ``TradingAction``, ``AddOrder`` (A and F; ``attribution`` is ``""`` for
        A), ``OrderExecuted``, ``OrderExecutedWithPrice``, ``OrderCancel``,
        ``OrderDelete``, ``OrderReplace``, ``Trade``, ``CrossTrade``, and
        ``OtherMessage`` (with the raw ``body`` after the header) for the other
        known types. ``type`` is a one-letter str, prices are Price(4) ints,
        text fields are str without padding.

    Raises
    ------
    MalformedMessageError
        The message is shorter than its type's length, of an unknown type, or
        has a bad field; ``reason`` names which, as in ``Book.counters()``.
    """
    cdef const uint8_t[::1] view = memoryview(message).cast("B")
    cdef Py_ssize_t n = view.shape[0]
    cdef Message msg
    cdef Status status = decode_message(&view[0] if n else NULL, n, &msg)
    if status != DECODED:
        kind = chr(view[0]) if n else ""
        raise MalformedMessageError(
            f"message {kind!r} ({n} bytes) is {_STATUS_TEXT[status]}", _STATUS_REASON[status])
    cdef const uint8_t* m = &view[0]
    t = chr(msg.type)
    head = (t, msg.locate, msg.tracking, msg.timestamp)
    if msg.type == MSG_ADD or msg.type == MSG_ADD_MPID:
        return AddOrder(*head, msg.ref, chr(msg.side), msg.shares, _text(msg.stock, 8), msg.price,
                        _text(m + 36, 4) if msg.type == MSG_ADD_MPID else "")
    if msg.type == MSG_DELETE:
        return OrderDelete(*head, msg.ref)
    if msg.type == MSG_EXECUTED:
        return OrderExecuted(*head, msg.ref, msg.shares, msg.match)
    if msg.type == MSG_CANCEL:
        return OrderCancel(*head, msg.ref, msg.shares)
    if msg.type == MSG_REPLACE:
        return OrderReplace(*head, msg.ref, msg.new_ref, msg.shares, msg.price)
    if msg.type == MSG_EXECUTED_PRICE:
        return OrderExecutedWithPrice(*head, msg.ref, msg.shares, msg.match, chr(msg.code), msg.price)
    if msg.type == MSG_TRADE:
        return Trade(*head, msg.ref, chr(msg.side), msg.shares, _text(msg.stock, 8), msg.price, msg.match)
    if msg.type == MSG_CROSS_TRADE:
        return CrossTrade(*head, msg.shares, _text(msg.stock, 8), msg.price, msg.match, chr(msg.code))
    if msg.type == MSG_TRADING_ACTION:
        return TradingAction(*head, _text(msg.stock, 8), chr(msg.code), chr(m[20]), _text(m + 21, 4))
    if msg.type == MSG_STOCK_DIRECTORY:
        return StockDirectory(
            *head, _text(msg.stock, 8), chr(m[19]), chr(m[20]), read_u32(m + 21), chr(m[25]), chr(m[26]),
            _text(m + 27, 2), chr(m[29]), chr(m[30]), chr(m[31]), chr(m[32]), chr(m[33]), read_u32(m + 34),
            chr(m[38]))
    if msg.type == MSG_SYSTEM_EVENT:
        return SystemEvent(*head, chr(msg.code))
    return OtherMessage(*head, bytes(view[HEADER_LENGTH:message_length(msg.type)]))
