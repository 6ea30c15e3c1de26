"""Where marks and quotes go besides ``Subscribe``: the risk engine and NATS JetStream.

Both are conflated per symbol: changes wait in a dict keyed by symbol (one
entry per symbol, the newest) and a sender task takes the whole dict at most
once per ``interval``, so neither a slow risk engine nor a slow NATS server
can make the feed wait or the process grow. A failing destination is
counted and retried; the feed goes on.
"""
from __future__ import annotations

import asyncio
import re
from typing import Any, Sequence

import grpc

from riskcore_services.common.client import ServiceUnavailable
from riskcore_services.common.logging import get_logger
from riskcore_services.ingest.quotes import Quote

log = get_logger("ingest.outputs")


class _Conflated:
    """A dict of the newest value per symbol, drained by one sender task at most once per interval."""

    def __init__(self, name: str, interval: float):
        self.name = name
        self.interval = interval
        self.pending: dict[str, Any] = {}
        self.in_flight = 0          # symbols taken by the sender and not yet settled
        self.sent = 0
        self.failed = 0
        self.conflated = 0
        self.last_error = ""
        self._wake = asyncio.Event()

    def offer(self, symbol: str, value: Any) -> None:
        if symbol in self.pending:
            self.conflated += 1
        self.pending[symbol] = value
        self._wake.set()

    def _put_back(self, rows: dict[str, Any]) -> None:
        """Return rows that could not be sent; a newer value that arrived meanwhile wins."""
        for symbol, value in rows.items():
            self.pending.setdefault(symbol, value)
        if self.pending:
            self._wake.set()

    async def _take(self) -> dict[str, Any]:
        await self._wake.wait()
        self._wake.clear()
        rows, self.pending = self.pending, {}
        return rows

    async def run(self) -> None:
        while True:
            rows = await self._take()
            if rows:
                self.in_flight = len(rows)
                try:
                    await self._send(rows)
                except Exception as error:  # noqa: BLE001 - an output must never stop the feed
                    log.exception(f"{self.name} output error")
                    self.fail(len(rows), f"{type(error).__name__}: {error}")
                finally:
                    self.in_flight = 0
            await asyncio.sleep(self.interval)

    async def _send(self, rows: dict[str, Any]) -> None:
        raise NotImplementedError

    @property
    def queued(self) -> int:
        """Symbols waiting or being sent."""
        return len(self.pending) + self.in_flight

    def fail(self, count: int, error: str) -> None:
        self.failed += count
        if error != self.last_error:
            log.warning(f"{self.name} output failing", error=error)
        self.last_error = error


class RiskMarks(_Conflated):
    """Marks to the risk engine with ``UpdatePrices`` through a :class:`RiskClient` (deadline, retry, breaker).

    Symbols the engine does not know are found by splitting a refused batch
    (the engine applies nothing of a batch naming an unknown symbol), counted
    once, and skipped from then on. While the engine is unreachable the marks
    wait (the newest per symbol) for the next attempt.

    Parameters
    ----------
    client : RiskClient
        Synchronous; its calls run in a worker thread.
    interval : float
        Seconds between calls at least.
    batch : int
        Rows per call at most.
    """

    def __init__(self, client: Any, interval: float, batch: int = 10_000):
        super().__init__("risk", interval)
        self.client = client
        self.batch = batch
        self.unknown: set[str] = set()
        self.withheld_stale = 0

    def offer(self, symbol: str, value: Any) -> None:
        if symbol not in self.unknown:
            super().offer(symbol, value)

    def withhold(self, count: int) -> None:
        """Count marks not sent because the feed could not be trusted when they were taken."""
        self.withheld_stale += count

    def drop_pending(self) -> list[str]:
        """The feed just became stale: what waits is not sent (it is sent again once the feed is whole);
        return the symbols dropped."""
        dropped = list(self.pending)
        self.withheld_stale += len(dropped)
        self.pending.clear()
        return dropped

    async def _send(self, rows: dict[str, Any]) -> None:
        items = list(rows.items())
        for start in range(0, len(items), self.batch):
            part = items[start:start + self.batch]
            if not await self._update([s for s, _ in part], [p for _, p in part]):
                self._put_back(dict(items[start:]))
                return

    async def _update(self, symbols: Sequence[str], prices: Sequence[float]) -> bool:
        """Send one batch (split to find unknown symbols); False when the engine is unreachable."""
        try:
            await asyncio.to_thread(self.client.update_prices, symbols, prices)
        except ServiceUnavailable as error:
            # Counted at every attempt; the rows wait (newest per symbol) for the next one.
            self.fail(len(symbols), str(error))
            return False
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                if len(symbols) == 1:
                    self.unknown.add(symbols[0])
                    log.info("risk engine does not know a symbol; not sending its marks", symbol=symbols[0])
                    return True
                half = len(symbols) // 2
                return (await self._update(symbols[:half], prices[:half])
                        and await self._update(symbols[half:], prices[half:]))
            self.fail(len(symbols), f"{error.code().name}: {error.details()}")
            return True
        self.sent += len(symbols)
        return True


