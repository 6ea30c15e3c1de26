"""Where the service's book gets its messages: a day file replayed, or a MoldUDP64 session on UDP.

A source runs as the server's feed task and drives a :class:`Feed` (the
server): it hands over length-framed messages in sequence with
:meth:`Feed.apply` (a replay) or feeds the book in :meth:`Feed.run_on_book`
(UDP), and says whether they can be trusted with :meth:`Feed.set_state`.
Sources do no decoding; the book does (compiled,
without the GIL, in a worker thread for large chunks).

MoldUDP64 is received by a compiled loop (``_udp``, through
``moldudp64.Receiver``) in a worker thread holding the book; only packets out
of sequence reach the Python sequencer. Recovery, in order (the research
notes' "by size of gap"): the sequencer holds packets past a gap in a bounded
reorder buffer and re-requests the missing messages with bounded retries; a
gap larger than ``soup_after`` messages, or one the re-requests could not
fill, is fetched over SoupBinTCP (log in at the first missing sequence
number) when a SoupBinTCP server is configured, while live packets keep
arriving into the reorder buffer and are applied after the recovered ones (a
live packet that finds it full fails the feed closed until fetched too).
Without one, a gap the re-requests cannot fill leaves the feed FAILED: its
book is wrong until a restart.
"""
from __future__ import annotations

import asyncio
import datetime
import enum
import functools
import time
import zoneinfo
from typing import Awaitable, Callable, Protocol, TypeVar

from riskcore import Book

from riskcore_services.common.logging import get_logger
from riskcore_services.ingest import moldudp64
from riskcore_services.ingest.config import MoldUDP64Config, ReplayConfig, split_address
from riskcore_services.ingest.reader import next_frame, open_day_file, read_messages
from riskcore_services.ingest.soupbintcp import SoupBinTCPClient, SoupBinTCPError

log = get_logger("ingest.feed")

T = TypeVar("T")
IDLE_STEP = 0.01          # seconds a UDP step waits for a first datagram at most


class FeedState(enum.Enum):
    """Whether the book can be trusted (the wire's ``FeedState``)."""

    STARTING = 1
    LIVE = 2
    GAP = 3
    RECOVERING = 4
    FAILED = 5
    ENDED = 6

    @property
    def stale(self) -> bool:
        """Messages are missing: any symbol's quote may be wrong (a gap can hide any symbol's messages)."""
        return self in (FeedState.GAP, FeedState.RECOVERING, FeedState.FAILED)


class Feed(Protocol):
    """What a source drives (the server)."""

    book: Book

    async def apply(self, data: bytes | memoryview, until: int | None = None, lag: float | None = None,
                    final: bool = False) -> int:
        """Feed length-framed messages to the book; return the bytes consumed (complete frames only, unless
        ``final``: then a cut-off frame at the end is counted as truncated and everything is consumed)."""
        ...

    async def run_on_book(self, step: Callable[[], T]) -> T:
        """Run ``step`` (which feeds ``book``) in a worker thread holding the book; publish what changed."""
        ...

    def observe_lag(self, seconds: float) -> None:
        """Record one exchange-timestamp-to-receive lag."""
        ...

    def set_state(self, state: FeedState) -> None: ...

    async def restart(self) -> None:
        """Start again on an empty book (a looping replay)."""
        ...


class ReplaySource:
    """A NASDAQ day file (plain or gzip) read in chunks and fed in order.

    As fast as the book takes it (``speed`` 0), or paced: each message is
    applied no earlier than its recorded time since the file's first message,
    divided by ``speed``; the lag is how late the first message of each batch
    is against that schedule. With ``loop`` the file starts again on an empty
    book when it ends; otherwise the feed is ENDED.
    """

    kind = "replay"

    def __init__(self, config: ReplayConfig, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep):
        if config.file is None:
            raise ValueError("a replay needs a file")
        self.path = config.file
        self.speed = config.speed
        self.loop = config.loop
        self.chunk_bytes = config.chunk_bytes
        self.clock = clock
        self.sleep = sleep
        self.loops = 0
        self.bytes = 0

    def session(self) -> dict:
        return dict(session=str(self.path), loops=self.loops)

    async def run(self, feed: Feed) -> None:
        feed.set_state(FeedState.LIVE)
        while True:
            await self._pass(feed)
            if not self.loop:
                break
            self.loops += 1
            await feed.restart()
        feed.set_state(FeedState.ENDED)

    async def _pass(self, feed: Feed) -> None:
        handle = await asyncio.to_thread(open_day_file, str(self.path))
        buffer = bytearray(self.chunk_bytes)
        view = memoryview(buffer)
        filled = 0
        self._first_ts: int | None = None
        self._start = self.clock()
        try:
            while True:
                n = await asyncio.to_thread(handle.readinto, view[filled:])
                if not n:
                    break
                self.bytes += n
                filled += n
                if self.speed:
                    consumed = await self._paced(feed, view, filled)
                else:
                    consumed = await feed.apply(view[:filled])
                rest = filled - consumed
                view[:rest] = view[consumed:filled]
                filled = rest
            if filled:
                await feed.apply(bytes(view[:filled]), final=True)    # a frame the file cut off
        finally:
            handle.close()

    async def _paced(self, feed: Feed, view: memoryview, filled: int) -> int:
        consumed = 0
        while (frame := next_frame(view, consumed, filled)) is not None:
            size, ts = frame
            if ts < 0:              # too short to be stamped: the book counts it
                consumed += await feed.apply(view[consumed:consumed + size])
                continue
            if self._first_ts is None:
                self._first_ts, self._start = ts, self.clock()
            scheduled = self._start + (ts - self._first_ts) / 1e9 / self.speed
            wait = scheduled - self.clock()
            if wait > 0:
                await self.sleep(wait)
            now = self.clock()
            # Everything due by now goes in one call.
            due = self._first_ts + int((now - self._start) * self.speed * 1e9)
            consumed += await feed.apply(view[consumed:filled], until=max(due, ts), lag=max(0.0, now - scheduled))
        return consumed


