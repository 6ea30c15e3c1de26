"""MoldUDP64: the codec, the sequencer's state machine (no sockets), and loss recovered on loopback UDP."""
from __future__ import annotations

import socket
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcore import Book
from riskcore_services.ingest import moldudp64 as mold
from riskcore_services.ingest.simulate import MoldUDP64Server, split_messages

from .model import assert_book_matches_model, books_equal, model_of

SESSION = mold.session_bytes("TEST000001")


def msg(i: int) -> bytes:
    """A distinct message for sequence i (the sequencer does not look inside)."""
    return b"M" + struct.pack(">I", i) + bytes(i % 7)


def framed(first: int, count: int) -> bytes:
    return b"".join(struct.pack(">H", len(msg(i))) + msg(i) for i in range(first, first + count))


def packet(first: int, count: int, session: bytes = SESSION) -> mold.Packet:
    return mold.decode_packet(mold.encode_packet(session, first, [msg(i) for i in range(first, first + count)]))


def delivered(out: mold.Output) -> bytes:
    return b"".join(bytes(c) for c in out.chunks)


# ------------------------------------------------------------------ codec

def test_a_packet_is_header_then_length_framed_blocks():
    data = mold.encode_packet(SESSION, 7, [b"abc", b"de"])
    assert data == b"TEST000001" + struct.pack(">QH", 7, 2) + b"\x00\x03abc\x00\x02de"
    p = mold.decode_packet(data)
    assert (p.session, p.sequence, p.count, bytes(p.blocks)) == (SESSION, 7, 2, b"\x00\x03abc\x00\x02de")
    assert p.messages == 2 and not p.heartbeat and not p.end_of_session


def test_heartbeat_end_of_session_and_request_encodings():
    hb = mold.decode_packet(mold.encode_heartbeat(SESSION, 42))
    assert hb.heartbeat and hb.sequence == 42 and hb.messages == 0
    end = mold.decode_packet(mold.encode_end_of_session(SESSION, 43))
    assert end.end_of_session and end.count == 0xFFFF and end.messages == 0
    assert mold.encode_request(SESSION, 5, 3) == b"TEST000001" + struct.pack(">QH", 5, 3)
    assert mold.decode_request(mold.encode_request(SESSION, 5, 3)) == (SESSION, 5, 3)


@pytest.mark.parametrize("data", [
    b"short",
    b"TEST000001" + struct.pack(">QH", 1, 2) + b"\x00\x01a",               # one block of two
    b"TEST000001" + struct.pack(">QH", 1, 1) + b"\x00\x05ab",              # block runs past the end
    b"TEST000001" + struct.pack(">QH", 1, 1) + b"\x00\x01ab",              # a byte after the last block
    b"TEST000001" + struct.pack(">QH", 1, 0) + b"x",                       # a heartbeat with a payload
])
def test_a_packet_whose_blocks_do_not_fill_it_exactly_is_refused(data):
    with pytest.raises(mold.MoldUDP64Error):
        mold.decode_packet(data)


def test_session_names_are_ten_characters_at_most():
    assert mold.session_bytes("ABC") == b"ABC       "
    with pytest.raises(ValueError):
        mold.session_bytes("ELEVENCHARS")


# ------------------------------------------------------------------ sequencer

def test_packets_in_sequence_are_delivered_as_they_come():
    seq = mold.Sequencer()
    out = seq.on_packet(packet(1, 3), 0.0)
    assert delivered(out) == framed(1, 3) and out.messages == 3 and out.request is None
    out = seq.on_packet(packet(4, 2), 0.0)
    assert delivered(out) == framed(4, 2)
    assert seq.expected == 6 and not seq.in_gap


def test_duplicates_are_dropped_and_an_overlapping_packet_is_trimmed():
    seq = mold.Sequencer()
    seq.on_packet(packet(1, 5), 0.0)
    assert delivered(seq.on_packet(packet(2, 3), 0.0)) == b""              # all seen
    assert delivered(seq.on_packet(packet(4, 4), 0.0)) == framed(6, 2)     # 4 and 5 seen, 6 and 7 new
    assert seq.stats.duplicates == 5 and seq.expected == 8