_NOT_IN_SUBJECT = re.compile(r"[.*> \t\r\n]")


def subject_token(symbol: str) -> str:
    """A symbol as one NATS subject token: dots, wildcards and spaces become ``_``."""
    return _NOT_IN_SUBJECT.sub("_", symbol) or "_"


class NatsQuotes(_Conflated):
    """Quotes to NATS JetStream: subject ``<prefix>.<symbol>``, payload a serialized ``riskcore.v1.Quote``.

    The stream (``stream``, subjects ``<prefix>.>``, ``history`` messages kept
    per subject) is created when missing. Until a server can be reached the
    client retries connecting every second (each failed attempt counts in
    ``failed``) while quotes wait, the newest per symbol; a publish that fails
    or is not acknowledged in time is counted and the quote dropped (the
    symbol's next change is sent as usual).
    """

    def __init__(self, servers: Sequence[str], stream: str, prefix: str, history: int, interval: float,
                 encode, timeout: float = 2.0, concurrency: int = 256):
        super().__init__("nats", interval)
        self.servers = list(servers)
        self.stream = stream
        self.prefix = prefix
        self.history = history
        self.encode = encode          # Quote -> bytes
        self.timeout = timeout
        self.concurrency = concurrency
        self.connected = False
        self._nc: Any = None
        self._js: Any = None

    async def _connect(self) -> None:
        import nats
        from nats.js import api
        from nats.js.errors import BadRequestError

        while self._js is None:
            try:
                nc = await nats.connect(self.servers, name="riskcore-ingest", connect_timeout=self.timeout,
                                        allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=1.0,
                                        error_cb=self._on_error, disconnected_cb=self._on_disconnect,
                                        reconnected_cb=self._on_reconnect)
            except Exception as error:  # noqa: BLE001 - NoServersError, OSError, timeouts: retried
                self.fail(0, f"cannot connect: {type(error).__name__}: {error}")
                await asyncio.sleep(1.0)
                continue
            js = nc.jetstream(timeout=self.timeout)
            config = api.StreamConfig(name=self.stream, subjects=[f"{self.prefix}.>"],
                                      max_msgs_per_subject=self.history, storage=api.StorageType.FILE)
            try:
                await js.add_stream(config)
            except BadRequestError as error:
                # A stream of that name with other settings: publish to it as it is (it still takes the subjects).
                log.warning("JetStream stream exists with other settings; using it", stream=self.stream,
                            error=str(error))
            except Exception as error:  # noqa: BLE001 - JetStream not enabled, timeouts: retried
                self.fail(0, f"cannot create stream {self.stream}: {type(error).__name__}: {error}")
                await nc.close()
                await asyncio.sleep(1.0)
                continue
            self._nc, self._js, self.connected = nc, js, True
            log.info("publishing quotes to NATS", servers=self.servers, stream=self.stream,
                     subjects=f"{self.prefix}.>")

    async def _on_error(self, error: Exception) -> None:
        # Also called for each failed attempt to connect (nats-py retries the first connection for ever too).
        self.fail(1, f"{'cannot connect' if not self.connected else 'connection error'}: "
                     f"{type(error).__name__}: {error}")

    async def _on_disconnect(self) -> None:
        self.connected = False

    async def _on_reconnect(self) -> None:
        self.connected = True

    async def run(self) -> None:
        await self._connect()
        await super().run()

    async def _send(self, rows: dict[str, Any]) -> None:
        quotes: list[Quote] = list(rows.values())
        for start in range(0, len(quotes), self.concurrency):
            part = quotes[start:start + self.concurrency]
            results = await asyncio.gather(*(self._js.publish(f"{self.prefix}.{subject_token(q.symbol)}",
                                                              self.encode(q), timeout=self.timeout)
                                             for q in part), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            self.sent += len(part) - len(failures)
            if failures:
                error = failures[0]
                self.fail(len(failures), f"publish: {type(error).__name__}: {error}")

    async def close(self) -> None:
        if self._nc is not None:
            try:
                await self._nc.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
