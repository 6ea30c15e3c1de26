"""The ingestion service's process: the common server plus the feed, the book and where marks go.

``IngestServer`` adds to :class:`~riskcore_services.common.server.Server` one
:class:`riskcore.Book`, the feed task that fills it from a source (a day file
or MoldUDP64), and the outputs of what changed: the ``Subscribe`` hub, the
risk engine (``UpdatePrices``) and NATS JetStream. Tests construct it with
port 0 and read the bound ports back.

The book is one object that is not thread-safe: the feed task holds a lock
while a chunk is decoded (in a worker thread when large: the decoder
releases the GIL) and ``GetBook`` takes the same lock, so it waits at most one
chunk. Everything else (status, metrics) reads counters the feed task copies
after each chunk.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import pathlib
import time
from collections import Counter
from typing import Any, Callable, TypeVar

from riskcore import Book
from riskcore.book import Level, Mark
from riskcore_services.common.logging import get_logger
from riskcore_services.common.server import Server
from riskcore_services.ingest.codec import encode_quote
from riskcore_services.ingest.config import ConfigError, IngestConfig, SimulatedDay
from riskcore_services.ingest.metrics import IngestMetrics
from riskcore_services.ingest.outputs import NatsQuotes, RiskMarks
from riskcore_services.ingest.quotes import Quote, QuoteHub, mark_price
from riskcore_services.ingest.servicer import make_servicer
from riskcore_services.ingest.simulate import write_day_file
from riskcore_services.ingest.sources import FeedState, MoldUDP64Source, ReplaySource
from riskcore_services.proto import ingest_pb2, monitor_pb2

# The book's counters that say it applied something it could not make sense of (never on valid data).
INTEGRITY_COUNTERS = frozenset({"unknown_ref", "duplicate_add", "over_execution", "crossed_book"})
GAP_STATES = (FeedState.GAP, FeedState.RECOVERING)

log = get_logger("ingest.server")

T = TypeVar("T")

MARKET_DATA = ingest_pb2.DESCRIPTOR.services_by_name["MarketData"]
# Smaller chunks are decoded on the event loop: a worker thread costs more than it saves below this.
INLINE_BYTES = 64 * 1024


class FeedError(RuntimeError):
    """The feed cannot start (the replay file is missing and cannot be made)."""


@dataclasses.dataclass(slots=True)
class BookView:
    """What the feed task copies from the book after each chunk, for readers that must not wait for it."""

    symbols: int = 0
    orders: int = 0
    last_timestamp: int = 0
    messages: int = 0              # frames of the current book (all types)


def make_source(config: IngestConfig) -> ReplaySource | MoldUDP64Source:
    if config.source == "replay":
        return ReplaySource(config.replay)
    return MoldUDP64Source(config.moldudp64)


def make_risk_client(config: IngestConfig) -> Any:
    """A RiskClient for ``risk_target`` with the configured deadline and token (ConfigError if unreadable)."""
    from riskcore_services.risk.client import RiskClient

    token = None
    if config.risk_token_file is not None:
        try:
            token = config.risk_token_file.read_text().strip()
        except OSError as error:
            raise ConfigError(f"ingest.risk_token_file: cannot read {str(config.risk_token_file)!r}: "
                              f"{error.strerror}") from None
    return RiskClient(config.risk_target, token=token, deadline=config.risk_deadline)


def write_simulated_day(path: pathlib.Path, day: SimulatedDay) -> None:
    """Write the simulator's day to ``path`` (through a temporary file, so a crash leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write_day_file(str(partial), day.simulation())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