def fetch_over_soup(address: tuple[str, int], username: str, password: str, first: int, last: int,
                    timeout: float = 5.0) -> list[bytes]:
    """Messages ``first..last`` of the current session from a SoupBinTCP server (fewer when it ends sooner).

    Blocking: run it in a worker thread.
    """
    with SoupBinTCPClient(address, username, password, "", first, connect_timeout=timeout,
                          dead_after=max(timeout, 1.0)) as client:
        if client.next_sequence > first:
            raise SoupBinTCPError(f"the server starts at message {client.next_sequence}, after {first}")
        out = []
        for sequence, message in client.messages():
            if sequence < first:
                continue
            out.append(message)
            if sequence >= last:
                break
        return out


def as_packets(session: bytes, first: int, messages: list[bytes]) -> list[moldudp64.Packet]:
    """Recovered messages as MoldUDP64 packets (for the sequencer), at most 0xFFFE messages each."""
    packets = []
    step = moldudp64.MAX_MESSAGES_PER_PACKET
    for start in range(0, len(messages), step):
        part = messages[start:start + step]
        blocks = b"".join(len(m).to_bytes(2, "big") + m for m in part)
        packets.append(moldudp64.Packet(session, first + start, len(part), blocks))
    return packets


def exchange_clock(zone: str) -> Callable[[], int]:
    """Nanoseconds since midnight now, in the exchange's time zone (ITCH's timestamp scale)."""
    tz = zoneinfo.ZoneInfo(zone)

    def now_ns() -> int:
        now = datetime.datetime.now(tz)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return (now - midnight) // datetime.timedelta(microseconds=1) * 1000

    return now_ns


