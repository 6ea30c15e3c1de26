"""The independent ITCH book model of tests/riskcore (itch_model.py), for the ingest tests."""
from __future__ import annotations

from riskcore import Book, format_price
from tests.riskcore.itch_model import ModelBook


def model_of(data: bytes) -> "ModelBook":
    model = ModelBook()
    model.feed(data)
    return model


def assert_book_matches_model(book: Book, model: "ModelBook") -> None:
    """The book's counters, and every named symbol's levels, last trade and halt state, are the model's."""
    assert book.counters() == model.counters
    assert book.orders == len(model.orders)
    assert book.symbols() == [model.names[k] for k in sorted(model.names)]
    for loc in model.names:
        assert tuple(book.top(loc)) == model.top(loc), loc
        bids, asks = book.depth(loc, 10_000)
        assert [tuple(x) for x in bids] == model.depth(loc, "B", 10_000), loc
        assert [tuple(x) for x in asks] == model.depth(loc, "S", 10_000), loc
        last = book.last_trade(loc)
        assert (tuple(last) if last else None) == model.last.get(loc), loc
        assert book.halted(loc) == model.halted(loc), loc


def model_csv_rows(model: "ModelBook") -> list[list[str]]:
    """The rows ``--book-out`` should write, worked out from the model."""
    rows = []
    for loc in sorted(model.names):
        bid, bid_size, ask, ask_size, last = model.top(loc)
        rows.append([model.names[loc],
                     format_price(bid), "" if bid is None else str(bid_size),
                     format_price(ask), "" if ask is None else str(ask_size),
                     format_price(last)])
    return rows


def books_equal(a: Book, b: Book) -> bool:
    """Same counters, symbols, levels, last trades and states (for two compiled books)."""
    if a.counters() != b.counters() or a.symbols() != b.symbols() or a.orders != b.orders:
        return False
    return all(a.depth(s, 10_000) == b.depth(s, 10_000) and a.last_trade(s) == b.last_trade(s)
               and a.trading_state(s) == b.trading_state(s) for s in a.symbols())
