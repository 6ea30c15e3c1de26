"""Fixtures that build populated engines for the pytest-benchmark cases.

Books are session-scoped and shared by the read-only cases (checks, what-if
batches, aggregate queries); cases that change a book (fills, price updates,
submitted orders) build their own so that no case measures another's leftovers.
"""
from __future__ import annotations

import pytest

from benchmarks.workload import Book, ReferenceMissing, build_book, reference_engine_factory

# Positions in a book are symbols x 100 strategies.
POSITIONS = {"1k": 10, "10k": 100, "100k": 1_000}
CHECK_BOOK = "100k"
# The reference model recomputes every aggregate from the leaves on each check
# (and loads positions in O(n^2)), so the comparison runs on the smallest book.
REFERENCE_BOOK = "1k"

_books: dict[str, Book] = {}
_notes: list[str] = []


def book_of(size: str) -> Book:
    """The shared book of ``size`` positions ("1k", "10k" or "100k"), built once."""
    if size not in _books:
        _books[size] = build_book(POSITIONS[size])
    return _books[size]


@pytest.fixture(scope="session")
def check_book() -> Book:
    """The 100k-position book the single-check and batch cases run against (read-only use)."""
    return book_of(CHECK_BOOK)


@pytest.fixture(params=list(POSITIONS), scope="session")
def sized_book(request: pytest.FixtureRequest) -> Book:
    """Each shared book in turn: 1k, 10k and 100k positions."""
    return book_of(request.param)


@pytest.fixture
def fresh_book() -> Book:
    """A new 100k-position book for a case that changes the engine."""
    return build_book(POSITIONS[CHECK_BOOK])


@pytest.fixture(scope="session")
def small_book() -> Book:
    """The 1k-position book: the compiled side of the reference comparison."""
    return book_of(REFERENCE_BOOK)


@pytest.fixture(scope="session")
def reference_book() -> Book:
    """The 1k-position book, loaded into the pure-Python reference model.

    Skipped only when ``tests/riskcore/reference.py`` does not exist; a file
    that exists but cannot be loaded fails the case.
    """
    try:
        factory = reference_engine_factory()
    except ReferenceMissing as missing:
        pytest.skip(f"reference model comparison skipped: {missing}")
    return build_book(POSITIONS[REFERENCE_BOOK], engine_factory=factory)


@pytest.fixture(scope="session")
def notes() -> list[str]:
    """Lines printed after the benchmark tables (throughput, ratios)."""
    return _notes


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _notes:
        terminalreporter.section("riskcore: throughput and ratios from this run")
        for line in _notes:
            terminalreporter.write_line(line)
