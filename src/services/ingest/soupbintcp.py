"""SoupBinTCP 3.00: the codec and a blocking client, for recovery by replay over TCP.

A logical packet is ``Length(2, big-endian; counts the type byte and the
payload) | Type(1) | payload``. The server sends ``+`` debug, ``A`` login
accepted (session 10, next sequence number 20, ASCII, space padded on the
left), ``J`` login rejected (a reason code: ``A`` not authorized, ``S``
session not available), ``S`` sequenced data (one ITCH message), ``H``
heartbeat and ``Z`` end of session. The client sends ``L`` login (username 6,
password 10, requested session 10, requested sequence number 20), ``U``
unsequenced data, ``R`` heartbeat and ``O`` logout. Either side sends a
heartbeat after about a second of silence, and treats about 15 seconds of
silence from the other as a dead link.

Recovery logs in with the next sequence number it needs and the server
replays from there: :meth:`SoupBinTCPClient.replay_into` feeds the replayed
messages to a :class:`riskcore.Book` in batches.
"""
from __future__ import annotations

import socket
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator

from riskcore import Book

_LENGTH = struct.Struct(">H")
MAX_PAYLOAD = 0xFFFF - 1

# Server packet types
DEBUG, LOGIN_ACCEPTED, LOGIN_REJECTED, SEQUENCED, SERVER_HEARTBEAT, END_OF_SESSION = b"+", b"A", b"J", b"S", b"H", b"Z"
# Client packet types
LOGIN, UNSEQUENCED, CLIENT_HEARTBEAT, LOGOUT = b"L", b"U", b"R", b"O"

HEARTBEAT_INTERVAL = 1.0
DEAD_AFTER = 15.0


class SoupBinTCPError(ConnectionError):
    """The link broke, went silent, or the peer sent something that is not SoupBinTCP."""


class LoginRejected(SoupBinTCPError):
    """The server refused the login; ``reason`` is its code (A: not authorized, S: session not available)."""

    def __init__(self, reason: str) -> None:
        meaning = {"A": "not authorized", "S": "session not available"}.get(reason, "unknown reason")
        super().__init__(f"login rejected: {reason!r} ({meaning})")
        self.reason = reason


def encode(kind: bytes, payload: bytes = b"") -> bytes:
    """One logical packet."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a SoupBinTCP payload is at most {MAX_PAYLOAD} bytes, got {len(payload)}")
    return _LENGTH.pack(len(payload) + 1) + kind + payload


def _alpha(value: str, width: int) -> bytes:
    raw = value.encode("ascii")
    if len(raw) > width:
        raise ValueError(f"{value!r} is longer than {width} characters")
    return raw.ljust(width)


def _numeric(value: int, width: int) -> bytes:
    raw = str(value).encode("ascii")
    if value < 0 or len(raw) > width:
        raise ValueError(f"{value} does not fit in {width} digits")
    return raw.rjust(width)


def encode_login(username: str, password: str, session: str = "", sequence: int = 1) -> bytes:
    """A login request: ``session`` blank for the current session, ``sequence`` the next message wanted (0: live)."""
    return encode(LOGIN, _alpha(username, 6) + _alpha(password, 10) + session.encode("ascii").rjust(10)
                  + _numeric(sequence, 20))


def decode_login(payload: bytes) -> tuple[str, str, str, int]:
    """(username, password, session, sequence) of a login request's payload."""
    if len(payload) != 46:
        raise SoupBinTCPError(f"a login request has 46 bytes of payload, got {len(payload)}")
    text = payload.decode("ascii")
    return text[:6].rstrip(), text[6:16].rstrip(), text[16:26].strip(), int(text[26:46])


def encode_login_accepted(session: str, sequence: int) -> bytes:
    return encode(LOGIN_ACCEPTED, session.encode("ascii").rjust(10) + _numeric(sequence, 20))


def decode_login_accepted(payload: bytes) -> tuple[str, int]:
    """(session, next sequence number) of a login accepted packet's payload."""
    if len(payload) != 30:
        raise SoupBinTCPError(f"a login accepted packet has 30 bytes of payload, got {len(payload)}")
    return payload[:10].decode("ascii").strip(), int(payload[10:30])


