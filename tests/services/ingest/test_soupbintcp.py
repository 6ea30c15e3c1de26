"""SoupBinTCP: the codec, and the client against the simulator's replay server."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcore import Book
from riskcore_services.ingest import soupbintcp as soup
from riskcore_services.ingest.simulate import SoupBinTCPServer, split_messages

from .model import assert_book_matches_model, books_equal, model_of


# ------------------------------------------------------------------ codec

def test_login_request_layout():
    data = soup.encode_login("user", "pw", "SESS", 42)
    assert data[:3] == struct.pack(">H", 47) + b"L"
    assert data[3:] == b"user  " + b"pw        " + b"      SESS" + b" " * 18 + b"42"
    assert soup.decode_login(data[3:]) == ("user", "pw", "SESS", 42)


def test_login_accepted_layout():
    data = soup.encode_login_accepted("SESSION1", 1001)
    assert data == struct.pack(">H", 31) + b"A" + b"  SESSION1" + b" " * 16 + b"1001"
    assert soup.decode_login_accepted(data[3:]) == ("SESSION1", 1001)


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"S", b"H", b"Z", b"+"]), st.binary(max_size=40)), max_size=20),
       st.lists(st.integers(1, 50), max_size=30))
def test_frame_reader_splits_packets_whatever_the_tcp_segments(packets, cuts):
    stream = b"".join(soup.encode(k, p) for k, p in packets)
    reader, got, pos = soup.FrameReader(), [], 0
    for cut in cuts + [len(stream)]:
        got += reader.feed(stream[pos:pos + cut])
        pos += cut
    got += reader.feed(stream[pos:])
    assert got == packets and reader.pending == 0


def test_a_zero_length_packet_is_an_error():
    with pytest.raises(soup.SoupBinTCPError):
        soup.FrameReader().feed(b"\x00\x00")


# ------------------------------------------------------------------ client and server

def test_replay_from_sequence_one_builds_the_whole_book(small_day):
    messages = split_messages(small_day)
    with SoupBinTCPServer(messages, session="SESSION1") as server:
        book = Book()
        with soup.SoupBinTCPClient(server.address, "user", "secret", sequence=1) as client:
            result = client.replay_into(book)
    assert (result.session, result.first_sequence, result.messages, result.ended) == \
        ("SESSION1", 1, len(messages), True)
    assert server.logins == [("user", "secret", "", 1)]
    assert_book_matches_model(book, model_of(small_day))


def test_recovery_logs_in_at_the_next_sequence_needed_and_completes_the_book(small_day):
    messages = split_messages(small_day)
    have = 12_345                                    # applied before the link was lost
    book = Book()
    book.feed(b"".join(struct.pack(">H", len(m)) + m for m in messages[:have]))
    with SoupBinTCPServer(messages, session="SESSION1") as server:
        with soup.SoupBinTCPClient(server.address, "user", "secret", sequence=have + 1) as client:
            assert (client.session, client.next_sequence) == ("SESSION1", have + 1)
            result = client.replay_into(book)
    assert result.messages == len(messages) - have and result.first_sequence == have + 1
    whole = Book()
    whole.feed(small_day)
    assert books_equal(book, whole)


def test_a_rejected_login_raises_with_the_reason():
    with SoupBinTCPServer([]) as server:
        client = soup.SoupBinTCPClient(server.address, "user", "wrong")
        with pytest.raises(soup.LoginRejected) as rejected:
            client.connect()
    assert rejected.value.reason == "A" and "not authorized" in str(rejected.value)


def test_the_client_sends_heartbeats_while_the_server_is_quiet():
    with SoupBinTCPServer([b"S" + bytes(10) + b"C"], silent=0.5) as server:
        with soup.SoupBinTCPClient(server.address, "user", "secret", heartbeat_interval=0.05) as client:
            assert list(client.messages()) == [(1, b"S" + bytes(10) + b"C")]
    assert server.received.count(soup.CLIENT_HEARTBEAT) >= 2
    assert server.received[-1] == soup.LOGOUT


def test_a_server_silent_past_the_dead_interval_is_a_dead_link():
    with SoupBinTCPServer([b"x"], silent=3.0) as server:
        client = soup.SoupBinTCPClient(server.address, "user", "secret", dead_after=0.3, heartbeat_interval=10)
        client.connect()
        with pytest.raises(soup.SoupBinTCPError, match="no packet"):
            list(client.messages())
        client.close()


def test_replay_can_stop_at_a_sequence_number():
    messages = [b"S" + bytes(10) + c for c in (b"O", b"S", b"Q", b"M")]
    with SoupBinTCPServer(messages, end=False) as server:
        with soup.SoupBinTCPClient(server.address, "user", "secret", sequence=2) as client:
            book = Book()
            result = client.replay_into(book, until=3)
    assert result.messages == 2 and not result.ended and book.system_event[0] == "Q"
