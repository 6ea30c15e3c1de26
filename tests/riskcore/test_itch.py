"""The ITCH 5.0 decoder against messages built by hand from the spec (itch_bytes.py).

``parse`` is checked field by field; the buffer walk (``Book.feed`` and
``feed_chunk``) for framing: unknown types skipped by their length, short and
truncated frames counted, never a crash on any input.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.riskcore import itch_bytes as ib
from riskcore import Book, MalformedMessageError
from riskcore import itch

SPEC_LENGTHS = {"S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35, "h": 21,
                "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44, "Q": 40, "B": 19,
                "I": 50, "N": 20, "O": 48}
TS = 34_200_000_000_123          # 09:30:00.000000123 in ns since midnight
MAX_TS = 2**48 - 1


def test_message_lengths_are_the_specs_23_types():
    assert itch.MESSAGE_LENGTHS == SPEC_LENGTHS


@pytest.mark.parametrize("message, kind", [
    (ib.system_event(b"O"), "S"), (ib.stock_directory(1, "ACME"), "R"), (ib.trading_action(1, "ACME", b"H"), "H"),
    (ib.add(1, b"B", 100, 10_000), "A"), (ib.add(1, b"B", 100, 10_000, mpid=b"GSCO"), "F"),
    (ib.executed(1, 10), "E"), (ib.executed_with_price(1, 10, 10_000), "C"), (ib.cancel(1, 10), "X"),
    (ib.delete(1), "D"), (ib.replace(1, 2, 10, 10_000), "U"), (ib.trade(10, 10_000), "P"),
    (ib.cross(10, 10_000), "Q"), (ib.broken_trade(5), "B"),
])
def test_hand_built_messages_have_the_spec_length(message, kind):
    assert chr(message[0]) == kind and len(message) == SPEC_LENGTHS[kind]


# ------------------------------------------------------------------ parse, type by type

def test_parse_system_event():
    assert itch.parse(ib.system_event(b"Q", ts=TS, tracking=7)) == ("S", 0, 7, TS, "Q")


def test_parse_stock_directory_reads_every_field():
    m = itch.parse(ib.stock_directory(42, "BRK A", ts=TS, round_lot=10))
    assert m == itch.StockDirectory("R", 42, 0, TS, "BRK A", "Q", "N", 10, "N", "C", "Z", "P", "N", "N", "1", "N",
                                    0, "N")


def test_parse_trading_action():
    assert itch.parse(ib.trading_action(3, "ZZZ", b"H", ts=TS, reason=b"LUDP")) == \
        itch.TradingAction("H", 3, 0, TS, "ZZZ", "H", " ", "LUDP")


def test_parse_add_order_without_and_with_mpid():
    assert itch.parse(ib.add(2**63 + 5, b"S", 4_000_000_000, 2_000_000_000, locate=9, name="ACME", ts=TS)) == \
        itch.AddOrder("A", 9, 0, TS, 2**63 + 5, "S", 4_000_000_000, "ACME", 2_000_000_000, "")
    assert itch.parse(ib.add(5, b"B", 100, 1_234_500, mpid=b"GSCO")).attribution == "GSCO"


def test_parse_executions_cancel_delete_replace():
    assert itch.parse(ib.executed(77, 300, match=2**64 - 1, ts=TS)) == \
        itch.OrderExecuted("E", 1, 0, TS, 77, 300, 2**64 - 1)
    assert itch.parse(ib.executed_with_price(77, 300, 1_999_900, b"N", match=8)) == \
        itch.OrderExecutedWithPrice("C", 1, 0, 0, 77, 300, 8, "N", 1_999_900)
    assert itch.parse(ib.cancel(77, 25)) == itch.OrderCancel("X", 1, 0, 0, 77, 25)
    assert itch.parse(ib.delete(77, ts=MAX_TS)) == itch.OrderDelete("D", 1, 0, MAX_TS, 77)
    assert itch.parse(ib.replace(77, 78, 500, 2_000_100)) == itch.OrderReplace("U", 1, 0, 0, 77, 78, 500, 2_000_100)


def test_parse_trade_and_cross_trade():
    assert itch.parse(ib.trade(250, 1_000_100, side=b"S", match=9, ts=TS)) == \
        itch.Trade("P", 1, 0, TS, 0, "S", 250, "ACME", 1_000_100, 9)
    # Cross shares are 8 bytes on the wire.
    assert itch.parse(ib.cross(2**40, 1_000_000, b"C", match=10)) == \
        itch.CrossTrade("Q", 1, 0, 0, 2**40, "ACME", 1_000_000, 10, "C")


def test_parse_other_known_types_returns_the_body():
    m = itch.parse(ib.broken_trade(123456))
    assert m == itch.OtherMessage("B", 1, 0, 0, struct.pack(">Q", 123456))


def test_timestamp_is_six_bytes_of_nanoseconds():
    assert itch.parse(ib.system_event(b"C", ts=MAX_TS)).timestamp == MAX_TS


def test_parse_ignores_bytes_past_the_type_length():
    assert itch.parse(ib.delete(5) + b"extra") == itch.OrderDelete("D", 1, 0, 0, 5)


@pytest.mark.parametrize("message, reason", [
    (b"", "short_message"), (ib.add(1, b"B", 1, 1)[:-1], "short_message"), (b"Z" + bytes(30), "unknown_type"),
    (ib.add(1, b"X", 1, 1), "bad_field"), (ib.add(1, b"B", 0, 1), "bad_field"),
    (ib.add(1, b"B", 1, 1, locate=0), "bad_field"), (ib.replace(1, 2, 0, 1), "bad_field"),
    (ib.trading_action(0, "ACME", b"H"), "bad_field"), (ib.trading_action(1, "ACME", b"x"), "bad_field"),
    (ib.trade(1, 1, side=b"?"), "bad_field"),
])
def test_parse_of_a_malformed_message_raises_with_the_counter_name(message, reason):
    with pytest.raises(MalformedMessageError) as raised:
        itch.parse(message)
    assert raised.value.reason == reason
    assert isinstance(raised.value, ValueError)


# ------------------------------------------------------------------ the buffer walk

def book_of(*messages: bytes) -> Book:
    book = Book()
    book.feed(ib.frame(*messages))
    return book


def test_unknown_type_is_skipped_by_its_framed_length():
    book = book_of(ib.add(1, b"B", 100, 10_000), b"z" + bytes(60), ib.add(2, b"S", 50, 10_100))

    assert book.counters()["unknown_type"] == 1
    assert book.counters()["messages"] == 2
    assert book.top(1) == (10_000, 100, 10_100, 50, None)
    assert book.message_counts() == {"A": 2, "z": 1}


def test_known_types_the_book_does_not_use_are_decoded_and_counted_as_messages():
    others = [k.encode() + bytes(n - 1) for k, n in SPEC_LENGTHS.items() if k not in itch.BOOK_TYPES]
    book = book_of(*others)

    assert book.counters()["messages"] == len(others) == 11
    assert sum(book.counters().values()) == len(others)


@pytest.mark.parametrize("kind", sorted(SPEC_LENGTHS))
def test_a_message_one_byte_shorter_than_its_type_is_counted_and_skipped(kind):
    short = kind.encode() + bytes(SPEC_LENGTHS[kind] - 2)
    book = book_of(short, ib.add(1, b"B", 100, 10_000))

    assert book.counters()["short_message"] == 1
    assert book.counters()["messages"] == 1
    assert book.top(1).bid_size == 100


def test_an_empty_frame_is_a_short_message():
    book = Book()
    book.feed(b"\x00\x00" + ib.frame(ib.add(1, b"B", 100, 10_000)))
    assert book.counters()["short_message"] == 1 and book.orders == 1


def test_a_frame_cut_off_at_the_end_of_a_buffer_is_counted_once():
    stream = ib.frame(ib.add(1, b"B", 100, 10_000), ib.add(2, b"B", 100, 10_000))
    book = Book()

    assert book.feed(stream[:-5]) == 1
    assert book.counters()["truncated_frame"] == 1
    assert book.orders == 1

    book.feed(b"\x00")                   # a lone length byte is a cut-off frame too
    assert book.counters()["truncated_frame"] == 2


def test_a_longer_message_than_its_type_is_decoded_from_its_first_bytes():
    book = book_of(ib.add(1, b"B", 100, 10_000) + b"future field")
    assert book.counters()["messages"] == 1 and book.top(1).bid_price == 10_000


def test_feed_chunk_leaves_an_incomplete_frame_for_the_next_chunk():
    stream = ib.frame(ib.add(1, b"B", 100, 10_000), ib.add(2, b"S", 100, 10_100))
    book = Book()

    consumed = book.feed_chunk(stream[:45])
    assert consumed == 38                 # the first frame: 2 + 36
    assert book.feed_chunk(stream[consumed:]) == len(stream) - consumed
    assert book.counters()["truncated_frame"] == 0
    assert book.top(1) == (10_000, 100, 10_100, 100, None)


def test_feed_chunk_until_stops_before_the_first_later_message():
    stream = ib.frame(ib.add(1, b"B", 100, 10_000, ts=100), ib.add(2, b"B", 100, 10_000, ts=200),
                      ib.add(3, b"B", 100, 10_000, ts=300))
    book = Book()

    assert book.feed_chunk(stream, until=200) == 2 * 38
    assert book.orders == 2 and book.last_timestamp == 200
    assert book.feed_chunk(stream[76:], until=10**15) == 38


def test_splitting_a_stream_anywhere_gives_the_same_book():
    messages = [ib.stock_directory(1, "ACME"), ib.add(1, b"B", 100, 10_000), ib.add(2, b"S", 70, 10_200),
                ib.executed(1, 30), ib.replace(2, 3, 40, 10_100), ib.cancel(3, 10), ib.trade(5, 10_050)]
    stream = ib.frame(*messages)
    whole = book_of(*messages)
    for cut in range(len(stream) + 1):
        book = Book()
        consumed = book.feed_chunk(stream[:cut])
        book.feed(stream[consumed:])
        assert book.top("ACME") == whole.top("ACME"), cut
        assert book.counters() == whole.counters(), cut


@pytest.mark.parametrize("make", [
    bytes, bytearray, lambda b: memoryview(b), lambda b: memoryview(bytearray(b)).toreadonly(),
    lambda b: np.frombuffer(b, dtype=np.uint8),
    lambda b: _readonly(np.frombuffer(bytearray(b), dtype=np.uint8)),
])
def test_feed_takes_any_contiguous_byte_buffer_read_only_included(make):
    book = Book()
    assert book.feed(make(ib.frame(ib.add(1, b"B", 100, 10_000)))) == 1
    assert book.top(1).bid_size == 100


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("bad", ["text", np.zeros(4, dtype=np.int64), np.zeros(8, dtype=np.uint8)[::2], 5])
def test_feed_of_something_that_is_not_contiguous_bytes_is_a_type_error(bad):
    with pytest.raises(TypeError):
        Book().feed(bad)


def test_an_empty_buffer_decodes_nothing():
    book = Book()
    assert book.feed(b"") == 0 and book.feed_chunk(b"") == 0
    assert sum(book.counters().values()) == 0


# ------------------------------------------------------------------ fuzz

def complete_frames(data: bytes) -> tuple[int, bool]:
    """(complete frames, whether a cut-off frame follows them), by an independent walk."""
    pos = frames = 0
    while pos + 2 <= len(data):
        n = struct.unpack_from(">H", data, pos)[0]
        if pos + 2 + n > len(data):
            break
        frames += 1
        pos += 2 + n
    return frames, pos < len(data)


def account(book: Book, data: bytes) -> None:
    c = book.counters()
    frames, cut = complete_frames(data)
    assert c["messages"] + c["unknown_type"] + c["short_message"] + c["bad_field"] == frames
    assert c["truncated_frame"] == int(cut)


@settings(derandomize=True, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash_and_every_frame_is_counted(data):
    book = Book()
    book.feed(data)
    account(book, data)
    book.marks()
    for name in book.symbols():
        book.top(name)
        book.depth(name, 5)


# Frames whose type byte is a real one, so the fuzz reaches the field decoders.
_kinds = st.sampled_from(sorted(SPEC_LENGTHS) + ["z"])
_frames = st.builds(lambda k, body: k.encode() + body, _kinds, st.binary(max_size=60))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.lists(_frames, max_size=40), st.integers(0, 5))
def test_frames_of_real_types_with_random_bodies_never_crash(messages, cut):
    data = ib.frame(*messages)
    data = data[:len(data) - cut] if cut else data
    book = Book()
    book.feed(data)
    account(book, data)
