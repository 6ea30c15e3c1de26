"""MoldUDP64 1.00: the packet codec, a sequencer, and a UDP receiver built on them.

Downstream packet: ``Session(10) | Sequence Number(8) | Message Count(2)``, then
``Message Count`` blocks of ``Length(2) | message`` (the same framing as a
NASDAQ day file, so a packet's blocks feed a :class:`riskcore.Book` as they
are). The sequence number is that of the packet's first message. A count of 0
is a heartbeat and 0xFFFF the end of the session; both carry the next sequence
number the sender will use. A re-request is ``Session(10) | Sequence(8) |
Requested Message Count(2)``, answered by unicast with a normal packet.

:class:`Sequencer` is the receive side's state machine, with no sockets and an
injected time, so every path is unit-testable: it delivers messages in
sequence exactly once, drops duplicates, holds packets that arrive past a gap
in a bounded reorder buffer, detects gaps (heartbeats and end of session
included), and says when to send which re-request, with bounded retries.
:class:`Receiver` runs it on a UDP socket, behind a compiled receive loop
that applies the packets already in sequence itself.
"""
from __future__ import annotations

import heapq
import ipaddress
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from riskcore_services.ingest._udp import PacketReceiver, Received

if TYPE_CHECKING:
    from riskcore import Book

HEADER = struct.Struct(">10sQH")
REQUEST = struct.Struct(">10sQH")
HEARTBEAT = 0
END_OF_SESSION = 0xFFFF
MAX_MESSAGES_PER_PACKET = 0xFFFE
SO_RCVBUFFORCE = 33        # Linux's <asm-generic/socket.h>; the socket module does not name it


class MoldUDP64Error(ValueError):
    """A packet or request that does not decode."""