class IngestServer(Server):
    """The market data service, started and stopped on the running event loop.

    Parameters
    ----------
    config : IngestConfig
    source : ReplaySource or MoldUDP64Source, optional
        Built from ``config`` when omitted.
    risk_client : RiskClient, optional
        Built from ``config.risk_target`` when omitted (tests pass one with
        short deadlines).
    """

    event_source = "ingest"

    def __init__(self, config: IngestConfig, source: ReplaySource | MoldUDP64Source | None = None,
                 risk_client: Any = None):
        super().__init__(config, [MARKET_DATA], "market data ingest")
        self.config: IngestConfig = config
        self.book = Book()
        self._book_lock = asyncio.Lock()
        replay = config.replay
        if source is None and config.source == "replay" and replay.file is not None and replay.generate is None \
                and not replay.file.is_file():
            raise ConfigError(f"ingest.replay.file: no such file {str(replay.file)!r}")
        self.source = source if source is not None else make_source(config)
        self.state = FeedState.STARTING
        self._stale_since = 0.0            # when the feed last went stale (for the recovery time)
        self.feed_error = ""
        self.lag_seconds = 0.0
        self.view = BookView()
        # Totals since start, across a looping replay's resets (the book's own counts restart with it).
        self.message_totals: Counter[str] = Counter()
        self.counter_totals: Counter[str] = Counter()
        self._seen_types: dict[str, int] = {}
        self._seen_counters: dict[str, int] = {}
        self._withheld: set[str] = set()    # symbols whose quotes were stale when taken
        self.hub = QuoteHub(config.subscriber_buffer)
        self.risk: RiskMarks | None = None
        if config.risk_target:
            self.risk = RiskMarks(risk_client or make_risk_client(config), config.marks_interval, config.marks_batch)
        self.nats: NatsQuotes | None = None
        if config.nats_servers:
            self.nats = NatsQuotes(config.nats_servers, config.nats_stream, config.nats_subject,
                                   config.nats_history, config.marks_interval, encode_quote)
        self.metrics = IngestMetrics(self.registry, self)
        self.event_stream.conditions = self._conditions

    def servicers(self):
        return [(MARKET_DATA, make_servicer(self, self.calls))]

    def started(self) -> dict:
        where = (str(self.config.replay.file) if self.config.source == "replay"
                 else f"{self.config.moldudp64.group}:{self.config.moldudp64.port}")
        return dict(source=self.config.source, feed=where, risk_target=self.config.risk_target or None,
                    nats=list(self.config.nats_servers) or None)

    async def recover(self) -> None:
        """Make the sample day when configured and absent, start the feed and the outputs, then serve."""
        replay = self.config.replay
        if isinstance(self.source, ReplaySource) and replay.file is not None and not replay.file.exists():
            if replay.generate is None:
                raise FeedError(f"ingest.replay.file: no such file {str(replay.file)!r}")
            log.info("writing a simulated day to replay", file=str(replay.file), messages=replay.generate.messages,
                     symbols=replay.generate.symbols, seed=replay.generate.seed)
            try:
                await asyncio.to_thread(write_simulated_day, replay.file, replay.generate)
            except OSError as error:
                raise FeedError(f"cannot write the simulated day to {str(replay.file)!r}: {error.strerror}") from None
        self.spawn(self._run_feed())
        for output in (self.risk, self.nats):
            if output is not None:
                self.spawn(output.run())
        await self.serve()

    async def _run_feed(self) -> None:
        try:
            await self.source.run(self)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the service stays up to say what happened
            self.feed_error = f"{type(error).__name__}: {error}"
            log.exception("feed stopped", error=self.feed_error)
            self.set_state(FeedState.FAILED)

    # ------------------------------------------------------------ the Feed the source drives

    async def apply(self, data: bytes | memoryview, until: int | None = None, lag: float | None = None,
                    final: bool = False) -> int:
        """Feed length-framed messages to the book, then publish what changed; return the bytes consumed."""
        async with self._book_lock:
            book = self.book
            if final:
                if len(data) >= INLINE_BYTES:
                    await asyncio.to_thread(book.feed, data)
                else:
                    book.feed(data)
                consumed = len(data)
            elif len(data) >= INLINE_BYTES:
                consumed = await asyncio.to_thread(book.feed_chunk, data, until)
            else:
                consumed = book.feed_chunk(data, until)
            marks = book.marks()
            self._observe(book)
        if lag is not None:
            self.observe_lag(lag)
        self._publish(marks, self.view.last_timestamp)
        return consumed

    async def run_on_book(self, step: Callable[[], T]) -> T:
        """Run ``step`` (which feeds the book, releasing the GIL) in a worker thread holding the book, then
        publish what changed."""
        async with self._book_lock:
            result = await asyncio.to_thread(step)
            marks = self.book.marks()
            self._observe(self.book)
        self._publish(marks, self.view.last_timestamp)
        return result

    def observe_lag(self, seconds: float) -> None:
        self.lag_seconds = seconds
        self.metrics.lag_series.observe(seconds)

    def _observe(self, book: Book) -> None:
        """Copy the book's counts for status and metrics; add what is new to the totals."""
        counts, counters = book.message_counts(), book.counters()
        for kind, count in counts.items():
            self.message_totals[kind] += count - self._seen_types.get(kind, 0)
        for name, count in counters.items():
            new = count - self._seen_counters.get(name, 0)
            self.counter_totals[name] += new
            if new and name in INTEGRITY_COUNTERS:
                self.event_stream.publish("book_inconsistent", {"feed": self.config.source, "counter": name},
                                          value=self.counter_totals[name], detail=f"{new} new {name}")
        self._seen_types, self._seen_counters = counts, counters
        self.view = BookView(len(book.symbols()), book.orders, book.last_timestamp, sum(counts.values()))

    def _publish(self, marks: list[Mark], exchange_time: int) -> None:
        stale = self.state.stale
        quotes = [Quote(mark, exchange_time, stale) for mark in marks if mark.symbol is not None]
        if not quotes:
            return
        self.hub.publish(quotes)
        if self.nats is not None:
            for quote in quotes:
                self.nats.offer(quote.symbol, quote)
        if stale:
            # Not sent to the risk engine; sent again, fresh, once the feed is whole (see set_state).
            self._withheld.update(quote.symbol for quote in quotes)
            if self.risk is not None:
                self.risk.withhold(len(quotes))
        elif self.risk is not None:
            for quote in quotes:
                price = mark_price(quote.mark)
                if price is not None:
                    self.risk.offer(quote.symbol, price)

    def set_state(self, state: FeedState) -> None:
        """Take the source's word on whether the book can be trusted."""
        was = self.state
        if state is was:
            return
        self.state = state
        now = time.monotonic()
        if state.stale and not was.stale:
            self._stale_since = now
        elif was.stale and not state.stale:
            self.metrics.recovery_series.observe(now - self._stale_since)
        log.info("feed state", state=state.name, was=was.name, expected=self.source.session().get("expected_sequence"))
        for event in self._conditions():
            self.event_stream.forward(event)
        if state.stale and not was.stale and self.risk is not None:
            self._withheld.update(self.risk.drop_pending())
        if was.stale and not state.stale and self._withheld:
            # The symbols that changed while the feed was in doubt: their quotes again, now that they hold.
            symbols, self._withheld = self._withheld, set()
            self._publish([self.hub.latest[s].mark for s in sorted(symbols) if s in self.hub.latest],
                          self.view.last_timestamp)

    def _conditions(self) -> list[monitor_pb2.Event]:
        """The feed's gap and staleness now, as events."""
        state, stream = self.state, self.event_stream
        session = self.source.session().get("session", "")
        detail = f"feed {state.name}"
        return [stream.event("feed_gap", {"session": session}, active=state in GAP_STATES, detail=detail),
                stream.event("feed_stale", {"feed": self.config.source}, active=state.stale, detail=detail)]

    async def restart(self) -> None:
        """Start again on an empty book (a looping replay)."""
        async with self._book_lock:
            self.book.reset()
            self._observe(self.book)
        self.hub.clear()
        self._withheld.clear()

    # ------------------------------------------------------------ reads

    async def book_of(self, symbol: str, depth: int) -> tuple[Quote, list[Level], list[Level], str]:
        """(quote, bids, asks, ITCH trading state) of ``symbol``; UnknownSymbolError (a KeyError) when the
        directory has not named it."""
        async with self._book_lock:
            book = self.book
            top = book.top(symbol)
            bids, asks = book.depth(symbol, depth)
            last = book.last_trade(symbol)
            locate = book.locate(symbol)
            mark = Mark(book.symbol_name(locate), locate, top.bid_price, top.bid_size, top.ask_price, top.ask_size,
                        top.last_price, last.shares if last else 0, last.timestamp if last else 0,
                        book.halted(symbol))
            quote = Quote(mark, book.last_timestamp, self.state.stale)
            return quote, bids, asks, book.trading_state(symbol)

    def status(self) -> dict[str, Any]:
        """What GetStatus answers (see ``StatusResponse``)."""
        source, view = self.source, self.view
        session = dict(source.session())
        session["state"] = self.state
        if self.feed_error:
            session["last_error"] = self.feed_error
        if isinstance(source, ReplaySource):
            session.update(expected_sequence=view.messages + 1, highest_sequence=view.messages + 1)
        outputs = []
        hub = self.hub.totals()
        outputs.append(dict(name="subscribers", enabled=True, sent=hub["sent"], conflated=hub["conflated"],
                            failed=hub["evicted"], pending=hub["pending"]))
        risk = self.risk
        outputs.append(dict(name="risk", enabled=risk is not None) if risk is None else dict(
            name="risk", enabled=True, sent=risk.sent, failed=risk.failed, conflated=risk.conflated,
            unknown_symbols=len(risk.unknown), withheld_stale=risk.withheld_stale, pending=risk.queued,
            last_error=risk.last_error))
        nats = self.nats
        outputs.append(dict(name="nats", enabled=nats is not None) if nats is None else dict(
            name="nats", enabled=True, sent=nats.sent, failed=nats.failed, conflated=nats.conflated,
            pending=nats.queued, last_error=nats.last_error))
        counters = dict(self._seen_counters)
        counters.pop("messages", None)
        return dict(source=source.kind, state=self.state, sessions=[session], messages=self._seen_counters.get(
            "messages", 0), messages_by_type=dict(self._seen_types), counters=counters, symbols=view.symbols,
            orders=view.orders, exchange_time_ns=view.last_timestamp, lag_seconds=self.lag_seconds,
            subscribers=self.hub.subscribers, outputs=outputs)

    # ------------------------------------------------------------ the way down

    async def stop(self, grace: float | None = None) -> None:
        # Subscribe streams never end on their own: end them (after what they hold) so the stop need not
        # wait out the grace period for them.
        self.hub.close()
        await super().stop(grace)

    async def flush(self) -> None:
        if self.nats is not None:
            await self.nats.close()
        if self.risk is not None:
            self.risk.client.close()
