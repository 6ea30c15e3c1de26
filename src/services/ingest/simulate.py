"""A test feed: a valid ITCH 5.0 day, written as a NASDAQ day file or served as MoldUDP64.

:func:`generate` makes a day of ``messages`` messages over ``symbols``
symbols from a seed: System Events (start of messages, system hours, market
hours, and their ends), a Stock Directory entry and a Trading Action ('T')
per symbol, then a mix of adds (A, F), executions (E, C), partial cancels
(X), deletes (D), replaces (U), hidden trades (P), crosses (Q) and halts
followed by resumptions (H). Every event is valid: executions, cancels,
deletes and replaces name live orders and never take more than remains, order
references are day-unique and increasing, timestamps never go back, and bids
rest below each symbol's mid price and asks above it, so no book is ever
locked or crossed. Cancels and executions mostly hit recent orders, as they
do on a real feed.

:class:`MoldUDP64Server` sends such a day as MoldUDP64 packets over UDP
(many per ``sendmmsg`` call), optionally dropping packets on purpose, answers
re-requests, and ends with end-of-session packets. :class:`SoupBinTCPServer`
replays the same messages over SoupBinTCP from the sequence number a client
logs in at, for recovery.
"""
from __future__ import annotations

import gzip
import io
import random
import re
from bisect import bisect_right
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from riskcore_services.ingest import moldudp64, soupbintcp
from riskcore_services.ingest._udp import send_datagrams

# Each message with its 2-byte length in front (day-file framing); the
# 6-byte timestamp is packed as its high 2 bytes and low 4 bytes.
_S = struct.Struct(">HcHHHIc")
_R = struct.Struct(">HcHHHI8sccIcc2scccccIc")
_H = struct.Struct(">HcHHHI8scc4s")
_A = struct.Struct(">HcHHHIQcI8sI")
_F = struct.Struct(">HcHHHIQcI8sI4s")
_E = struct.Struct(">HcHHHIQIQ")
_C = struct.Struct(">HcHHHIQIQcI")
_X = struct.Struct(">HcHHHIQI")
_D = struct.Struct(">HcHHHIQ")
_U = struct.Struct(">HcHHHIQQII")
_P = struct.Struct(">HcHHHIQcI8sIQ")
_Q = struct.Struct(">HcHHHIQ8sIQc")

START_NS = 4 * 3600 * 10**9          # 04:00, start of system hours
OPEN_NS = 9 * 3600 * 10**9 + 30 * 60 * 10**9
CLOSE_NS = 16 * 3600 * 10**9
END_NS = 20 * 3600 * 10**9
TICK = 100                           # one cent in Price(4) units
MPIDS = (b"GSCO", b"MSCO", b"JPMS", b"CDRG", b"VIRT")
LOTS = (100, 100, 100, 200, 300, 500, 1000)

# The mix of the day's body, in shares of messages (the live-order level steers adds and removals).
MIX = (("A", 0.36), ("F", 0.04), ("D", 0.27), ("X", 0.06), ("E", 0.08), ("C", 0.02), ("U", 0.10),
       ("P", 0.03), ("Q", 0.005), ("H", 0.005))
LIVE_PER_SYMBOL = 40                 # the live orders per symbol the day hovers around
TICKER = re.compile(r"[A-Z0-9]{1,8}")  # the Stock field is 8 alphanumeric bytes, space padded