def test_a_gap_is_requested_held_packets_wait_and_the_answer_releases_them():
    seq = mold.Sequencer()
    seq.on_packet(packet(1, 2), 0.0)
    out = seq.on_packet(packet(6, 2), 0.0)                                 # 3..5 missing
    assert delivered(out) == b"" and out.request == mold.Request(3, 3)
    assert seq.in_gap and seq.held == 2 and seq.stats.gaps == 1
    out = seq.on_packet(packet(3, 3), 0.01)                                # the answer
    assert delivered(out) == framed(3, 5) and out.request is None
    assert seq.stats.recovered == 5 and seq.held == 0 and not seq.in_gap


def test_a_partial_answer_is_followed_at_once_by_a_request_for_the_rest():
    seq = mold.Sequencer()
    seq.on_packet(packet(1, 1), 0.0)
    assert seq.on_packet(packet(10, 1), 0.0).request == mold.Request(2, 8)
    out = seq.on_packet(packet(2, 3), 0.001)
    assert delivered(out) == framed(2, 3) and out.request == mold.Request(5, 5)
    assert seq.stats.retries == 0


def test_a_heartbeat_ahead_of_the_expected_sequence_reveals_a_gap():
    seq = mold.Sequencer()
    seq.on_packet(packet(1, 2), 0.0)
    out = seq.on_packet(mold.decode_packet(mold.encode_heartbeat(SESSION, 6)), 1.0)
    assert out.request == mold.Request(3, 3) and seq.in_gap
    seq.on_packet(packet(3, 3), 1.01)
    assert not seq.in_gap and seq.stats.heartbeats == 1


def test_end_of_session_ends_only_once_every_message_before_it_is_delivered():
    seq = mold.Sequencer()
    seq.on_packet(packet(1, 2), 0.0)
    out = seq.on_packet(mold.decode_packet(mold.encode_end_of_session(SESSION, 5)), 0.0)
    assert not seq.ended and out.request == mold.Request(3, 2)
    seq.on_packet(packet(3, 2), 0.01)
    assert seq.ended and seq.end_sequence == 5


def test_an_unanswered_request_is_retried_then_the_sequencer_gives_up():
    seq = mold.Sequencer(mold.SequencerConfig(retry_after=0.1, max_retries=2))
    seq.on_packet(packet(1, 1), 0.0)
    assert seq.on_packet(packet(5, 1), 0.0).request == mold.Request(2, 3)
    assert seq.poll(0.05) is None                      # not late yet
    assert seq.poll(0.11) == mold.Request(2, 3)
    assert seq.poll(0.22) == mold.Request(2, 3)
    assert seq.poll(0.33) is None and seq.failed
    assert seq.stats.retries == 3 and seq.stats.requests == 3


def test_a_full_reorder_buffer_drops_packets_which_are_then_requested_with_the_gap():
    seq = mold.Sequencer(mold.SequencerConfig(reorder_limit=4))
    seq.on_packet(packet(1, 1), 0.0)
    seq.on_packet(packet(3, 4), 0.0)                   # held: 4 messages, the limit
    seq.on_packet(packet(7, 2), 0.0)                   # dropped
    assert seq.stats.overflow == 2 and seq.held == 4
    out = seq.on_packet(packet(2, 1), 0.01)
    assert delivered(out) == framed(2, 5) and out.request == mold.Request(7, 2)
    assert delivered(seq.on_packet(packet(7, 2), 0.02)) == framed(7, 2)


def test_packets_of_another_session_and_malformed_datagrams_are_counted_and_ignored():
    seq = mold.Sequencer()
    seq.on_packet(packet(1, 1), 0.0)
    assert seq.on_packet(packet(2, 1, mold.session_bytes("OTHER")), 0.0).messages == 0
    assert seq.on_data(b"garbage", 0.0).messages == 0
    assert seq.stats.wrong_session == 1 and seq.stats.malformed == 1 and seq.expected == 2


def test_a_sequencer_can_start_past_the_first_message():
    seq = mold.Sequencer(expected=10)
    assert seq.on_packet(packet(8, 3), 0.0).messages == 1 and seq.expected == 11


