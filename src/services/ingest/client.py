"""Quotes for strategy code: the market data service's ``Subscribe``, kept current by a thread.

:class:`QuoteFeed` follows a fixed set of symbols and holds the latest quote
of each; the strategy's own loop takes the ones that changed with
:meth:`QuoteFeed.drain` (newest per symbol: a slow strategy skips quotes, it
never falls behind). When the stream breaks, every quote is dropped (fail
closed: no quote rather than one the feed no longer vouches for) and the feed
subscribes again after an exponential backoff; the service then sends the
current quote of each symbol first.
"""
from __future__ import annotations

import threading
from typing import Any, Iterable, Optional

import grpc

from riskcore_services.common.client import ServiceClient
from riskcore_services.ingest.codec import subscribe_symbols
from riskcore_services.proto import ingest_pb2, ingest_pb2_grpc

__all__ = ["MarketDataClient", "QuoteFeed"]


class MarketDataClient(ServiceClient):
    """Client of the MarketData service (options as :class:`ServiceClient`'s: token, TLS, deadline)."""

    def __init__(self, target: str = "127.0.0.1:50053", **options: Any):
        super().__init__(target, ingest_pb2_grpc.MarketDataStub, **options)

    def subscribe(self, symbols: Iterable[str]) -> Any:
        """The Subscribe call for ``symbols`` (no deadline: it lasts until cancelled); iterate it for quotes."""
        return self._stub.Subscribe(ingest_pb2.SubscribeRequest(symbols=list(symbols)), metadata=self._metadata)


class QuoteFeed:
    """The latest quote of each of ``symbols``, read from ``client.subscribe`` by a daemon thread.

    Parameters
    ----------
    client : MarketDataClient
    symbols : iterable of str
        At least one; each 1..8 printable ASCII characters (InvalidArgument, a ValueError, names the bad one).
    retry_initial, retry_max : float
        Seconds before subscribing again after the stream broke, doubling up to ``retry_max``.

    Notes
    -----
    Every method takes one lock for a dict operation; none waits on the network.
    """

    def __init__(self, client: MarketDataClient, symbols: Iterable[str], retry_initial: float = 0.1,
                 retry_max: float = 2.0):
        self.symbols = subscribe_symbols(ingest_pb2.SubscribeRequest(symbols=list(symbols)))
        if not self.symbols:
            raise ValueError("symbols: at least one symbol to follow")
        self.client = client
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.connected = False        # a quote came since the stream last (re)opened
        self.last_error = ""          # why the stream last broke
        self._latest: dict[str, ingest_pb2.Quote] = {}
        self._fresh: dict[str, ingest_pb2.Quote] = {}
        self._lock = threading.Lock()
        self._arrived = threading.Event()
        self._closed = threading.Event()
        self._call: Any = None
        self._thread = threading.Thread(target=self._follow, name="quote-feed", daemon=True)
        self._thread.start()

    def latest(self, symbol: str) -> Optional[ingest_pb2.Quote]:
        """The newest quote of ``symbol``; None before the first one and while the stream is broken."""
        with self._lock:
            return self._latest.get(symbol)

    def drain(self) -> list[ingest_pb2.Quote]:
        """The quotes that arrived since the last drain, the newest of each symbol."""
        with self._lock:
            fresh, self._fresh = list(self._fresh.values()), {}
            self._arrived.clear()
        return fresh

    def wait(self, timeout: float) -> bool:
        """Block until a quote is waiting to be drained or ``timeout`` seconds pass; True if one is."""
        return self._arrived.wait(timeout)

    def close(self) -> None:
        self._closed.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(5.0)
        self.client.close()

    def _follow(self) -> None:
        delay = self.retry_initial
        while not self._closed.is_set():
            self._call = self.client.subscribe(self.symbols)
            if self._closed.is_set():        # close() may have missed this call
                self._call.cancel()
            try:
                for quote in self._call:
                    with self._lock:
                        self.connected = True
                        self._latest[quote.symbol] = self._fresh[quote.symbol] = quote
                    self._arrived.set()
                    delay = self.retry_initial
                error = "the market data service ended the stream"
            except grpc.RpcError as failure:
                error = f"{failure.code().name}: {failure.details()}"
            with self._lock:
                self.connected = False
                self.last_error = error
                self._latest.clear()
                self._fresh.clear()
            self._closed.wait(delay)
            delay = min(delay * 2, self.retry_max)