def header_messages(symbols: int) -> int:
    """Messages a day of ``symbols`` symbols has besides its body (events, directory, actions)."""
    return 2 * symbols + 6


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What day to make.

    Parameters
    ----------
    messages : int
        Messages in the day, all included (at least ``2 * symbols + 6``).
    symbols : int
        Symbols, with stock locates 1..symbols (at most 65,535).
    seed : int
        The same seed makes the same bytes.
    names : tuple of str
        Tickers of the first symbols (so a day can carry symbols a risk
        engine knows); the others get seeded random tickers, as all do when
        it is empty. 1 to 8 capital letters or digits each, distinct.
    """

    messages: int = 1_000_000
    symbols: int = 100
    seed: int = 0
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.symbols <= 65_535:
            raise ValueError(f"symbols must be in 1..65535, got {self.symbols}")
        if len(self.names) > self.symbols:
            raise ValueError(f"names: {len(self.names)} tickers for {self.symbols} symbols")
        for name in self.names:
            if not TICKER.fullmatch(name):
                raise ValueError(f"names: a ticker is 1 to 8 capital letters or digits, got {name[:40]!r}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"names: tickers must be distinct, got {list(self.names)}")
        if self.messages < header_messages(self.symbols):
            raise ValueError(f"messages must be at least 2 * symbols + 6 = {header_messages(self.symbols)} "
                             f"for {self.symbols} symbols, got {self.messages}")


@dataclass(slots=True)
class _Symbol:
    name: bytes          # 8 bytes, space padded
    mid: int             # Price(4), a whole number of ticks
    halted: bool = False


def symbol_names(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct tickers of 1 to 5 capital letters, in a seeded order."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    names: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        name = "".join(rng.choice(letters) for _ in range(rng.choice((1, 2, 3, 3, 4, 4, 4, 5))))
        if name not in names:
            names.add(name)
            out.append(name)
    return out


def generate(config: SimulationConfig, chunk_messages: int = 65_536) -> Iterator[bytes]:
    """Yield the day as chunks of length-framed messages (about ``chunk_messages`` each).

    Notes
    -----
    Pure Python, about 1 µs per message; deterministic for a given config.
    """
    rng = random.Random(config.seed)
    n_sym = config.symbols
    # Drawn whether or not names are given, so a day without names is the same bytes as before they existed.
    drawn = [name for name in symbol_names(n_sym, rng) if name not in config.names]
    syms = [_Symbol(name.encode().ljust(8), rng.randrange(500, 50_000) * TICK)
            for name in (*config.names, *drawn)[:n_sym]]
    total = config.messages
    body = total - header_messages(n_sym)
    step = max(1, (END_NS - START_NS) // (total + 1))
    out: list[bytes] = []
    ts = START_NS

    def tsplit(t: int) -> tuple[int, int]:
        return t >> 32, t & 0xFFFFFFFF

    def event(code: bytes) -> None:
        out.append(_S.pack(12, b"S", 0, 0, *tsplit(ts), code))

    event(b"O")
    for loc, s in enumerate(syms, start=1):
        ts += step
        out.append(_R.pack(39, b"R", loc, 0, *tsplit(ts), s.name, b"Q", b"N", 100, b"N", b"C", b"  ", b"P",
                           b"N", b"N", b" ", b"N", 0, b"N"))
    ts += step
    event(b"S")
    for loc, s in enumerate(syms, start=1):
        ts += step
        out.append(_H.pack(25, b"H", loc, 0, *tsplit(ts), s.name, b"T", b" ", b"    "))
    ts += step
    event(b"Q")

    # Live orders: ``live`` lists references (for a random pick, removal by
    # swap with the last), ``orders`` maps a reference to [index in live,
    # locate, side, price, shares].
    live: list[int] = []
    orders: dict[int, list] = {}
    next_ref = 1
    match = 1
    target_live = LIVE_PER_SYMBOL * n_sym
    kinds = [k for k, _ in MIX]
    cum, acc = [], 0.0
    for _, w in MIX:
        acc += w
        cum.append(acc / sum(w for _, w in MIX))
    halted: list[int] = []              # locates halted now, resumed a while later
    rand = rng.random
    randrange = rng.randrange
    pack_a, pack_f, pack_e, pack_c, pack_x = _A.pack, _F.pack, _E.pack, _C.pack, _X.pack
    pack_d, pack_u, pack_p, pack_q, pack_h = _D.pack, _U.pack, _P.pack, _Q.pack, _H.pack

    def pick() -> int:
        # Most cancels and executions hit recent orders.
        n = len(live)
        if n > 64 and rand() < 0.7:
            return live[n - 1 - int(rand() * 64)]
        return live[int(rand() * n)]

    def remove(ref: int) -> None:
        entry = orders.pop(ref)
        i = entry[0]
        last = live.pop()
        if last != ref:
            live[i] = last
            orders[last][0] = i

    def price_for(s: _Symbol, buy: bool) -> int:
        # 1 + a geometric number of ticks away from the mid: most orders rest near the top.
        k = 1
        while rand() < 0.55 and k < 40:
            k += 1
        return s.mid - k * TICK if buy else s.mid + k * TICK

    for i in range(body):
        ts += step
        hi, lo = ts >> 32, ts & 0xFFFFFFFF
        track = i & 0xFFFF
        r = rand()
        kind = kinds[bisect_right(cum, r)] if r < cum[-1] else kinds[-1]
        n_live = len(live)
        if n_live == 0 or (kind in "DXECU" and n_live < target_live // 4):
            kind = "A"
        elif kind in "AF" and n_live > 2 * target_live:
            kind = "D"
        if kind == "H":
            if halted and (len(halted) > 2 or rand() < 0.5):
                loc = halted.pop(0)
                syms[loc - 1].halted = False
                out.append(pack_h(25, b"H", loc, track, hi, lo, syms[loc - 1].name, b"T", b" ", b"    "))
            else:
                loc = int(rand() * n_sym) + 1
                s = syms[loc - 1]
                if s.halted:
                    kind = "A"          # already halted: an add instead
                else:
                    s.halted = True
                    halted.append(loc)
                    out.append(pack_h(25, b"H", loc, track, hi, lo, s.name, b"H", b" ", b"T1  "))
        if kind == "H":
            pass
        elif kind == "A" or kind == "F":
            loc = int(rand() * n_sym) + 1
            s = syms[loc - 1]
            buy = rand() < 0.5
            price = price_for(s, buy)
            shares = LOTS[int(rand() * len(LOTS))] if rand() < 0.8 else 1 + int(rand() * 4999)
            ref = next_ref
            next_ref += 1 + (rand() < 0.33)
            side = b"B" if buy else b"S"
            if kind == "A":
                out.append(pack_a(36, b"A", loc, track, hi, lo, ref, side, shares, s.name, price))
            else:
                out.append(pack_f(40, b"F", loc, track, hi, lo, ref, side, shares, s.name, price,
                                  MPIDS[int(rand() * len(MPIDS))]))
            orders[ref] = [len(live), loc, buy, price, shares]
            live.append(ref)
        elif kind == "P" or kind == "Q":
            loc = int(rand() * n_sym) + 1
            s = syms[loc - 1]
            if s.halted:                # no trades while halted: the halt ends instead
                s.halted = False
                halted.remove(loc)
                out.append(pack_h(25, b"H", loc, track, hi, lo, s.name, b"T", b" ", b"    "))
            elif kind == "P":
                shares = randrange(1, 1000)
                out.append(pack_p(44, b"P", loc, track, hi, lo, 0, b"B", shares, s.name, s.mid, match))
                match += 1
            else:
                shares = randrange(0, 50_000) if rand() < 0.9 else 0
                out.append(pack_q(40, b"Q", loc, track, hi, lo, shares, s.name, s.mid, match,
                                  rng.choice((b"O", b"C", b"H"))))
                match += 1
        else:
            ref = pick()
            entry = orders[ref]
            loc, buy, price, shares = entry[1], entry[2], entry[3], entry[4]
            s = syms[loc - 1]
            if s.halted and kind in "EC":
                kind = "D"              # no executions while halted
            if kind == "X" and shares < 2:
                kind = "D"
            if kind == "D":
                out.append(pack_d(19, b"D", loc, track, hi, lo, ref))
                remove(ref)
            elif kind == "X":
                cut = randrange(1, shares)
                out.append(pack_x(23, b"X", loc, track, hi, lo, ref, cut))
                entry[4] = shares - cut
            elif kind == "E" or kind == "C":
                done = shares if rand() < 0.6 else randrange(1, shares + 1)
                if kind == "E":
                    out.append(pack_e(31, b"E", loc, track, hi, lo, ref, done, match))
                else:
                    printable = b"Y" if rand() < 0.9 else b"N"
                    out.append(pack_c(36, b"C", loc, track, hi, lo, ref, done, match, printable,
                                      price + (TICK if buy else -TICK) * randrange(0, 2)))
                match += 1
                if done == shares:
                    remove(ref)
                else:
                    entry[4] = shares - done
            else:                       # U: a new reference, size and price on the same side
                new_ref = next_ref
                next_ref += 1
                new_price = price_for(s, buy)
                new_shares = randrange(1, 3000)
                out.append(pack_u(35, b"U", loc, track, hi, lo, ref, new_ref, new_shares, new_price))
                remove(ref)
                orders[new_ref] = [len(live), loc, buy, new_price, new_shares]
                live.append(new_ref)
        if len(out) >= chunk_messages:
            yield b"".join(out)
            out.clear()

    ts = max(ts, CLOSE_NS)
    event(b"M")
    ts = max(ts + step, END_NS - 2 * step)
    event(b"E")
    ts += step
    event(b"C")
    yield b"".join(out)


def write_day_file(path: str, config: SimulationConfig, compress: bool = False) -> int:
    """Write the day of ``config`` to ``path`` (gzip when ``compress``); return the bytes written (uncompressed)."""
    written = 0
    handle: io.BufferedIOBase
    with (gzip.open(path, "wb", compresslevel=1) if compress else open(path, "wb")) as handle:
        for chunk in generate(config):
            handle.write(chunk)
            written += len(chunk)
    return written


def split_messages(data: bytes) -> list[bytes]:
    """The messages (without their length prefixes) of a length-framed buffer; a cut-off tail is dropped."""
    out, pos, n = [], 0, len(data)
    while pos + 2 <= n:
        length = (data[pos] << 8) | data[pos + 1]
        if pos + 2 + length > n:
            break
        out.append(data[pos + 2:pos + 2 + length])
        pos += 2 + length
    return out


@dataclass
class ServerStats:
    packets: int = 0
    dropped: int = 0               # packets not sent on purpose
    requests: int = 0
    retransmitted: int = 0         # messages sent again in answer to requests
    dropped_sequences: list[int] = field(default_factory=list)


class MoldUDP64Server:
    """Serve a list of ITCH messages as one MoldUDP64 session over UDP.

    Parameters
    ----------
    messages : sequence of bytes
        The session's messages; message i has sequence number i + 1.
    target : (host, port)
        Where the stream goes (a unicast address or a multicast group).
    session : str
        The 10-character session name.
    loss : float
        Probability that a stream packet is dropped instead of sent (seeded by
        ``seed``); answers to re-requests are never dropped.
    max_payload : int
        Bytes of message blocks per packet at most (MoldUDP64 over Ethernet
        keeps packets under the MTU).
    host : str
        Address the re-request socket binds (port chosen by the system:
        ``request_address``).

    Notes
    -----
    Call :meth:`start` to answer re-requests in a background thread,
    :meth:`stream` to send the session (then end-of-session packets), and
    :meth:`stop` at the end.
    """

    def __init__(self, messages: Sequence[bytes], target: tuple[str, int], session: str = "SIMSESSION",
                 loss: float = 0.0, seed: int = 0, max_payload: int = 1400, host: str = "127.0.0.1") -> None:
        if not 0.0 <= loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), got {loss}")
        self.messages = list(messages)
        self.target = target
        self.session = moldudp64.session_bytes(session)
        self.loss = loss
        self.max_payload = max_payload
        self.stats = ServerStats()
        self._rng = random.Random(seed)
        self._send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._send.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self._send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        self._send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        self._requests = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._requests.bind((host, 0))
        self._requests.settimeout(0.05)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def request_address(self) -> tuple[str, int]:
        """Where re-requests go."""
        return self._requests.getsockname()

    def packets(self, first: int = 1, last: int | None = None) -> Iterator[tuple[int, list[bytes]]]:
        """(sequence, messages) of each packet covering messages first..last (1-based, inclusive)."""
        last = len(self.messages) if last is None else min(last, len(self.messages))
        seq = first
        while seq <= last:
            batch: list[bytes] = []
            size = 0
            while seq + len(batch) <= last:
                m = self.messages[seq + len(batch) - 1]
                if batch and size + 2 + len(m) > self.max_payload:
                    break
                batch.append(m)
                size += 2 + len(m)
            yield seq, batch
            seq += len(batch)

    def start(self) -> "MoldUDP64Server":
        self._thread = threading.Thread(target=self._serve_requests, name="mold-rerequest", daemon=True)
        self._thread.start()
        return self

    def encoded(self) -> tuple[bytes, np.ndarray, list[int]]:
        """The stream's datagrams back to back, their offsets, and the first sequence of each dropped packet.

        Which packets are dropped is drawn here (seeded), so encode once per stream.
        """
        parts: list[bytes] = []
        offsets = [0]
        dropped: list[int] = []
        for seq, batch in self.packets():
            if self.loss and self._rng.random() < self.loss:
                dropped.append(seq)
                continue
            parts.append(moldudp64.encode_packet(self.session, seq, batch))
            offsets.append(offsets[-1] + len(parts[-1]))
        return b"".join(parts), np.array(offsets, dtype=np.int64), dropped

    def stream(self, end_packets: int = 3, end_interval: float = 0.01, burst: int = 32,
               pause: float = 0.0005) -> None:
        """Send every message once, then ``end_packets`` end-of-session packets.

        After each ``burst`` packets the sender sleeps ``pause`` seconds, so
        a receiver on the same machine is not overrun (a real feed is paced
        by the wire).
        """
        data, offsets, dropped = self.encoded()
        self.stats.dropped += len(dropped)
        self.stats.dropped_sequences += dropped
        self.send(data, offsets, burst, pause)
        self.end_session(end_packets, end_interval)

    def send(self, data: bytes, offsets: np.ndarray, burst: int = 32, pause: float = 0.0005,
             rate: float | None = None) -> None:
        """Send the encoded datagrams (:meth:`encoded`), ``burst`` at a time (``sendmmsg``).

        Between bursts: ``pause`` seconds, or with ``rate`` (datagrams per
        second) until the burst's time on that schedule.
        """
        self._send.connect(self.target)
        count = len(offsets) - 1
        step = burst or count
        start = time.perf_counter()
        for first in range(0, count, step):
            last = min(count, first + step)
            self.stats.packets += send_datagrams(self._send.fileno(), data, offsets, first, last)
            wait = pause if rate is None else start + last / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)

    def end_session(self, packets: int = 3, interval: float = 0.01) -> None:
        """Send ``packets`` end-of-session packets, ``interval`` seconds apart."""
        for _ in range(packets):
            self._send.sendto(moldudp64.encode_end_of_session(self.session, len(self.messages) + 1), self.target)
            time.sleep(interval)

    def heartbeat(self) -> None:
        """Send one heartbeat carrying the next sequence number."""
        self._send.sendto(moldudp64.encode_heartbeat(self.session, len(self.messages) + 1), self.target)

    def _serve_requests(self) -> None:
        while not self._stopping.is_set():
            try:
                data, addr = self._requests.recvfrom(65_535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                session, seq, count = moldudp64.decode_request(data)
            except moldudp64.MoldUDP64Error:
                continue
            if session != self.session or seq < 1 or seq > len(self.messages) or count == 0:
                continue
            self.stats.requests += 1
            # One packet answers a request: as many of the messages as fit.
            first, batch = next(self.packets(seq, seq + count - 1))
            self.stats.retransmitted += len(batch)
            self._requests.sendto(moldudp64.encode_packet(self.session, first, batch), addr)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._requests.close()
        self._send.close()

    def __enter__(self) -> "MoldUDP64Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SoupBinTCPServer:
    """Replay a list of ITCH messages over SoupBinTCP, one client at a time, from the sequence each logs in at.

    Parameters
    ----------
    messages : sequence of bytes
        The session's messages; message i has sequence number i + 1.
    session : str
        The session name sent in the login accepted packet.
    username, password : str
        A login with another password is rejected (``A``, not authorized).
    silent : float
        Seconds of silence after the login answer (to try a client's
        heartbeats and dead-link timeout).
    end : bool
        Send end of session after the last message.
    host : str
        Address to listen on (port chosen by the system: ``address``).

    Notes
    -----
    ``start`` serves in a background thread until ``stop``; ``logins`` lists
    each login as (username, password, session, sequence) and ``received``
    the types of the client packets read after it.
    """

    def __init__(self, messages: Sequence[bytes], session: str = "SIMSESSION", username: str = "user",
                 password: str = "secret", silent: float = 0.0, end: bool = True, host: str = "127.0.0.1") -> None:
        self.messages = list(messages)
        self.session_name, self.password, self.silent, self.end = session, password, silent, end
        self.username = username
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(0.05)
        self.logins: list[tuple[str, str, str, int]] = []
        self.received: list[bytes] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.getsockname()

    def start(self) -> "SoupBinTCPServer":
        self._thread = threading.Thread(target=self._serve, name="soupbintcp-replay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.listener.close()

    def __enter__(self) -> "SoupBinTCPServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                try:
                    self._replay(conn)
                except (OSError, soupbintcp.SoupBinTCPError):
                    pass                # the client went away or spoke something else: serve the next one

    def _read(self, conn: socket.socket, reader: soupbintcp.FrameReader) -> list[tuple[bytes, bytes]]:
        try:
            data = conn.recv(65_536)
        except TimeoutError:
            return []
        if not data:
            raise soupbintcp.SoupBinTCPError("the client closed the connection")
        return reader.feed(data)

    def _replay(self, conn: socket.socket) -> None:
        reader = soupbintcp.FrameReader()
        conn.settimeout(0.02)
        packets: list[tuple[bytes, bytes]] = []
        while not packets:
            if self._stopping.is_set():
                return
            packets += self._read(conn, reader)
        kind, payload = packets.pop(0)
        if kind != soupbintcp.LOGIN:
            raise soupbintcp.SoupBinTCPError(f"expected a login, got a {kind!r} packet")
        login = soupbintcp.decode_login(payload)
        self.logins.append(login)
        if login[1] != self.password:
            conn.sendall(soupbintcp.encode(soupbintcp.LOGIN_REJECTED, b"A"))
            return
        first = max(1, login[3])
        conn.sendall(soupbintcp.encode(soupbintcp.DEBUG, b"riskcore simulator")
                     + soupbintcp.encode_login_accepted(self.session_name, first))
        deadline = time.monotonic() + self.silent
        while time.monotonic() < deadline:
            self.received += [k for k, _ in self._read(conn, reader)]
        sequenced = soupbintcp.SEQUENCED
        for start in range(first - 1, len(self.messages), 4096):
            conn.sendall(b"".join(soupbintcp.encode(sequenced, m) for m in self.messages[start:start + 4096]))
        if self.end:
            conn.sendall(soupbintcp.encode(soupbintcp.END_OF_SESSION))
        while True:         # until the client logs out or hangs up (on stop: until it goes quiet)
            got = [k for k, _ in self._read(conn, reader)]
            self.received += got
            if soupbintcp.LOGOUT in got or not got and self._stopping.is_set():
                return