class FrameReader:
    """Split a TCP byte stream into SoupBinTCP packets, whatever its segmenting."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """Add received bytes; return the (type, payload) of each packet now complete."""
        self._buffer += data
        out, pos, buf = [], 0, self._buffer
        while len(buf) - pos >= 2:
            length = (buf[pos] << 8) | buf[pos + 1]
            if length == 0:
                raise SoupBinTCPError("a packet of length 0 (no type byte)")
            if len(buf) - pos - 2 < length:
                break
            out.append((bytes(buf[pos + 2:pos + 3]), bytes(buf[pos + 3:pos + 2 + length])))
            pos += 2 + length
        del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete packet waiting for more."""
        return len(self._buffer)


@dataclass(slots=True)
class ReplayResult:
    session: str
    first_sequence: int          # the sequence number the server started at
    messages: int                # sequenced messages received
    ended: bool                  # the server sent end of session


class SoupBinTCPClient:
    """A blocking SoupBinTCP client for one login.

    Parameters
    ----------
    address : (host, port)
    username, password : str
    session : str
        Blank: the server's current session.
    sequence : int
        The first sequence number wanted (1: the whole session).
    clock : callable
        Monotonic seconds (injected for tests).
    dead_after : float
        Seconds of silence from the server after which the link is dead.
    """

    def __init__(self, address: tuple[str, int], username: str, password: str, session: str = "",
                 sequence: int = 1, connect_timeout: float = 5.0, dead_after: float = DEAD_AFTER,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.address = address
        self._login = encode_login(username, password, session, sequence)
        self.connect_timeout = connect_timeout
        self.dead_after = dead_after
        self.heartbeat_interval = heartbeat_interval
        self.clock = clock
        self.session = ""
        self.next_sequence = 0        # of the next sequenced message to arrive
        self.ended = False
        self._sock: socket.socket | None = None
        self._reader = FrameReader()
        self._pending: deque[tuple[bytes, bytes]] = deque()
        self._last_sent = 0.0
        self._last_heard = 0.0

    def connect(self) -> tuple[str, int]:
        """Connect and log in; return (session, next sequence number). Raises LoginRejected."""
        self._sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._send(self._login)
        self._last_heard = self.clock()
        while True:
            kind, payload = self._next()
            if kind == LOGIN_ACCEPTED:
                self.session, self.next_sequence = decode_login_accepted(payload)
                return self.session, self.next_sequence
            if kind == LOGIN_REJECTED:
                self.close()
                raise LoginRejected(payload.decode("ascii", "replace"))
            if kind not in (DEBUG, SERVER_HEARTBEAT):
                self.close()
                raise SoupBinTCPError(f"expected a login answer, got a {kind!r} packet")

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        self._sock.sendall(data)
        self._last_sent = self.clock()

    def _next(self) -> tuple[bytes, bytes]:
        """The next packet from the server, sending heartbeats while waiting."""
        assert self._sock is not None
        while not self._pending:
            now = self.clock()
            if now - self._last_heard > self.dead_after:
                raise SoupBinTCPError(f"no packet from the server for {self.dead_after:g} s")
            if now - self._last_sent >= self.heartbeat_interval:
                self._send(encode(CLIENT_HEARTBEAT))
            self._sock.settimeout(max(0.01, min(self.heartbeat_interval, self.dead_after) / 4))
            try:
                data = self._sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                raise SoupBinTCPError("the server closed the connection")
            self._last_heard = self.clock()
            self._pending.extend(self._reader.feed(data))
        return self._pending.popleft()

    def messages(self) -> Iterator[tuple[int, bytes]]:
        """Yield (sequence number, ITCH message) until the server ends the session."""
        while not self.ended:
            kind, payload = self._next()
            if kind == SEQUENCED:
                yield self.next_sequence, payload
                self.next_sequence += 1
            elif kind == END_OF_SESSION:
                self.ended = True
            elif kind not in (SERVER_HEARTBEAT, DEBUG):
                raise SoupBinTCPError(f"unexpected {kind!r} packet after login")

    def replay_into(self, book: Book, until: int | None = None, batch: int = 4096) -> ReplayResult:
        """Feed sequenced messages to ``book`` until end of session (or once message ``until`` is applied)."""
        if self._sock is None:
            self.connect()
        first, count, frames = self.next_sequence, 0, []
        for sequence, message in self.messages():
            frames.append(_LENGTH.pack(len(message)))
            frames.append(message)
            count += 1
            if len(frames) >= 2 * batch:
                book.feed(b"".join(frames))
                frames.clear()
            if until is not None and sequence >= until:
                break
        if frames:
            book.feed(b"".join(frames))
        return ReplayResult(self.session, first, count, self.ended)

    def logout(self) -> None:
        if self._sock is not None:
            try:
                self._send(encode(LOGOUT))
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "SoupBinTCPClient":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.logout()
