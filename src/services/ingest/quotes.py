"""Quotes taken from the book, the mark each implies, and the conflating hub behind ``Subscribe``.

A quote is a :class:`riskcore.book.Mark` (top of book, last trade, halt) with
when it was taken and whether the feed could be trusted then. Subscribers
never queue quotes: each has a buffer keyed by symbol holding the latest
quote not yet sent, so a subscriber slower than the book gets the newest
quote of every symbol and skips the ones in between (counted as
``conflated``). The buffer holds at most one entry per symbol and at most
``limit`` symbols, so no subscriber can grow the process, and the publisher
(the feed) never waits for one.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Iterable, NamedTuple

from riskcore.book import Mark

PRICE_SCALE = 10_000        # ITCH Price(4): 1/10,000 of a dollar


class Quote(NamedTuple):
    """One symbol's state as published: the book's mark, the feed's time, and whether it is stale."""

    mark: Mark
    exchange_time: int          # the feed's last stamp (ns since midnight) when it was taken
    stale: bool                 # the feed was in a gap, recovering or failed

    @property
    def symbol(self) -> str:
        return self.mark.symbol or ""


def mark_price(mark: Mark) -> float | None:
    """The price the risk engine gets for ``mark``, in dollars.

    The mid, ``(bid + ask) / 2``, when both sides are quoted and the book is not
    crossed or locked; otherwise the last trade's price; None when there is
    neither (then no mark is sent). The mid of whole Price(4) units is exact in
    half units, so the only rounding is the float division (the risk engine
    then rounds to its instrument's tick).
    """
    bid, ask = mark.bid_price, mark.ask_price
    if bid is not None and ask is not None and bid < ask:
        return (bid + ask) / (2 * PRICE_SCALE)
    if mark.last_price is not None and mark.last_price > 0:
        return mark.last_price / PRICE_SCALE
    return None


class Subscription:
    """One subscriber's buffer: the latest unsent quote of each symbol it follows.

    Parameters
    ----------
    symbols : frozenset of str, optional
        The symbols followed; None: all.
    limit : int
        Symbols waiting at most; a new symbol past it drops the one waiting longest (``evicted``).
    """

    __slots__ = ("symbols", "limit", "pending", "conflated", "evicted", "sent", "closed", "_ready")

    def __init__(self, symbols: frozenset[str] | None, limit: int):
        self.symbols = symbols
        self.limit = limit
        self.pending: dict[str, Quote] = {}   # insertion order: the symbol waiting longest first
        self.conflated = 0          # quotes replaced by a newer one of the same symbol before being sent
        self.evicted = 0            # quotes dropped by the bound on symbols waiting
        self.sent = 0
        self.closed = False
        self._ready = asyncio.Event()

    def offer(self, quote: Quote) -> bool:
        """Hold ``quote`` until it is taken; return True when it replaced an unsent one (conflation)."""
        symbol, pending = quote.symbol, self.pending
        replaced = symbol in pending
        if replaced:
            self.conflated += 1     # keeps its place in line: a busy symbol cannot starve the others
        elif len(pending) >= self.limit:
            del pending[next(iter(pending))]
            self.evicted += 1
        pending[symbol] = quote
        self._ready.set()
        return replaced

    async def next(self) -> Quote | None:
        """The quote waiting longest (of the symbol that changed first); None once closed."""
        while not self.pending:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        symbol = next(iter(self.pending))
        self.sent += 1
        return self.pending.pop(symbol)

    def close(self) -> None:
        self.closed = True
        self._ready.set()


class QuoteHub:
    """Publishes quotes to every subscription that follows their symbol, conflating per symbol.

    ``latest`` keeps the last quote of every symbol, so a new subscription
    starts with the current state of what it follows.

    Parameters
    ----------
    limit : int
        Each subscription's bound on symbols waiting.
    on_conflate : callable(int), optional
        Told how many quotes one publish replaced (for the drop counter).
    """

    def __init__(self, limit: int = 65_535, on_conflate: Callable[[int], None] = lambda n: None):
        self.limit = limit
        self.latest: dict[str, Quote] = {}
        self._all: set[Subscription] = set()                   # following every symbol
        self._by_symbol: dict[str, set[Subscription]] = {}
        self._on_conflate = on_conflate
        self.published = 0          # quotes offered to subscriptions (one per subscription)
        self.conflated = 0
        self.evicted = 0
        self.sent = 0               # of subscriptions that have ended

    def subscribe(self, symbols: Iterable[str] = ()) -> Subscription:
        """A subscription to ``symbols`` (empty: all), holding the current quote of each already."""
        wanted = frozenset(symbols) or None
        sub = Subscription(wanted, self.limit)
        if wanted is None:
            self._all.add(sub)
            current = list(self.latest.values())
        else:
            for symbol in wanted:
                self._by_symbol.setdefault(symbol, set()).add(sub)
            current = [self.latest[s] for s in sorted(wanted) if s in self.latest]
        for quote in current:
            sub.offer(quote)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        if sub.symbols is None:
            if sub in self._all:
                self._all.discard(sub)
                self._retire(sub)
            return
        found = False
        for symbol in sub.symbols:
            subs = self._by_symbol.get(symbol)
            if subs is not None and sub in subs:
                found = True
                subs.discard(sub)
                if not subs:
                    del self._by_symbol[symbol]
        if found:
            self._retire(sub)

    def _retire(self, sub: Subscription) -> None:
        self.conflated += sub.conflated
        self.evicted += sub.evicted
        self.sent += sub.sent

    def publish(self, quotes: Iterable[Quote]) -> None:
        """Offer each quote to its followers; never waits, never grows a buffer past its bound."""
        everyone, by_symbol, latest = self._all, self._by_symbol, self.latest
        offered = conflated = 0
        for quote in quotes:
            symbol = quote.symbol
            latest[symbol] = quote
            for sub in everyone:
                conflated += sub.offer(quote)
                offered += 1
            subs = by_symbol.get(symbol)
            if subs:
                for sub in subs:
                    conflated += sub.offer(quote)
                    offered += 1
        self.published += offered
        if conflated:
            self._on_conflate(conflated)

    def clear(self) -> None:
        """Forget the latest quotes (the book was reset); subscriptions keep what they hold."""
        self.latest.clear()

    def close(self) -> None:
        """End every subscription (their streams finish after sending what they hold)."""
        for sub in self.subscriptions():
            sub.close()

    def subscriptions(self) -> list[Subscription]:
        subs = set(self._all)
        for group in self._by_symbol.values():
            subs |= group
        return list(subs)

    @property
    def subscribers(self) -> int:
        return len(self.subscriptions())

    def totals(self) -> dict[str, int]:
        """Conflated, evicted and sent quotes over every subscription, ended or live; symbols waiting now."""
        live = self.subscriptions()
        return dict(conflated=self.conflated + sum(s.conflated for s in live),
                    evicted=self.evicted + sum(s.evicted for s in live),
                    sent=self.sent + sum(s.sent for s in live),
                    pending=sum(len(s.pending) for s in live))
