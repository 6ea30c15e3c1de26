"""The test feed simulator: a valid, deterministic ITCH 5.0 day with the issue's mix of messages."""
from __future__ import annotations

import collections
import gzip

import pytest

from riskcore import Book
from riskcore import itch
from riskcore_services.ingest.simulate import SimulationConfig, generate, header_messages, split_messages, write_day_file

from .model import assert_book_matches_model, model_of


def test_the_same_seed_makes_the_same_day_and_another_seed_another(small_day):
    config = SimulationConfig(messages=30_000, symbols=25, seed=11)
    assert b"".join(generate(config)) == small_day
    assert b"".join(generate(SimulationConfig(messages=30_000, symbols=25, seed=12))) != small_day


def test_a_day_has_exactly_the_messages_asked_for_with_every_book_type(small_day):
    messages = [itch.parse(m) for m in split_messages(small_day)]
    kinds = collections.Counter(m.type for m in messages)

    assert len(messages) == 30_000
    assert set(kinds) == set("SRHAFECXDUPQ")
    assert kinds["R"] == 25
    assert [m.event_code for m in messages if m.type == "S"] == ["O", "S", "Q", "M", "E", "C"]
    assert kinds["A"] + kinds["F"] > kinds["D"] > kinds["E"] > kinds["C"]
    assert sum(1 for m in messages if m.type == "H" and m.state == "H") > 0


def test_timestamps_never_go_back_and_order_references_are_day_unique(small_day):
    messages = [itch.parse(m) for m in split_messages(small_day)]
    stamps = [m.timestamp for m in messages]
    assert stamps == sorted(stamps)
    refs = [m.ref for m in messages if m.type in "AF"] + [m.new_ref for m in messages if m.type == "U"]
    assert len(refs) == len(set(refs))


@pytest.mark.parametrize("seed", [1, 2])
def test_a_simulated_day_builds_the_models_book_with_no_integrity_issue(seed):
    data = b"".join(generate(SimulationConfig(messages=40_000, symbols=30, seed=seed)))
    book = Book()
    book.feed(data)
    model = model_of(data)

    assert_book_matches_model(book, model)
    assert {k: v for k, v in book.counters().items() if v} == {"messages": 40_000}


def test_write_day_file_writes_plain_or_gzip(tmp_path, small_day):
    config = SimulationConfig(messages=30_000, symbols=25, seed=11)
    assert write_day_file(str(tmp_path / "d.itch"), config) == len(small_day)
    write_day_file(str(tmp_path / "d.itch.gz"), config, compress=True)

    assert (tmp_path / "d.itch").read_bytes() == small_day
    assert gzip.decompress((tmp_path / "d.itch.gz").read_bytes()) == small_day


def test_the_smallest_day_is_its_header_and_trailer():
    data = b"".join(generate(SimulationConfig(messages=header_messages(3), symbols=3)))
    assert [m[:1] for m in split_messages(data)] == [b"S", b"R", b"R", b"R", b"S", b"H", b"H", b"H", b"S",
                                                      b"S", b"S", b"S"]


@pytest.mark.parametrize("kwargs", [dict(symbols=0), dict(symbols=70_000), dict(messages=10, symbols=5)])
def test_a_day_that_cannot_be_made_is_refused(kwargs):
    with pytest.raises(ValueError):
        SimulationConfig(**kwargs)


def test_named_tickers_take_the_first_symbols_and_the_others_stay_drawn_and_distinct():
    config = SimulationConfig(messages=2_000, symbols=6, seed=3, names=("AAPL", "MSFT", "SPY"))
    directory = [itch.parse(m) for m in split_messages(b"".join(generate(config))) if m[:1] == b"R"]
    tickers = [m.stock for m in directory]
    assert tickers[:3] == ["AAPL", "MSFT", "SPY"]
    assert len(set(tickers)) == 6


def test_a_day_without_names_is_the_day_it_was_before_names(small_day):
    assert b"".join(generate(SimulationConfig(messages=30_000, symbols=25, seed=11, names=()))) == small_day


@pytest.mark.parametrize("names, message", [
    (("AAPL", "MSFT", "SPY"), "3 tickers for 2 symbols"),
    (("aapl",), "1 to 8 capital letters"),
    (("TOOLONGNAME",), "1 to 8 capital letters"),
    (("AAPL", "AAPL"), "distinct"),
])
def test_names_that_cannot_name_the_days_symbols_are_refused(names, message):
    with pytest.raises(ValueError, match=message):
        SimulationConfig(messages=1_000, symbols=2, names=names)
