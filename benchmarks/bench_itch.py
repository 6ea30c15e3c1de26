"""pytest-benchmark cases of the ITCH 5.0 decoder and L3 book (riskcore.Book).

Run with ``python -m pytest benchmarks/bench_itch.py --benchmark-only``. The
day file (10M messages over 5,000 symbols by default, the issue's size; set
``RISKCORE_BENCH_ITCH_MESSAGES`` for another) is made once per session by the
simulator in a temporary folder. Each case first checks that the book took
every message cleanly, so a benchmark cannot time a broken decode.
"""
from __future__ import annotations

import os
import pathlib
import statistics
import threading
import time

import pytest

from benchmarks.workload import python_progress_during
from riskcore import Book
from riskcore_services.ingest.reader import replay
from riskcore_services.ingest.simulate import SimulationConfig, write_day_file

MESSAGES = int(os.environ.get("RISKCORE_BENCH_ITCH_MESSAGES", 10_000_000))
SYMBOLS = 5_000
CLEAN = {"messages": MESSAGES}


@pytest.fixture(scope="session")
def day_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("itch") / "day.itch"
    write_day_file(str(path), SimulationConfig(messages=MESSAGES, symbols=SYMBOLS, seed=0))
    return path


def _clean(book: Book) -> dict[str, int]:
    return {k: v for k, v in book.counters().items() if v}


@pytest.mark.benchmark(group="ITCH 5.0 replay (decode + L3 book)")
def test_replay_of_a_day_file(benchmark, day_file: pathlib.Path, notes: list[str]) -> None:
    books: list[Book] = []

    def fresh() -> tuple[tuple[str, Book], dict]:
        books.append(Book())
        return (str(day_file), books[-1]), {}

    benchmark.pedantic(replay, setup=fresh, rounds=3, iterations=1)
    assert _clean(books[-1]) == CLEAN
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        notes.append(f"ITCH file replay, {MESSAGES:,} messages x {SYMBOLS:,} symbols: "
                     f"{MESSAGES / stats.stats.median / 1e6:.2f} M msg/s (median of 3; goal >= 8M)")


@pytest.mark.benchmark(group="ITCH 5.0 replay (decode + L3 book)")
def test_feed_of_a_day_in_memory(benchmark, day_file: pathlib.Path, notes: list[str]) -> None:
    data = day_file.read_bytes()
    books: list[Book] = []

    def fresh() -> tuple[tuple[bytes], dict]:
        books.append(Book())
        return (data,), {}

    benchmark.pedantic(lambda d: books[-1].feed(d), setup=fresh, rounds=3, iterations=1)
    assert _clean(books[-1]) == CLEAN
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        notes.append(f"ITCH feed from memory: {MESSAGES / stats.stats.median / 1e6:.2f} M msg/s")


@pytest.mark.benchmark(group="ITCH 5.0 replay (decode + L3 book)")
def test_two_books_fed_in_two_threads(benchmark, day_file: pathlib.Path, notes: list[str]) -> None:
    """Feeds release the GIL: two books fed from two threads take about as long as one (given 2 free cores)."""
    data = day_file.read_bytes()
    single = []
    for _ in range(2):
        start = time.perf_counter()
        Book().feed(data)
        single.append(time.perf_counter() - start)

    def two() -> list[Book]:
        books = [Book(), Book()]
        threads = [threading.Thread(target=b.feed, args=(data,)) for b in books]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return books

    books = benchmark.pedantic(two, rounds=3, iterations=1)
    assert all(_clean(b) == CLEAN for b in books)
    progress = python_progress_during(lambda: Book().feed(data))
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        notes.append(f"ITCH: 2 threads / 1 thread = {stats.stats.median / statistics.median(single):.2f} "
                     f"(1.0 parallel, 2.0 serialised); a Python thread keeps {progress:.0%} of its speed "
                     f"during Book.feed (~2% if the GIL were held)")
    assert progress >= 0.10
