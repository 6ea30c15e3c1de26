"""Protobuf in and out for the MarketData service: request checks and the messages built from book state.

Checks fail closed with ``InvalidArgument`` naming the field: a symbol is 1..8
printable ASCII characters (ITCH's Stock field, space padded on the wire), a
subscription names at most 65,535 symbols (the most stock locates a day can
have), a book depth is 1..1000 levels.
"""
from __future__ import annotations

from typing import Any, Sequence

from riskcore.book import Level
from riskcore_services.common.errors import InvalidArgument
from riskcore_services.ingest.quotes import Quote, mark_price
from riskcore_services.ingest.sources import FeedState
from riskcore_services.proto import ingest_pb2

MAX_SYMBOL_CHARS = 8
MAX_SUBSCRIBED = 65_535
MAX_DEPTH = 1_000

MARKET_STATES = {"T": ingest_pb2.MARKET_STATE_TRADING, "H": ingest_pb2.MARKET_STATE_HALTED,
                 "P": ingest_pb2.MARKET_STATE_PAUSED, "Q": ingest_pb2.MARKET_STATE_QUOTATION_ONLY}
FEED_STATES = {state: ingest_pb2.FeedState.Value(f"FEED_STATE_{state.name}") for state in FeedState}
FEED_SOURCES = {"replay": ingest_pb2.FEED_SOURCE_REPLAY, "moldudp64": ingest_pb2.FEED_SOURCE_MOLDUDP64}


def check_symbol(symbol: str, field: str) -> str:
    """``symbol`` when it can name an ITCH stock; InvalidArgument naming ``field`` otherwise."""
    if not (0 < len(symbol) <= MAX_SYMBOL_CHARS and symbol.isascii() and symbol.isprintable()
            and symbol == symbol.strip()):
        shown = symbol if len(symbol) <= 40 else symbol[:40] + "..."
        raise InvalidArgument(f"{field}: expected 1..{MAX_SYMBOL_CHARS} printable ASCII characters without "
                              f"leading or trailing spaces, got {shown!r}")
    return symbol


def subscribe_symbols(request: ingest_pb2.SubscribeRequest) -> list[str]:
    """The symbols a Subscribe follows (empty: all)."""
    symbols = request.symbols
    if len(symbols) > MAX_SUBSCRIBED:
        raise InvalidArgument(f"symbols: at most {MAX_SUBSCRIBED} symbols, got {len(symbols)}")
    return [check_symbol(s, f"symbols[{i}]") for i, s in enumerate(symbols)]


def book_request(request: ingest_pb2.BookRequest) -> tuple[str, int]:
    """(symbol, depth) of a GetBook."""
    symbol = check_symbol(request.symbol, "symbol")
    if not 1 <= request.depth <= MAX_DEPTH:
        raise InvalidArgument(f"depth: expected 1..{MAX_DEPTH} price levels per side, got {request.depth}")
    return symbol, request.depth


def quote_message(quote: Quote, conflated: int = 0) -> ingest_pb2.Quote:
    mark = quote.mark
    message = ingest_pb2.Quote(
        symbol=mark.symbol or "", locate=mark.locate, bid_size=mark.bid_size, ask_size=mark.ask_size,
        last_size=mark.last_size, last_time_ns=mark.last_time, halted=mark.halted, stale=quote.stale,
        exchange_time_ns=quote.exchange_time, conflated=conflated)
    # Optional fields: absent, not 0, where a side is empty or there was no trade.
    if mark.bid_price is not None:
        message.bid_price = mark.bid_price
    if mark.ask_price is not None:
        message.ask_price = mark.ask_price
    if mark.last_price is not None:
        message.last_price = mark.last_price
    price = mark_price(mark)
    if price is not None:
        message.mark_price = price
    return message


def encode_quote(quote: Quote) -> bytes:
    """A quote as the bytes published on NATS."""
    return quote_message(quote).SerializeToString()


def _levels(levels: Sequence[Level]) -> list[ingest_pb2.BookLevel]:
    return [ingest_pb2.BookLevel(price=level.price, shares=level.shares, orders=level.orders) for level in levels]


def book_message(quote: Quote, bids: Sequence[Level], asks: Sequence[Level], state: str) -> ingest_pb2.BookResponse:
    return ingest_pb2.BookResponse(quote=quote_message(quote), bids=_levels(bids), asks=_levels(asks),
                                   market_state=MARKET_STATES.get(state, ingest_pb2.MARKET_STATE_UNSPECIFIED))


def status_message(status: dict[str, Any]) -> ingest_pb2.StatusResponse:
    """GetStatus from the server's :meth:`~riskcore_services.ingest.server.IngestServer.status`."""
    sessions = [ingest_pb2.FeedSession(**{**session, "state": FEED_STATES[session["state"]]})
                for session in status["sessions"]]
    outputs = [ingest_pb2.OutputStatus(**output) for output in status["outputs"]]
    return ingest_pb2.StatusResponse(
        source=FEED_SOURCES[status["source"]], state=FEED_STATES[status["state"]], stale=status["state"].stale,
        sessions=sessions, messages=status["messages"], messages_by_type=status["messages_by_type"],
        counters=status["counters"], symbols=status["symbols"], orders=status["orders"],
        exchange_time_ns=status["exchange_time_ns"], lag_seconds=status["lag_seconds"],
        subscribers=status["subscribers"], outputs=outputs)