@pytest.mark.parametrize("kwargs", [dict(reorder_limit=-1), dict(request_max=0), dict(retry_after=0),
                                    dict(max_retries=-1)])
def test_bad_sequencer_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        mold.SequencerConfig(**kwargs)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.integers(1, 120), st.integers(1, 6), st.randoms(use_true_random=False),
       st.floats(0.0, 0.5), st.floats(0.0, 0.3), st.integers(0, 30))
def test_lost_duplicated_and_reordered_packets_are_delivered_once_in_sequence(total, per, rng, loss, dup, limit):
    """A session through a lossy, reordering network with a re-request server that answers one packet."""
    packets = [packet(s, min(per, total - s + 1)) for s in range(1, total + 1, per)]
    wire = []
    for p in packets:
        if rng.random() >= loss:
            wire.append(p)
        if rng.random() < dup:
            wire.append(p)
    rng.shuffle(wire)
    wire.append(mold.decode_packet(mold.encode_end_of_session(SESSION, total + 1)))
    seq = mold.Sequencer(mold.SequencerConfig(reorder_limit=limit, request_max=7, max_retries=1000))
    got, now, pending = [], 0.0, list(wire)
    for _ in range(10_000):
        if seq.ended:
            break
        now += 0.01
        out = seq.on_packet(pending.pop(0), now) if pending else mold.Output(request=seq.poll(now))
        got.extend(bytes(c) for c in out.chunks)
        if out.request is not None:                   # the server answers with up to 4 messages
            first = out.request.sequence
            pending.insert(0, packet(first, min(out.request.count, 4, total - first + 1)))
    assert seq.ended
    assert b"".join(got) == framed(1, total)
    assert seq.stats.messages == total


# ------------------------------------------------------------------ over UDP

def udp_run(messages: list[bytes], loss: float, seed: int) -> tuple[Book, mold.Sequencer, MoldUDP64Server]:
    book = Book()
    sequencer = mold.Sequencer(mold.SequencerConfig(retry_after=0.05, max_retries=100))
    with mold.Receiver(sequencer, book) as receiver:
        server = MoldUDP64Server(messages, receiver.address, loss=loss, seed=seed)
        receiver.request_address = server.request_address
        with server:
            sender = threading.Thread(target=server.stream, daemon=True)
            sender.start()
            ended = receiver.run(timeout=60.0)
            sender.join(timeout=10)
    assert ended, sequencer.stats
    return book, sequencer, server


def test_loss_on_loopback_udp_is_recovered_by_re_request_into_the_same_book(small_day):
    messages = split_messages(small_day)
    clean, clean_seq, _ = udp_run(messages, loss=0.0, seed=1)
    lossy, lossy_seq, server = udp_run(messages, loss=0.05, seed=2)

    assert server.stats.dropped > 10 and lossy_seq.stats.gaps > 0 and lossy_seq.stats.recovered > 0
    assert server.stats.requests > 0
    assert lossy_seq.stats.messages == clean_seq.stats.messages == len(messages)
    assert books_equal(lossy, clean)
    assert_book_matches_model(lossy, model_of(small_day))
    assert lossy.session_ended


def test_losing_the_last_packet_is_found_from_the_end_of_session():
    messages = [b"S" + bytes(10) + b"O"] * 3 + [b"S" + bytes(10) + b"C"]
    book = Book()
    sequencer = mold.Sequencer(mold.SequencerConfig(retry_after=0.05))
    with mold.Receiver(sequencer, book) as receiver:
        with MoldUDP64Server(messages, receiver.address, max_payload=16) as server:
            receiver.request_address = server.request_address
            packets = list(server.packets())
            assert len(packets) == 4                        # one message per packet
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for first, batch in packets[:-1]:               # the last one is lost
                sender.sendto(mold.encode_packet(server.session, first, batch), receiver.address)
            sender.sendto(mold.encode_end_of_session(server.session, 5), receiver.address)
            sender.close()
            assert receiver.run(timeout=30.0)
    assert sequencer.stats.recovered == 1 and sequencer.stats.messages == 4
    assert book.session_ended