class MoldUDP64Source:
    """One MoldUDP64 session on UDP, sequenced, re-requested and recovered over SoupBinTCP.

    The feed task runs :meth:`moldudp64.Receiver.step` in a worker thread
    holding the book (:meth:`Feed.run_on_book`): packets in sequence are
    received in batches and decoded in C without the GIL; the rest go through
    the sequencer. A gap past ``soup_after`` messages, or one the re-requests
    could not fill, is fetched over SoupBinTCP by a task of its own while the
    steps go on: live packets wait in the sequencer's reorder buffer (at most
    ``reorder_limit`` messages) and are applied after the recovered ones. A
    live packet that finds the buffer full is dropped and counted
    (``recovery_overflow``) and the feed is FAILED, its quotes stale, until
    the recovery has fetched past it too.

    Parameters
    ----------
    config : MoldUDP64Config
    clock : callable
        Monotonic seconds, for the sequencer's retries.
    exchange_now : callable, optional
        Nanoseconds since midnight in the exchange's time zone, for the lag.
    """

    kind = "moldudp64"

    def __init__(self, config: MoldUDP64Config, clock: Callable[[], float] = time.monotonic,
                 exchange_now: Callable[[], int] | None = None):
        self.config = config
        session = moldudp64.session_bytes(config.session) if config.session else None
        self.sequencer = moldudp64.Sequencer(config.sequencer(), session=session)
        self.rerequest = split_address(config.rerequest, "rerequest")
        self.soup = split_address(config.soup, "soup")
        self.clock = clock
        self.exchange_now = exchange_now or exchange_clock(config.exchange_timezone)
        self.address: tuple[str, int] | None = None
        self.recovery_file = config.recovery_file if self.soup is None else None
        self.soup_recoveries = 0
        self.soup_failures = 0
        self.file_recoveries = 0
        self.recovery_overflow = 0         # live messages dropped while a recovery ran: the feed went FAILED
        self.last_error = ""
        self._recovery: asyncio.Task[tuple[int, list[bytes]]] | None = None
        self._overflow_mark = 0            # sequencer overflow count when the recovery started
        self._inconsistent = False
        self._recovery_not_before = 0.0
        self._bound = asyncio.Event()

    async def bound(self) -> tuple[str, int]:
        """The address the receiver listens on, once it does."""
        await self._bound.wait()
        assert self.address is not None
        return self.address

    def session(self) -> dict:
        seq, stats = self.sequencer, self.sequencer.stats
        return dict(session=(seq.session or b"").decode("ascii", "replace").strip(),
                    expected_sequence=seq.expected, highest_sequence=seq.highest, packets=stats.packets,
                    heartbeats=stats.heartbeats, gaps=stats.gaps, recovered_messages=stats.recovered,
                    requests=stats.requests, duplicates=stats.duplicates, reorder_held=seq.held,
                    reorder_overflow=stats.overflow, malformed=stats.malformed + stats.wrong_session,
                    soup_recoveries=self.soup_recoveries, soup_failures=self.soup_failures,
                    file_recoveries=self.file_recoveries,
                    recovery_overflow=self.recovery_overflow, last_error=self.last_error)

    def state(self) -> FeedState:
        seq = self.sequencer
        if self._inconsistent or seq.failed:
            return FeedState.FAILED
        if self._recovery is not None:
            return FeedState.RECOVERING
        if seq.in_gap:
            return FeedState.GAP
        if seq.ended:
            return FeedState.ENDED
        return FeedState.LIVE if seq.stats.packets else FeedState.STARTING

    # ------------------------------------------------------------ the feed task

    async def run(self, feed: Feed) -> None:
        config = self.config
        receiver = moldudp64.Receiver(self.sequencer, feed.book, (config.group, config.port), self.rerequest,
                                      config.interface, config.receive_buffer, self.clock)
        self.address = receiver.address
        self._bound.set()
        log.info("receiving MoldUDP64", address=f"{self.address[0]}:{self.address[1]}", group=config.group,
                 rerequest=config.rerequest or None, soup=config.soup or None)
        # Idle steps end soon, so GetBook (which waits for the book) waits little on a quiet feed.
        step = functools.partial(receiver.step, min(config.retry_after, IDLE_STEP))
        try:
            while True:
                got = await feed.run_on_book(step)
                if got.first_timestamp >= 0:
                    # The exchange's clock when the first applied datagram was taken, against its stamp.
                    taken = self.exchange_now() - (time.time_ns() - got.received_ns)
                    feed.observe_lag(max(0.0, (taken - got.first_timestamp) / 1e9))
                await self._recover(feed, receiver)
                if self.sequencer.failed and not self.sequencer.in_gap:
                    self.sequencer.failed = False   # the gap was filled after all (a late answer): whole again
                feed.set_state(self.state())
        finally:
            if self._recovery is not None:
                self._recovery.cancel()
            receiver.close()

    def _needs_recovery(self) -> bool:
        seq = self.sequencer
        if self.soup is None and self.recovery_file is None or self.clock() < self._recovery_not_before \
                or not seq.in_gap:
            return False
        return seq.failed or seq.highest - seq.expected > self.config.soup_after

    async def _recover(self, feed: Feed, receiver: moldudp64.Receiver) -> None:
        """Start a fetch of the front of the gap (SoupBinTCP or the recovery file) when one is due; apply one
        that has finished."""
        seq, config = self.sequencer, self.config
        if self._recovery is None:
            if self._needs_recovery():
                first = seq.expected
                last = min(seq.highest - 1, first + config.soup_batch - 1)
                self._overflow_mark = seq.stats.overflow
                self._recovery = asyncio.create_task(self._fetch(first, last))
                feed.set_state(FeedState.RECOVERING)
            elif self._inconsistent and not seq.in_gap:
                self._inconsistent = False       # fetched past everything the full buffer dropped
            return
        if seq.stats.overflow > self._overflow_mark:
            # Live data the queue could not hold: fail closed until the recovery has fetched it too.
            self.recovery_overflow += seq.stats.overflow - self._overflow_mark
            self._overflow_mark = seq.stats.overflow
            self._inconsistent = True
        if not self._recovery.done():
            return
        task, self._recovery = self._recovery, None
        try:
            first, messages = task.result()
        except (OSError, SoupBinTCPError, EOFError) as error:
            if self.soup is not None:
                self.soup_failures += 1
            where = "SoupBinTCP" if self.soup is not None else "recovery file"
            self.last_error = f"{where}: {type(error).__name__}: {error}"
            self._recovery_not_before = self.clock() + 1.0
            log.warning("recovery failed; trying again in 1 s", error=self.last_error)
            return
        if self.soup is not None:
            self.soup_recoveries += 1
        else:
            self.file_recoveries += 1
        seq.failed = False          # the sequencer may retry re-requests for whatever is still missing
        session = seq.session
        assert session is not None  # a gap is only known once a packet has named the session
        await feed.run_on_book(functools.partial(receiver.inject, as_packets(session, first, messages)))
        log.info("gap recovered", source="soupbintcp" if self.soup is not None else "file", first=first,
                 messages=len(messages))

    async def _fetch(self, first: int, last: int) -> tuple[int, list[bytes]]:
        config = self.config
        if self.soup is not None:
            messages = await asyncio.to_thread(fetch_over_soup, self.soup, config.soup_username,
                                               config.soup_password, first, last)
        else:
            assert self.recovery_file is not None
            messages = await asyncio.to_thread(read_messages, str(self.recovery_file), first, last)
        return first, messages
