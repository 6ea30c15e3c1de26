"""The L3 book: each ITCH event's effect, the integrity counters, marks, and agreement with a model.

Single events are checked against numbers worked out by hand. Sequences
(valid, invalid, mutated) are checked against ``itch_model.py``, an
independent pure-Python book that parses the bytes itself.
"""
from __future__ import annotations

import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.riskcore import itch_bytes as ib
from tests.riskcore.itch_model import ModelBook
from riskcore import Book, UnknownSymbolError, format_price


def book_of(*messages: bytes) -> Book:
    book = Book()
    book.feed(ib.frame(ib.stock_directory(1, "ACME"), *messages))
    return book


def integrity(book: Book) -> dict[str, int]:
    c = book.counters()
    return {k: c[k] for k in ("unknown_ref", "duplicate_add", "over_execution", "crossed_book")}


CLEAN = {"unknown_ref": 0, "duplicate_add": 0, "over_execution": 0, "crossed_book": 0}


# ------------------------------------------------------------------ one event at a time

def test_adds_build_price_levels_best_first_on_each_side():
    book = book_of(ib.add(1, b"B", 100, 1_000_000), ib.add(2, b"B", 200, 1_000_100), ib.add(3, b"B", 50, 1_000_000),
                   ib.add(4, b"S", 300, 1_000_300), ib.add(5, b"S", 10, 1_000_200, mpid=b"GSCO"))

    assert book.top("ACME") == (1_000_100, 200, 1_000_200, 10, None)
    bids, asks = book.depth("ACME", 10)
    assert bids == [(1_000_100, 200, 1), (1_000_000, 150, 2)]
    assert asks == [(1_000_200, 10, 1), (1_000_300, 300, 1)]
    assert book.depth("ACME", 1) == ([(1_000_100, 200, 1)], [(1_000_200, 10, 1)])
    assert book.orders == 5
    assert book.order(3) == (3, 1, "B", 1_000_000, 50)
    assert integrity(book) == CLEAN


def test_execution_takes_shares_at_the_orders_price_and_prints_a_trade():
    book = book_of(ib.add(1, b"B", 100, 1_000_000), ib.executed(1, 30, ts=77))

    assert book.top("ACME") == (1_000_000, 70, None, 0, 1_000_000)
    assert book.last_trade("ACME") == (1_000_000, 30, 77)

    book.feed(ib.frame(ib.executed(1, 70)))
    assert book.top("ACME") == (None, 0, None, 0, 1_000_000)
    assert book.orders == 0 and book.order(1) is None


def test_execution_with_price_prints_at_its_price_only_when_printable():
    book = book_of(ib.add(1, b"S", 100, 1_000_000), ib.executed_with_price(1, 10, 999_900, b"N", ts=5))
    assert book.top("ACME").ask_size == 90
    assert book.last_trade("ACME") is None             # not printable: no last sale

    book.feed(ib.frame(ib.executed_with_price(1, 20, 999_800, b"Y", ts=6)))
    assert book.last_trade("ACME") == (999_800, 20, 6)
    assert book.top("ACME").ask_size == 70


def test_cancel_is_partial_and_delete_is_whole():
    book = book_of(ib.add(1, b"B", 100, 1_000_000), ib.add(2, b"B", 40, 1_000_000), ib.cancel(1, 60))
    assert book.depth("ACME").bids == [(1_000_000, 80, 2)]

    book.feed(ib.frame(ib.delete(2)))
    assert book.depth("ACME").bids == [(1_000_000, 40, 1)]
    assert book.last_trade("ACME") is None


def test_replace_keeps_side_and_stock_under_a_new_reference():
    book = book_of(ib.add(1, b"S", 100, 1_000_500), ib.add(2, b"S", 100, 1_000_600),
                   ib.replace(1, 9, 300, 1_000_700))

    assert book.order(1) is None
    assert book.order(9) == (9, 1, "S", 1_000_700, 300)
    assert book.depth("ACME").asks == [(1_000_600, 100, 1), (1_000_700, 300, 1)]


def test_hidden_trade_prints_without_changing_the_book():
    book = book_of(ib.add(1, b"B", 100, 1_000_000), ib.trade(500, 1_000_050, ts=9))
    assert book.top("ACME") == (1_000_000, 100, None, 0, 1_000_050)
    assert book.last_trade("ACME") == (1_000_050, 500, 9)