def session_bytes(session: str | bytes) -> bytes:
    """A session name as its 10 wire bytes (ASCII, space padded on the right)."""
    raw = session.encode("ascii") if isinstance(session, str) else bytes(session)
    if len(raw) > 10:
        raise ValueError(f"a MoldUDP64 session is at most 10 characters, got {raw!r}")
    return raw.ljust(10)


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded downstream packet."""

    session: bytes
    sequence: int          # of the first message; for heartbeats and end of session: the next one
    count: int             # messages; 0 heartbeat, 0xFFFF end of session
    blocks: bytes | memoryview     # the length-framed messages

    @property
    def heartbeat(self) -> bool:
        return self.count == HEARTBEAT

    @property
    def end_of_session(self) -> bool:
        return self.count == END_OF_SESSION

    @property
    def messages(self) -> int:
        """Messages carried (0 for heartbeats and end of session)."""
        return 0 if self.count in (HEARTBEAT, END_OF_SESSION) else self.count


def encode_packet(session: bytes, sequence: int, messages: Sequence[bytes]) -> bytes:
    """A downstream packet carrying ``messages`` from ``sequence`` on."""
    if len(messages) > MAX_MESSAGES_PER_PACKET:
        raise ValueError(f"at most {MAX_MESSAGES_PER_PACKET} messages per packet, got {len(messages)}")
    parts = [HEADER.pack(session, sequence, len(messages))]
    for m in messages:
        parts.append(struct.pack(">H", len(m)))
        parts.append(m)
    return b"".join(parts)


def encode_heartbeat(session: bytes, next_sequence: int) -> bytes:
    return HEADER.pack(session, next_sequence, HEARTBEAT)


def encode_end_of_session(session: bytes, next_sequence: int) -> bytes:
    return HEADER.pack(session, next_sequence, END_OF_SESSION)


def encode_request(session: bytes, sequence: int, count: int) -> bytes:
    """A re-request for ``count`` messages from ``sequence`` on."""
    if not 1 <= count <= MAX_MESSAGES_PER_PACKET:
        raise ValueError(f"a request asks for 1..{MAX_MESSAGES_PER_PACKET} messages, got {count}")
    return REQUEST.pack(session, sequence, count)


def decode_request(data: bytes) -> tuple[bytes, int, int]:
    """(session, sequence, count) of a re-request packet."""
    if len(data) != REQUEST.size:
        raise MoldUDP64Error(f"a request is {REQUEST.size} bytes, got {len(data)}")
    return REQUEST.unpack(data)


def block_offsets(blocks: bytes | memoryview, count: int) -> list[int]:
    """The offsets where each of ``count`` blocks starts, and the end; MoldUDP64Error when they do not fit."""
    offsets: list[int] = []
    pos, n = 0, len(blocks)
    for _ in range(count):
        if pos + 2 > n:
            raise MoldUDP64Error(f"packet ends inside block {len(offsets) + 1} of {count}")
        offsets.append(pos)
        pos += 2 + ((blocks[pos] << 8) | blocks[pos + 1])
        if pos > n:
            raise MoldUDP64Error(f"block {len(offsets)} of {count} runs past the end of the packet")
    offsets.append(pos)
    return offsets


def decode_packet(data: bytes | memoryview) -> Packet:
    """Decode a downstream packet, checking that its blocks fill it exactly as its count says."""
    if len(data) < HEADER.size:
        raise MoldUDP64Error(f"a packet has a {HEADER.size}-byte header, got {len(data)} bytes")
    session, sequence, count = HEADER.unpack_from(data)
    blocks = memoryview(data)[HEADER.size:]
    if count in (HEARTBEAT, END_OF_SESSION):
        if len(blocks):
            raise MoldUDP64Error(f"a {'heartbeat' if count == HEARTBEAT else 'end-of-session'} packet "
                                 f"carries {len(blocks)} bytes of blocks")
    elif block_offsets(blocks, count)[-1] != len(blocks):
        raise MoldUDP64Error(f"{len(blocks) - block_offsets(blocks, count)[-1]} bytes after the last of "
                             f"{count} blocks")
    return Packet(session, sequence, count, blocks)


# ----------------------------------------------------------------- sequencer

@dataclass(frozen=True, slots=True)
class SequencerConfig:
    """How the sequencer recovers.

    Parameters
    ----------
    reorder_limit : int
        Messages held past a gap at most; a packet that would go past it is
        dropped (its messages are re-requested with the gap).
    request_max : int
        Messages one re-request asks for at most.
    retry_after : float
        Seconds without progress before a request is sent again.
    max_retries : int
        Requests sent again for the same sequence before the sequencer gives
        up (state ``failed``: recover from a snapshot or a replay).
    """

    reorder_limit: int = 100_000
    request_max: int = 1_000
    retry_after: float = 0.05
    max_retries: int = 20

    def __post_init__(self) -> None:
        if self.reorder_limit < 0:
            raise ValueError(f"reorder_limit must be >= 0, got {self.reorder_limit}")
        if not 1 <= self.request_max <= MAX_MESSAGES_PER_PACKET:
            raise ValueError(f"request_max must be in 1..{MAX_MESSAGES_PER_PACKET}, got {self.request_max}")
        if not self.retry_after > 0:
            raise ValueError(f"retry_after must be > 0, got {self.retry_after}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")


@dataclass(slots=True)
class SequencerStats:
    packets: int = 0
    heartbeats: int = 0
    messages: int = 0              # delivered in sequence
    duplicates: int = 0            # messages dropped as already delivered or already held
    gaps: int = 0                  # gaps opened
    recovered: int = 0             # messages delivered that arrived after a gap was opened
    requests: int = 0              # re-requests sent (retries included)
    retries: int = 0
    overflow: int = 0              # messages dropped because the reorder buffer was full
    wrong_session: int = 0
    malformed: int = 0


@dataclass(frozen=True, slots=True)
class Request:
    """A re-request to send: ``count`` messages from ``sequence`` on."""

    sequence: int
    count: int


@dataclass(slots=True)
class Output:
    """What one step of the sequencer produced."""

    chunks: list[bytes | memoryview] = field(default_factory=list)   # length-framed messages, in sequence
    messages: int = 0
    request: Request | None = None


class Sequencer:
    """MoldUDP64 receive-side sequencing for one session (no sockets, time passed in).

    Parameters
    ----------
    config : SequencerConfig
    expected : int
        The first sequence number to deliver (1 for a whole session).
    session : bytes, optional
        The session to accept; by default the first packet's.

    Notes
    -----
    Feed each received packet to :meth:`on_packet` and call :meth:`poll`
    when nothing arrives; send the request either returns. The delivered
    chunks are length-framed messages for ``Book.feed``.
    """

    def __init__(self, config: SequencerConfig | None = None, expected: int = 1,
                 session: bytes | None = None) -> None:
        if expected < 1:
            raise ValueError(f"expected must be >= 1, got {expected}")
        self.config = config or SequencerConfig()
        self.expected = expected
        self.session = session
        self.stats = SequencerStats()
        self.highest = expected        # one past the highest sequence number known to exist
        self.end_sequence: int | None = None   # the next sequence number at end of session
        self.failed = False
        self._held: dict[int, tuple[int, bytes | memoryview]] = {}   # first sequence -> (count, blocks)
        self._held_heap: list[int] = []
        self._held_messages = 0
        self._request: Request | None = None   # the outstanding request
        self._request_time = 0.0
        self._request_expected = 0             # self.expected when it was sent
        self._tries = 0
        self._gap_open = False

    # ----------------------------------------------------------- state

    @property
    def in_gap(self) -> bool:
        """Messages are known to exist that have not been delivered."""
        return self.expected < self.highest

    @property
    def ended(self) -> bool:
        """The end of session has been seen and every message before it delivered."""
        return self.end_sequence is not None and self.expected >= self.end_sequence

    @property
    def held(self) -> int:
        """Messages waiting in the reorder buffer."""
        return self._held_messages

    # ----------------------------------------------------------- input

    def on_data(self, data: bytes | memoryview, now: float) -> Output:
        """Decode a datagram and apply it; a malformed one is counted and changes nothing."""
        try:
            packet = decode_packet(data)
        except MoldUDP64Error:
            self.stats.malformed += 1
            return Output()
        return self.on_packet(packet, now)

    def on_packet(self, packet: Packet, now: float) -> Output:
        """Apply one packet: deliver what is now in sequence, hold what is past a gap."""
        out = Output()
        if self.session is None:
            self.session = packet.session
        elif packet.session != self.session:
            self.stats.wrong_session += 1
            return out
        self.stats.packets += 1
        if packet.heartbeat or packet.end_of_session:
            self.stats.heartbeats += packet.heartbeat
            if packet.end_of_session:
                self.end_sequence = packet.sequence
            self._saw(packet.sequence)
        elif packet.count:
            self._take(packet.sequence, packet.count, packet.blocks, out)
        self._drain(out)
        out.request = self._next_request(now)
        return out

    def poll(self, now: float) -> Request | None:
        """The request to send again when one has gone unanswered for ``retry_after`` seconds.

        After ``max_retries`` unanswered requests for the same sequence the
        sequencer is ``failed`` and asks for nothing more.
        """
        if self.failed or not self.in_gap:
            return None
        if self._request is not None and now - self._request_time < self.config.retry_after:
            return None
        if self._request is not None and self.expected == self._request_expected:
            self._tries += 1
            self.stats.retries += 1
            if self._tries > self.config.max_retries:
                self.failed = True
                return None
        else:
            self._tries = 0
        return self._send(now)

    def took(self, received: Received) -> None:
        """Account for what the compiled receive loop (``_udp``) applied in sequence without this sequencer."""
        self.expected = received.expected
        self.highest = max(self.highest, received.expected)
        stats = self.stats
        stats.packets += received.packets
        stats.messages += received.messages
        stats.heartbeats += received.heartbeats
        stats.duplicates += received.duplicates
        stats.malformed += received.malformed

    # ----------------------------------------------------------- internals

    def _saw(self, end: int) -> None:
        if end > self.highest:
            if not self.in_gap and end > self.expected:
                self.stats.gaps += 1
            self.highest = end

    def _take(self, first: int, count: int, blocks: bytes | memoryview, out: Output) -> None:
        end = first + count
        if end <= self.expected:
            self.stats.duplicates += count
            return
        if first < self.expected:
            skip = self.expected - first     # the front of the packet was delivered already
            self.stats.duplicates += skip
            blocks = blocks[block_offsets(blocks, skip)[-1]:]
            first, count = self.expected, count - skip
        if first == self.expected:
            recovered = self.in_gap
            self._deliver(count, blocks, out, recovered)
            self._saw(end)
            return
        self._saw(end)
        if first in self._held:
            self.stats.duplicates += count
            return
        if self._held_messages + count > self.config.reorder_limit:
            self.stats.overflow += count
            return
        self._held[first] = (count, blocks)
        heapq.heappush(self._held_heap, first)
        self._held_messages += count

    def _deliver(self, count: int, blocks: bytes | memoryview, out: Output, recovered: bool) -> None:
        out.chunks.append(blocks)
        out.messages += count
        self.expected += count
        self.stats.messages += count
        if recovered:
            self.stats.recovered += count

    def _drain(self, out: Output) -> None:
        # Held packets that are now in sequence (or behind it) leave the buffer in order.
        heap = self._held_heap
        while heap and heap[0] <= self.expected:
            first = heapq.heappop(heap)
            count, blocks = self._held.pop(first)
            self._held_messages -= count
            end = first + count
            if end <= self.expected:
                self.stats.duplicates += count
                continue
            skip = self.expected - first
            if skip:
                self.stats.duplicates += skip
                blocks = blocks[block_offsets(blocks, skip)[-1]:]
            self._deliver(count - skip, blocks, out, True)

    def _next_request(self, now: float) -> Request | None:
        if self.failed or not self.in_gap:
            self._request = None
            self._tries = 0
            return None
        if self._request is None or self.expected != self._request_expected:
            # A new gap, or an answer arrived (a re-request is answered with one
            # packet, often less than was asked): ask for what is still missing now.
            self._tries = 0
            return self._send(now)
        return None                    # waiting on the answer: poll() sends it again when it is late

    def _send(self, now: float) -> Request:
        stop = self._held_heap[0] if self._held_heap else self.highest
        request = Request(self.expected, max(1, min(stop - self.expected, self.config.request_max)))
        self._request = request
        self._request_time = now
        self._request_expected = self.expected
        self.stats.requests += 1
        return request


# ----------------------------------------------------------------- receiver

def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for a receive buffer of ``size`` bytes: past ``net.core.rmem_max`` when the process may
    (``SO_RCVBUFFORCE`` needs CAP_NET_ADMIN), else as much as the system allows."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class Receiver:
    """Receive one MoldUDP64 session on UDP into a book: the common path compiled, the rest sequenced here.

    Packets in sequence are taken in batches (``recvmmsg``), checked and
    decoded into ``book`` in C without the GIL (:mod:`._udp`); anything else
    (a gap, a packet held past one, a heartbeat showing one, end of session,
    another session) goes to ``sequencer``, whose in-sequence output is fed
    to the book here, and its re-requests are sent.

    Parameters
    ----------
    sequencer : Sequencer
    book : riskcore.Book
        Fed every message in sequence, once.
    address : (host, port)
        Where to listen: a unicast address, or a multicast group (with
        ``interface`` the local address to join it on).
    request_address : (host, port), optional
        The re-request server; without it gaps are detected but not recovered.
    clock : callable
        Seconds, monotonic (injected for tests).
    batch : int
        Datagrams per ``recvmmsg`` call at most.
    """

    def __init__(self, sequencer: Sequencer, book: Book, address: tuple[str, int] = ("127.0.0.1", 0),
                 request_address: tuple[str, int] | None = None, interface: str = "0.0.0.0",
                 receive_buffer: int = 8 * 2**20, clock: Callable[[], float] = time.monotonic,
                 batch: int = 64) -> None:
        self.sequencer = sequencer
        self.book = book
        self.request_address = request_address
        self.clock = clock
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        set_receive_buffer(self.sock, receive_buffer)
        host, port = address
        try:
            group = ipaddress.ip_address(host).is_multicast
        except ValueError:          # a host name: unicast
            group = False
        if group:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("", port))
            membership = socket.inet_aton(host) + socket.inet_aton(interface)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        else:
            self.sock.bind((host, port))
        self._packets = PacketReceiver(self.sock.fileno(), batch)
        # Held while the socket is in use, so close() never pulls the descriptor from under a step that a
        # worker thread is still running.
        self._using = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()

    def _request(self, request: Request | None) -> None:
        if request is not None and self.request_address is not None and self.sequencer.session is not None:
            self.sock.sendto(encode_request(self.sequencer.session, request.sequence, request.count),
                             self.request_address)

    def _apply(self, out: Output) -> None:
        for chunk in out.chunks:
            self.book.feed(chunk)
        self._request(out.request)

    def step(self, wait: float, max_packets: int = 4096, budget: float = 0.005) -> Received:
        """Receive for a while: apply what is in sequence, sequence the rest, send the requests due.

        Returns once ``max_packets`` datagrams were taken, ``budget`` seconds
        after the first, when one needs the sequencer, or after ``wait``
        seconds of silence (then the sequencer's retries are sent).

        Notes
        -----
        Blocking, GIL released while receiving: run it in a worker thread.
        """
        seq = self.sequencer
        in_sequence = (seq.session is not None and not seq.in_gap and not seq.held and not seq.failed
                       and seq.end_sequence is None)
        with self._using:
            got = self._packets.receive(self.book, seq.session or bytes(10), seq.expected, in_sequence,
                                        max_packets, wait, budget)
            seq.took(got)
            now = self.clock()
            for datagram in got.others:
                self._apply(seq.on_data(datagram, now))
            self._request(seq.poll(self.clock()))
        return got

    def inject(self, packets: Iterable[Packet]) -> None:
        """Sequence packets recovered another way (SoupBinTCP) as if they had arrived."""
        with self._using:
            for packet in packets:
                self._apply(self.sequencer.on_packet(packet, self.clock()))

    def run(self, timeout: float = 30.0, idle: float = 0.01) -> bool:
        """Receive until the session has ended and been delivered whole, the sequencer fails, or ``timeout``.

        Returns
        -------
        bool
            True when the session ended with every message delivered.
        """
        seq = self.sequencer
        deadline = self.clock() + timeout
        while not seq.ended and not seq.failed:
            if self.clock() >= deadline:
                return False
            self.step(idle)
        return seq.ended

    def close(self) -> None:
        """Close the socket, once a step running in another thread has returned (at most ``wait`` later)."""
        with self._using:
            self.sock.close()

    def __enter__(self) -> "Receiver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def deliver_all(outputs: Iterable[Output]) -> bytes:
    """The in-sequence messages of several outputs, joined (a test and tool helper)."""
    return b"".join(bytes(c) for o in outputs for c in o.chunks)
