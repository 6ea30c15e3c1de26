"""gRPC glue of the MarketData service: check the request, read the server's book or hub, answer.

Every method is wrapped by :meth:`CallHandling.rpc` (request id, auth,
readiness, status mapping, metrics, log line). An unknown symbol in GetBook is
the book's ``UnknownSymbolError``, a KeyError, so NOT_FOUND; a bad field is
INVALID_ARGUMENT naming it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from riskcore_services.common.calls import CallHandling
from riskcore_services.ingest import codec
from riskcore_services.proto import ingest_pb2_grpc

if TYPE_CHECKING:
    from riskcore_services.ingest.server import IngestServer


def make_servicer(server: "IngestServer", calls: CallHandling) -> ingest_pb2_grpc.MarketDataServicer:
    """Return the MarketData servicer reading ``server``, each method wrapped by ``calls``."""

    class MarketDataServicer(ingest_pb2_grpc.MarketDataServicer):
        @calls.rpc("Subscribe")
        async def Subscribe(self, request, call):
            # The current quote of each followed symbol, then changes; a slow reader gets the newest of
            # each symbol (its buffer holds one per symbol), never an ever-growing queue.
            sub = server.hub.subscribe(codec.subscribe_symbols(request))
            try:
                while (quote := await sub.next()) is not None:
                    await call.context.write(codec.quote_message(quote, sub.conflated))
            finally:
                server.hub.unsubscribe(sub)

        @calls.rpc("GetBook")
        async def GetBook(self, request, call):
            symbol, depth = codec.book_request(request)
            return codec.book_message(*await server.book_of(symbol, depth))

        @calls.rpc("GetStatus")
        def GetStatus(self, request, call):
            return codec.status_message(server.status())

    return MarketDataServicer()