def test_cross_trade_prints_unless_it_crossed_nothing():
    book = book_of(ib.cross(0, 1_000_000))
    assert book.last_trade("ACME") is None
    book.feed(ib.frame(ib.cross(2**33, 1_000_100, ts=4)))
    assert book.last_trade("ACME") == (1_000_100, 2**33, 4)


def test_halt_and_resume_from_trading_actions_while_orders_still_apply():
    book = book_of(ib.trading_action(1, "ACME", b"T"))
    assert not book.halted("ACME") and book.trading_state("ACME") == "T"

    book.feed(ib.frame(ib.trading_action(1, "ACME", b"H"), ib.add(1, b"B", 100, 1_000_000)))
    assert book.halted("ACME") and book.trading_state("ACME") == "H"
    assert book.top("ACME").bid_size == 100
    for state, halted in ((b"P", True), (b"Q", True), (b"T", False)):
        book.feed(ib.frame(ib.trading_action(1, "ACME", state)))
        assert book.halted("ACME") is halted


def test_before_any_trading_action_a_symbol_is_not_halted():
    book = book_of()
    assert book.trading_state("ACME") == "" and not book.halted("ACME")


def test_stock_directory_names_symbols_by_locate():
    book = Book()
    book.feed(ib.frame(ib.stock_directory(2, "BBB"), ib.stock_directory(1, "AAA"), ib.stock_directory(7, "BRK A")))

    assert book.symbols() == ["AAA", "BBB", "BRK A"]
    assert book.locate("BRK A") == 7 and book.symbol_name(2) == "BBB" and book.symbol_name(3) is None


def test_system_events_and_the_end_of_session():
    book = Book()
    assert book.system_event is None and not book.session_ended
    book.feed(ib.frame(ib.system_event(b"O", ts=1), ib.system_event(b"Q", ts=2)))
    assert book.system_event == ("Q", 2) and not book.session_ended
    book.feed(ib.frame(ib.system_event(b"M", ts=3), ib.system_event(b"E", ts=4), ib.system_event(b"C", ts=5)))
    assert book.system_event == ("C", 5) and book.session_ended and book.last_timestamp == 5


def test_symbols_are_looked_up_by_name_or_locate():
    book = book_of(ib.add(1, b"B", 100, 1_000_000))
    assert book.top(1) == book.top("ACME")
    assert book.top(500) == (None, 0, None, 0, None)          # a locate nothing was about: empty
    with pytest.raises(UnknownSymbolError, match="'NOPE'"):
        book.top("NOPE")
    with pytest.raises(KeyError):
        book.depth(70_000)
    with pytest.raises(TypeError):
        book.top(1.5)


def test_format_price_prints_four_decimals():
    assert [format_price(p) for p in (1_000_050, 1, 0, None)] == ["100.0050", "0.0001", "0.0000", ""]


# ------------------------------------------------------------------ integrity counters

def test_events_on_unknown_references_are_counted_and_change_nothing():
    book = book_of(ib.add(1, b"B", 100, 1_000_000), ib.executed(9, 1), ib.executed_with_price(9, 1, 5),
                   ib.cancel(9, 1), ib.delete(9), ib.replace(9, 10, 5, 5))
    assert integrity(book) == {**CLEAN, "unknown_ref": 5}
    assert book.orders == 1 and book.order(10) is None and book.last_trade("ACME") is None


def test_a_duplicate_add_is_counted_and_the_live_order_kept():
    book = book_of(ib.add(1, b"B", 100, 1_000_000), ib.add(1, b"S", 5, 1_100_000),
                   ib.add(2, b"B", 10, 1_000_000), ib.replace(2, 1, 50, 1_000_000))
    assert integrity(book) == {**CLEAN, "duplicate_add": 2}
    assert book.order(1) == (1, 1, "B", 1_000_000, 100)
    assert book.order(2) is None                     # the replace still took the old order away
    assert book.top("ACME") == (1_000_000, 100, None, 0, None)


def test_executing_or_cancelling_more_than_remains_is_clamped_and_counted():
    book = book_of(ib.add(1, b"B", 100, 1_000_000), ib.add(2, b"B", 100, 1_000_000), ib.executed(1, 150, ts=3),
                   ib.cancel(2, 101))
    assert integrity(book) == {**CLEAN, "over_execution": 2}
    assert book.last_trade("ACME") == (1_000_000, 100, 3)     # the clamped size
    assert book.orders == 0 and book.depth("ACME") == ([], [])


