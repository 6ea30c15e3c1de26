"""The compiled MoldUDP64 receive loop (``_udp``) on real loopback sockets.

Every datagram is sent before ``receive`` is called, so one ``recvmmsg``
sees them all and what the loop does with each is decided, not timed.
"""
from __future__ import annotations

import socket
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcore import Book
from riskcore_services.ingest import moldudp64 as mold
from riskcore_services.ingest._udp import PacketReceiver, send_datagrams
from riskcore_services.ingest.simulate import split_messages

from .model import books_equal

SESSION = mold.session_bytes("UDPTEST")
WAIT = 2.0        # seconds for datagrams already sent to show up (they are there at once on loopback)


@pytest.fixture
def link():
    """(receiving socket, sending socket connected to it)."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    yield rx, tx
    rx.close()
    tx.close()


def packets_of(messages: list[bytes], per_packet: int = 40) -> list[tuple[int, list[bytes]]]:
    return [(i + 1, messages[i:i + per_packet]) for i in range(0, len(messages), per_packet)]


def receive_all(receiver: PacketReceiver, book: Book, expected: int, in_sequence: bool = True):
    return receiver.receive(book, SESSION, expected, in_sequence, max_packets=100_000, wait=WAIT, budget=0.05)


def test_packets_in_sequence_are_applied_and_the_first_out_of_sequence_goes_back_with_those_after_it(
        link, small_day):
    rx, tx = link
    messages = split_messages(small_day)
    packets = packets_of(messages[:400])          # 10 packets
    datagrams = [mold.encode_packet(SESSION, seq, batch) for seq, batch in packets]
    for d in datagrams[:4] + datagrams[5:]:       # packet 5 is lost
        tx.send(d)
    book = Book()
    got = receive_all(PacketReceiver(rx.fileno()), book, 1)

    assert (got.expected, got.packets, got.messages, got.malformed) == (161, 4, 160, 0)
    assert got.others == datagrams[5:]
    assert book.counters()["messages"] == 160
    assert got.first_timestamp == int.from_bytes(messages[0][5:11], "big")
    assert got.received_ns > 0


def test_the_receiver_fed_in_pieces_builds_the_book_of_one_feed(link, small_day):
    rx, tx = link
    messages = split_messages(small_day)
    receiver, book, expected = PacketReceiver(rx.fileno(), batch=8), Book(), 1
    for k, (seq, batch) in enumerate(packets_of(messages)):
        tx.send(mold.encode_packet(SESSION, seq, batch))
        if k % 100 == 99:                          # drain now and then, so the socket never overflows
            expected = receive_all(receiver, book, expected).expected
    while expected <= len(messages):
        got = receive_all(receiver, book, expected)
        assert not got.others
        expected = got.expected
    whole = Book()
    whole.feed(small_day)
    assert books_equal(book, whole)


def test_heartbeats_duplicates_and_end_of_session(link):
    rx, tx = link
    ping = b"S" + bytes(10) + b"O"
    tx.send(mold.encode_packet(SESSION, 1, [ping, ping]))
    tx.send(mold.encode_heartbeat(SESSION, 3))             # at the expected sequence: nothing missing
    tx.send(mold.encode_packet(SESSION, 1, [ping]))        # already applied
    tx.send(mold.encode_heartbeat(SESSION, 5))             # ahead: messages 3 and 4 are missing
    tx.send(mold.encode_end_of_session(SESSION, 5))
    got = receive_all(PacketReceiver(rx.fileno()), Book(), 1)
    assert (got.expected, got.packets, got.messages, got.heartbeats, got.duplicates) == (3, 3, 2, 1, 1)
    assert got.others == [mold.encode_heartbeat(SESSION, 5), mold.encode_end_of_session(SESSION, 5)]


def test_while_the_sequencer_recovers_every_datagram_goes_back_to_it(link):
    rx, tx = link
    sent = [mold.encode_packet(SESSION, 1, [b"S" + bytes(10) + b"O"]), b"junk", mold.encode_heartbeat(SESSION, 2)]
    for d in sent:
        tx.send(d)
    book = Book()
    got = receive_all(PacketReceiver(rx.fileno()), book, 1, in_sequence=False)
    assert got.others == sent and got.messages == 0 and book.counters()["messages"] == 0


def test_another_sessions_packet_goes_back_to_the_sequencer(link):
    rx, tx = link
    other = mold.encode_packet(mold.session_bytes("OTHER"), 1, [b"S" + bytes(10) + b"O"])
    tx.send(other)
    got = receive_all(PacketReceiver(rx.fileno()), Book(), 1)
    assert got.others == [other] and got.packets == 0


@pytest.mark.parametrize("datagram", [
    b"",
    b"short",
    SESSION + struct.pack(">QH", 1, 2) + b"\x00\x01a",                 # one block of two
    SESSION + struct.pack(">QH", 1, 1) + b"\x00\x05ab",                # a block runs past the end
    SESSION + struct.pack(">QH", 1, 1) + b"\x00\x01a" + b"extra",      # bytes after the last block
    SESSION + struct.pack(">QH", 1, 0) + b"x",                         # a heartbeat carrying bytes
])
def test_a_malformed_datagram_is_counted_and_dropped(link, datagram):
    rx, tx = link
    tx.send(datagram)
    good = mold.encode_packet(SESSION, 1, [b"S" + bytes(10) + b"O"])
    tx.send(good)
    book = Book()
    got = receive_all(PacketReceiver(rx.fileno()), book, 1)
    assert (got.malformed, got.packets, got.messages, got.others) == (1, 1, 1, [])
    assert book.counters()["messages"] == 1


@settings(derandomize=True, max_examples=150, deadline=None)
@given(count=st.integers(1, 20), body=st.binary(max_size=300))
def test_the_compiled_check_of_a_packets_blocks_agrees_with_the_python_codec(count, body):
    datagram = SESSION + struct.pack(">QH", 1, count) + body
    try:
        mold.decode_packet(datagram)
        valid = True
    except mold.MoldUDP64Error:
        valid = False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        tx.sendto(datagram, rx.getsockname())
        book = Book()
        got = PacketReceiver(rx.fileno()).receive(book, SESSION, 1, True, max_packets=1, wait=WAIT)
    assert (got.malformed, got.packets) == ((0, 1) if valid else (1, 0))
    assert got.expected == (1 + count if valid else 1)
    # The messages inside are the book's to judge: applied or counted by reason, never a crash.
    counters = book.counters()
    assert sum(counters[k] for k in ("messages", "unknown_type", "short_message", "bad_field")) == \
        (count if valid else 0)


def test_nothing_arriving_returns_after_the_wait_with_nothing(link):
    rx, _ = link
    got = PacketReceiver(rx.fileno()).receive(Book(), SESSION, 7, True, wait=0.01)
    assert (got.expected, got.packets, got.others, got.first_timestamp, got.received_ns) == (7, 0, [], -1, -1)


def test_a_closed_socket_is_an_os_error_not_a_crash():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = PacketReceiver(sock.fileno())
    sock.close()
    with pytest.raises(OSError):
        receiver.receive(Book(), SESSION, 1, True, wait=0.01)


@pytest.mark.parametrize("kwargs, message", [
    (dict(session=b"short"), "session must be 10 bytes"),
    (dict(max_packets=0), "max_packets must be >= 1"),
    (dict(wait=-1.0), "wait and budget must be >= 0"),
])
def test_bad_receive_arguments_are_refused(link, kwargs, message):
    rx, _ = link
    args = dict(session=SESSION, expected=1, in_sequence=True, wait=0.0) | kwargs
    with pytest.raises(ValueError, match=message):
        PacketReceiver(rx.fileno()).receive(Book(), **args)


def test_bad_receiver_settings_are_refused():
    with pytest.raises(ValueError, match="batch must be in 1..1024"):
        PacketReceiver(0, batch=0)
    with pytest.raises(ValueError, match="fd must be"):
        PacketReceiver(-1)


def test_send_datagrams_sends_the_chosen_range_and_refuses_offsets_outside_the_data(link):
    rx, tx = link
    data = b"aaabbcccc"
    offsets = np.array([0, 3, 5, 9], dtype=np.int64)
    assert send_datagrams(tx.fileno(), data, offsets, 1) == 2
    rx.settimeout(WAIT)
    assert [rx.recv(100), rx.recv(100)] == [b"bb", b"cccc"]
    with pytest.raises(ValueError, match="not within the data"):
        send_datagrams(tx.fileno(), data, np.array([0, 3, 50], dtype=np.int64))
    with pytest.raises(ValueError, match="not within 0..3"):
        send_datagrams(tx.fileno(), data, offsets, 2, 5)

