"""The conflating quote hub behind Subscribe, and the mark each quote implies (no sockets)."""
from __future__ import annotations

import asyncio

from riskcore.book import Mark
from riskcore_services.ingest.quotes import Quote, QuoteHub, mark_price


def quote(symbol: str, bid: int | None = 1_000_000, ask: int | None = 1_000_200, last: int | None = None) -> Quote:
    return Quote(Mark(symbol, 1, bid, 100, ask, 100, last, 0 if last is None else 10, 0, False), 0, False)


def drain(sub) -> list[Quote]:
    async def take() -> list[Quote]:
        out = []
        while sub.pending:
            out.append(await sub.next())
        return out
    return asyncio.run(take())


def test_mark_price_is_the_mid_of_a_two_sided_book():
    assert mark_price(quote("A", 1_000_000, 1_000_100).mark) == 100.005


def test_mark_price_is_the_last_trade_when_a_side_is_empty_or_the_book_is_crossed_or_locked():
    assert mark_price(quote("A", None, 1_000_100, last=999_900).mark) == 99.99
    assert mark_price(quote("A", 1_000_100, 1_000_100, last=999_900).mark) == 99.99
    assert mark_price(quote("A", 1_000_200, 1_000_100, last=999_900).mark) == 99.99


def test_no_mark_without_a_two_sided_book_or_a_trade():
    assert mark_price(quote("A", 1_000_000, None).mark) is None
    assert mark_price(quote("A", None, None).mark) is None


def test_a_subscription_holds_the_latest_quote_of_each_symbol_in_the_order_they_first_changed():
    hub = QuoteHub()
    sub = hub.subscribe()
    hub.publish([quote("A", bid=1), quote("B", bid=1)])
    hub.publish([quote("A", bid=2)])
    hub.publish([quote("A", bid=3), quote("C", bid=1)])

    got = drain(sub)
    assert [(q.symbol, q.mark.bid_price) for q in got] == [("A", 3), ("B", 1), ("C", 1)]
    assert sub.conflated == 2 and hub.totals()["conflated"] == 2 and hub.published == 5


def test_a_subscription_follows_only_its_symbols_and_starts_with_their_current_quotes():
    hub = QuoteHub()
    hub.publish([quote("A", bid=1), quote("B", bid=1)])
    sub = hub.subscribe(["B", "Z"])
    hub.publish([quote("A", bid=2), quote("Z", bid=5)])

    assert [(q.symbol, q.mark.bid_price) for q in drain(sub)] == [("B", 1), ("Z", 5)]


def test_past_its_bound_the_symbol_waiting_longest_is_dropped_and_counted():
    hub = QuoteHub(limit=2)
    sub = hub.subscribe()
    hub.publish([quote("A"), quote("B"), quote("C")])

    assert [q.symbol for q in drain(sub)] == ["B", "C"]
    assert sub.evicted == 1 and len(sub.pending) == 0


def test_a_closed_subscription_ends_after_what_it_holds_and_unsubscribing_keeps_its_counts():
    hub = QuoteHub()
    sub = hub.subscribe(["A"])
    hub.publish([quote("A", bid=1), quote("A", bid=2)])
    hub.close()

    async def read() -> list:
        return [await sub.next(), await sub.next()]
    first, end = asyncio.run(read())
    assert first.mark.bid_price == 2 and end is None
    hub.unsubscribe(sub)
    hub.publish([quote("A", bid=3)])
    assert hub.subscribers == 0 and hub.totals() == dict(conflated=1, evicted=0, sent=1, pending=0)