def test_an_add_that_locks_or_crosses_the_book_is_counted():
    book = book_of(ib.add(1, b"B", 100, 1_000_000), ib.add(2, b"S", 100, 1_000_100))
    assert integrity(book)["crossed_book"] == 0
    book.feed(ib.frame(ib.add(3, b"S", 100, 1_000_000)))       # locked: ask == bid
    book.feed(ib.frame(ib.replace(1, 4, 100, 1_000_200)))     # crossed through a replace
    assert integrity(book)["crossed_book"] == 2


def test_reset_forgets_everything():
    book = book_of(ib.add(1, b"B", 100, 1_000_000), ib.executed(5, 1))
    book.reset()
    assert book.orders == 0 and book.symbols() == [] and sum(book.counters().values()) == 0
    assert book.marks() == [] and book.message_counts() == {}


# ------------------------------------------------------------------ marks

def test_marks_conflate_changes_per_symbol_and_clear_on_read():
    book = Book()
    book.feed(ib.frame(ib.stock_directory(1, "AAA"), ib.stock_directory(2, "BBB")))
    assert book.marks() == []

    book.feed(ib.frame(ib.add(1, b"B", 100, 1_000_000, locate=2), ib.add(2, b"S", 50, 1_000_100, locate=1),
                       ib.add(3, b"B", 200, 1_000_001, locate=2), ib.executed(3, 20, ts=8)))
    marks = book.marks()
    assert [m.symbol for m in marks] == ["BBB", "AAA"]           # in the order they first changed
    assert marks[0] == ("BBB", 2, 1_000_001, 180, None, 0, 1_000_001, 20, 8, False)
    assert book.marks() == []


def test_a_change_below_the_top_of_book_is_not_a_mark():
    book = book_of(ib.add(1, b"B", 100, 1_000_000), ib.add(2, b"B", 100, 999_900))
    book.marks()
    book.feed(ib.frame(ib.add(3, b"B", 100, 999_800), ib.cancel(2, 50), ib.delete(3)))
    assert book.marks() == []
    book.feed(ib.frame(ib.cancel(1, 1)))
    assert [m.bid_size for m in book.marks()] == [99]


def test_a_halt_is_a_mark_and_all_marks_can_be_read_at_once():
    book = book_of(ib.add(1, b"B", 100, 1_000_000))
    book.marks()
    book.feed(ib.frame(ib.trading_action(1, "ACME", b"H")))
    assert [(m.symbol, m.halted) for m in book.marks()] == [("ACME", True)]
    assert [m.symbol for m in book.marks(changed_only=False)] == ["ACME"]


# ------------------------------------------------------------------ against the model

def compare(book: Book, model: ModelBook, locates) -> None:
    assert book.counters() == model.counters
    assert book.orders == len(model.orders)
    for loc in locates:
        assert tuple(book.top(loc)) == model.top(loc), loc
        bids, asks = book.depth(loc, 1_000)
        assert [tuple(x) for x in bids] == model.depth(loc, "B", 1_000), loc
        assert [tuple(x) for x in asks] == model.depth(loc, "S", 1_000), loc
        last = book.last_trade(loc)
        assert (tuple(last) if last else None) == model.last.get(loc), loc
        assert book.halted(loc) == model.halted(loc)
        assert book.symbol_name(loc) == model.names.get(loc)
    for ref, (loc, side, price, shares) in model.orders.items():
        assert book.order(ref) == (ref, loc, side, price, shares)


LOCATES = (1, 2, 3)
_ref = st.integers(1, 12)              # few references: duplicates and unknown ones happen
_price = st.integers(99, 103).map(lambda k: k * 100)    # a narrow range: books lock and cross
_shares = st.integers(0, 300)
_loc = st.sampled_from((0,) + LOCATES)
_ts = st.integers(0, 2**48 - 1)

event = st.one_of(
    st.builds(lambda r, s, q, p, loc, mp: ib.add(r, s, q, p, locate=loc, mpid=mp),
              _ref, st.sampled_from([b"B", b"S", b"X"]), _shares, _price, _loc, st.sampled_from([None, b"GSCO"])),
    st.builds(lambda r, q, t: ib.executed(r, q, ts=t), _ref, _shares, _ts),
    st.builds(lambda r, q, p, pr, t: ib.executed_with_price(r, q, p, pr, ts=t),
              _ref, _shares, _price, st.sampled_from([b"Y", b"N"]), _ts),
    st.builds(ib.cancel, _ref, _shares),
    st.builds(ib.delete, _ref),
    st.builds(ib.replace, _ref, _ref, _shares, _price),
    st.builds(lambda q, p, loc, t: ib.trade(q, p, locate=loc, ts=t), _shares, _price, _loc, _ts),
    st.builds(lambda q, p, loc: ib.cross(q, p, locate=loc), st.integers(0, 2**40), _price, _loc),
    st.builds(lambda loc, s: ib.trading_action(loc, "X", s), _loc, st.sampled_from([b"H", b"P", b"Q", b"T"])),
    st.builds(lambda loc, n: ib.stock_directory(loc, n), _loc, st.sampled_from(["AAA", "BBB", "CC C"])),
    st.builds(ib.system_event, st.sampled_from([b"O", b"Q", b"C"])),
)


@settings(derandomize=True, max_examples=400, deadline=None)
@given(st.lists(event, max_size=80), st.randoms(use_true_random=False))
def test_any_event_sequence_gives_the_models_book_and_counters(events, rng):
    data = ib.frame(*events)
    book, model = Book(), ModelBook()
    # Fed in random pieces, as a stream arrives.
    pos = 0
    while True:
        end = min(len(data), pos + rng.randint(1, 120))
        if end == len(data):
            book.feed(data[pos:])
            break
        pos += book.feed_chunk(data[pos:end])
    model.feed(data)
    compare(book, model, LOCATES)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.lists(event, min_size=1, max_size=60), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                         max_size=8), st.integers(0, 40))
def test_mutated_streams_never_crash_and_agree_with_the_model(events, flips, cut):
    data = bytearray(ib.frame(*events))
    for where, value in flips:                  # overwrite bytes anywhere, lengths included
        data[where % len(data)] = value
    data = bytes(data[:max(0, len(data) - cut)])
    book, model = Book(), ModelBook()
    book.feed(data)
    model.feed(data)
    compare(book, model, range(0, 300))


def valid_day(rng: random.Random, n: int) -> list[bytes]:
    """A valid sequence over three symbols: bids below 100.00, asks above, events on live orders only."""
    out = [ib.stock_directory(loc, name) for loc, name in zip(LOCATES, ("AAA", "BBB", "CCC"))]
    live: dict[int, list] = {}
    next_ref = 1
    for i in range(n):
        r = rng.random()
        if not live or r < 0.45:
            side = rng.choice([b"B", b"S"])
            price = 1_000_000 + (-1 if side == b"B" else 1) * 100 * rng.randint(1, 8)
            loc, shares = rng.choice(LOCATES), rng.randint(1, 500)
            out.append(ib.add(next_ref, side, shares, price, locate=loc, ts=i))
            live[next_ref] = [side, price, shares, loc]
            next_ref += rng.randint(1, 3)
            continue
        ref = rng.choice(list(live))
        side, price, shares, loc = live[ref]
        if r < 0.6:
            out.append(ib.delete(ref, ts=i))
            del live[ref]
        elif r < 0.75:
            q = rng.randint(1, shares)
            out.append(ib.executed(ref, q, ts=i))
            live[ref][2] -= q
            if live[ref][2] == 0:
                del live[ref]
        elif r < 0.85 and shares > 1:
            q = rng.randint(1, shares - 1)
            out.append(ib.cancel(ref, q, ts=i))
            live[ref][2] -= q
        else:
            new_price = 1_000_000 + (-1 if side == b"B" else 1) * 100 * rng.randint(1, 8)
            q = rng.randint(1, 500)
            out.append(ib.replace(ref, next_ref, q, new_price, ts=i))
            del live[ref]
            live[next_ref] = [side, new_price, q, loc]
            next_ref += 1
    return out


@pytest.mark.parametrize("seed", range(5))
def test_valid_sequences_never_cross_or_trip_an_integrity_counter(seed):
    events = valid_day(random.Random(seed), 3_000)
    book, model = Book(), ModelBook()
    book.feed(ib.frame(*events))
    model.feed(ib.frame(*events))
    assert integrity(book) == CLEAN
    compare(book, model, LOCATES)


def test_calls_on_a_book_while_another_thread_feeds_it_raise_instead_of_reading_torn_state():
    # Three million deletes of an unknown order: a feed long enough (tens of ms,
    # without the GIL) for this thread to call in while it runs.
    data = ib.frame(ib.delete(99)) * 3_000_000
    book = Book()
    feeder = threading.Thread(target=book.feed, args=(data,))
    refused = 0
    feeder.start()
    while feeder.is_alive():
        try:
            book.top(1)
        except RuntimeError as error:
            assert "another thread" in str(error)
            refused += 1
    feeder.join()
    assert refused > 0
    assert book.counters()["unknown_ref"] == 3_000_000 and book.top(1) == (None, 0, None, 0, None)
