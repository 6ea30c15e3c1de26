"""Books and order streams shared by the pytest-benchmark cases and ``python -m benchmarks``.

A *book* is an engine populated the way a firm's start of day looks: a
FIRM -> desks -> strategies tree, instruments with collars, price bands and a
staleness limit, one start-of-day position per (strategy, symbol) loaded with
``book_fill``, and limits on every level so that each check compares against
real numbers at every node of its path. Everything is built through the public
API of the README, so the same builder populates the pure-Python reference
model (``tests/riskcore/reference.py``) for the like-for-like comparison.

The limits are sized from the loaded positions with enough headroom that a
benchmark measures the checks rather than tripping them: the 1M-order batches
are mostly accepted (the more expensive path, see :func:`order_stream`) and
the rate limits and fill throttle have counts no benchmark reaches. They are
still consulted on every order.
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from riskcore import BUY, SELL, Instrument, Limits, RiskEngine, SystemClock

N_DESKS = 4
STRATEGIES_PER_DESK = 25
N_STRATEGIES = N_DESKS * STRATEGIES_PER_DESK    # leaf accounts
TICK = 0.01
TICK_VALUE = 10_000                             # micro-units per tick per share (tick 0.01, multiplier 1)
SEED = 20240601

# The order the single-check cases send: 100 (accepted) or 9 000 (rejected) of
# the first symbol, bought by the first strategy of the first desk at the reference.
CHECK_SYMBOL = "S0000"
CHECK_PRICE = 100.0
CHECK_QUANTITY = 100
REJECT_QUANTITY = 9_000
# Desk-level position limit on CHECK_SYMBOL: room for 5 000 more shares, so the
# 9 000-share order passes steps 1-7 and the strategy's step 8, then fails at the desk.
DESK_POSITION_ROOM = 5_000

REPO = Path(__file__).resolve().parent.parent
REFERENCE_PATH = REPO / "tests" / "riskcore" / "reference.py"


@dataclass
class Book:
    """An engine (compiled or reference) and what was loaded into it."""

    engine: Any
    symbols: list[str]
    desks: list[str]
    strategies: list[str]
    ref_ticks: np.ndarray          # int64 reference price per symbol, in ticks
    quantities: np.ndarray         # int64 [strategy, symbol] signed start-of-day position

    @property
    def n_positions(self) -> int:
        return self.quantities.size

    @property
    def check_account(self) -> str:
        return self.strategies[0]

    @property
    def check_desk(self) -> str:
        return self.desks[0]

    def prices(self, shift_ticks: int = 0) -> np.ndarray:
        """Reference prices of every symbol, moved by ``shift_ticks``."""
        return (self.ref_ticks + shift_ticks) * TICK


def default_engine() -> RiskEngine:
    # SystemClock, as in production: checks read the real clock.
    return RiskEngine(clock=SystemClock())


def build_book(n_symbols: int, engine_factory: Callable[[], Any] = default_engine, seed: int = SEED) -> Book:
    """Build a book of ``n_symbols x N_STRATEGIES`` start-of-day positions.

    Parameters
    ----------
    n_symbols : int
        Symbols; every strategy holds a position in each one.
    engine_factory : callable
        Returns an empty engine with the ``RiskEngine`` API (the compiled
        engine by default, or the reference model).
    seed : int
        Seed of the position sizes and reference prices (same seed, same book).
    """
    rng = np.random.default_rng(seed)
    engine = engine_factory()
    symbols = [f"S{i:04d}" for i in range(n_symbols)]
    ref_ticks = rng.integers(2_000, 40_000, n_symbols).astype(np.int64)     # 20.00 .. 399.99
    ref_ticks[0] = round(CHECK_PRICE / TICK)
    for sym, ticks in zip(symbols, ref_ticks):
        engine.add_instrument(Instrument(
            sym, tick_size=TICK, lot_size=1, reference_price=round(int(ticks) * TICK, 2),
            collar_bps_buy=500, collar_bps_sell=500, min_price=0.01, max_price=100_000.0,
            max_reference_age=3_600.0,
        ))
    desks = [f"desk{d}" for d in range(N_DESKS)]
    strategies = []
    for d, desk in enumerate(desks):
        engine.add_account(desk, parent="FIRM")
        for k in range(STRATEGIES_PER_DESK):
            strategies.append(f"{desk}.strat{k:02d}")
            engine.add_account(strategies[-1], parent=desk)

    # Start-of-day load at the reference, so every book starts with zero P&L.
    quantities = rng.integers(1, 1_000, (N_STRATEGIES, n_symbols)) * rng.choice([-1, 1], (N_STRATEGIES, n_symbols))
    quantities[:, 0] = np.abs(quantities[:, 0])     # long the check symbol: see DESK_POSITION_ROOM
    prices = [round(int(t) * TICK, 2) for t in ref_ticks]
    for a, strategy in enumerate(strategies):
        row = quantities[a].tolist()
        for s, sym in enumerate(symbols):
            q = row[s]
            engine.book_fill(strategy, sym, BUY if q > 0 else SELL, abs(q), prices[s])

    book = Book(engine, symbols, desks, strategies, ref_ticks, quantities.astype(np.int64))
    _set_limits(book)
    return book


def _gross(quantities: np.ndarray, ref_ticks: np.ndarray) -> float:
    """Gross notional in currency of netted positions (rows: holders)."""
    return float((np.abs(quantities) @ ref_ticks).sum()) * TICK_VALUE / 1e6


def _set_limits(book: Book) -> None:
    engine = book.engine
    q, ref = book.quantities, book.ref_ticks
    per_desk = q.reshape(N_DESKS, STRATEGIES_PER_DESK, -1)
    # Headroom for the 1M-order batches (about 0.5e9 of working notional per
    # strategy); a batch that ran out of it would measure cheap rejections.
    for a, strategy in enumerate(book.strategies):
        gross = _gross(q[a:a + 1], ref)
        engine.set_limits(strategy, Limits(
            max_order_quantity=10_000, max_order_notional=2_000_000.0,
            max_gross_notional=gross + 2e9, max_net_notional=gross + 2e9,
            max_open_orders=1_000_000, max_daily_loss=0.05 * gross + 1e6,
            new_order_rate=(10_000_000, 1.0), modify_rate=(10_000_000, 1.0),
            cancel_rate=(10_000_000, 1.0), fill_throttle=(10_000_000, 1.0),
        ))
        engine.set_position_limit(strategy, CHECK_SYMBOL, max_long=abs(int(q[a, 0])) + 1_000_000,
                                  max_short=abs(int(q[a, 0])) + 1_000_000)
    for d, desk in enumerate(book.desks):
        netted = per_desk[d].sum(axis=0, keepdims=True)
        gross = _gross(netted, ref)
        engine.set_limits(desk, Limits(
            max_order_notional=5_000_000.0, max_gross_notional=gross + 5e10,
            max_net_notional=gross + 5e10, max_daily_loss=0.05 * gross + 1e7,
        ))
        engine.set_position_limit(desk, CHECK_SYMBOL, max_long=int(netted[0, 0]) + DESK_POSITION_ROOM,
                                  max_short=1_000_000)
    firm_gross = _gross(q.sum(axis=0, keepdims=True), ref)
    engine.set_limits("FIRM", Limits(
        max_order_notional=10_000_000.0, max_gross_notional=firm_gross + 2e11,
        max_net_notional=firm_gross + 2e11, max_open_orders=10_000_000,
        max_daily_loss=0.05 * firm_gross + 1e8,
    ))
    # An allow-list on one desk: its strategies' checks also walk the permissions.
    engine.set_allowed_symbols(book.desks[0], book.symbols)


@dataclass
class OrderStream:
    """Column arrays of orders in the form ``check_batch``/``submit_batch`` take."""

    accounts: np.ndarray     # int32 ids
    symbols: np.ndarray      # int32 ids
    sides: np.ndarray        # int8 +1/-1
    quantities: np.ndarray   # int64
    prices: np.ndarray       # float64

    def __len__(self) -> int:
        return len(self.accounts)

    @property
    def columns(self) -> tuple[np.ndarray, ...]:
        return self.accounts, self.symbols, self.sides, self.quantities, self.prices


def order_stream(book: Book, n: int, seed: int = SEED + 1) -> OrderStream:
    """``n`` orders from random strategies in random symbols of the book.

    Passive limit orders, as a quoting strategy sends them: buys 1-5 ticks
    below the reference and sells 1-5 ticks above, 1-499 shares, so they do not
    cross each other (no self-match) and mostly pass every limit. Accepted
    orders are the expensive path (they are booked, and a what-if batch takes
    them back at the end); the rejections come from the desk position limits
    in the first symbol.
    """
    rng = np.random.default_rng(seed)
    engine = book.engine
    account_ids = np.array([engine.account_id(a) for a in book.strategies], dtype=np.int32)
    accounts = account_ids[rng.integers(0, len(account_ids), n)]
    symbols = rng.integers(0, len(book.symbols), n).astype(np.int32)
    sides = rng.choice(np.array([1, -1], dtype=np.int8), n)
    quantities = rng.integers(1, 500, n).astype(np.int64)
    ticks = book.ref_ticks[symbols] - sides.astype(np.int64) * rng.integers(1, 6, n)
    return OrderStream(accounts, symbols, sides, quantities, ticks * TICK)


def hot_slot_stream(book: Book, n: int, seed: int = SEED + 1) -> OrderStream:
    """``n`` one-share orders of one strategy in one symbol: the batch path with everything in cache.

    One tick either side of the reference, so they neither cross nor run out
    of headroom; the best case the batch loop can reach, next to the spread
    stream of :func:`order_stream`.
    """
    spread = order_stream(book, n, seed)
    account = book.engine.account_id(book.strategies[1])
    ticks = int(book.ref_ticks[1]) - spread.sides.astype(np.int64)
    return OrderStream(np.full(n, account, np.int32), np.full(n, 1, np.int32), spread.sides,
                       np.ones(n, np.int64), ticks * TICK)


def random_checks(book: Book, n: int, seed: int = SEED + 2) -> list[tuple[str, str, float]]:
    """``n`` (account, symbol, price) triples spread over the whole book.

    Single checks that land on a different (strategy, symbol) every call, so
    they pay the cache misses a real order flow pays; the fixed-order cases
    measure the same lines of the same slots, hot in cache.
    """
    rng = np.random.default_rng(seed)
    accounts = rng.integers(0, len(book.strategies), n).tolist()
    symbols = rng.integers(0, len(book.symbols), n).tolist()
    prices = book.prices().tolist()
    return [(book.strategies[a], book.symbols[s], prices[s]) for a, s in zip(accounts, symbols)]


def check_batches_in_threads(books: list[Book], streams: list[OrderStream]) -> list[np.ndarray]:
    """Run ``check_batch`` of ``streams[j]`` on ``books[j]``, one thread per book; return the codes."""
    results: list[Any] = [None] * len(books)

    def run(j: int) -> None:
        results[j] = books[j].engine.check_batch(*streams[j].columns)

    threads = [threading.Thread(target=run, args=(j,)) for j in range(len(books))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(r is None for r in results):
        raise RuntimeError("a check_batch thread failed (see the thread's traceback above)")
    return results


def python_progress_during(fn: Callable[[], Any]) -> float:
    """Share of its free-running speed a pure-Python thread keeps while ``fn`` runs here.

    A thread that only counts needs the GIL for every step, so while ``fn``
    holds the GIL it makes no progress at all (at most one switch interval,
    5 ms, at either end); while ``fn`` runs without the GIL it keeps counting
    (at full speed with a free core, about half on a single busy one).
    Unlike a wall-clock ratio, this holds on a loaded machine.
    """
    count = 0
    stop = False

    def spin() -> None:
        nonlocal count
        while not stop:
            count += 1

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        time.sleep(0.02)
        before, start = count, time.perf_counter()
        time.sleep(0.1)                         # sleeping releases the GIL: the free-running rate
        rate = (count - before) / (time.perf_counter() - start)
        before, start = count, time.perf_counter()
        fn()
        progress, elapsed = count - before, time.perf_counter() - start
    finally:
        stop = True
        spinner.join()
    return progress / (rate * elapsed)


def returns_matrix(days: int, instruments: int, seed: int = SEED + 3) -> tuple[np.ndarray, np.ndarray]:
    """Daily simple returns (``days x instruments``, fat-tailed) and money exposures."""
    rng = np.random.default_rng(seed)
    returns = 0.01 * rng.standard_t(4, size=(days, instruments))
    exposures = rng.normal(0.0, 1e6, instruments)
    return np.ascontiguousarray(returns), exposures


# --------------------------------------------------------------- reference model

class ReferenceMissing(Exception):
    """``tests/riskcore/reference.py`` does not exist (yet)."""


def reference_engine_class() -> type:
    """Load the pure-Python reference model and return its engine class.

    Raises
    ------
    ReferenceMissing
        The file is absent: the comparison is skipped, and says so.
    ImportError
        The file exists but has no class with the engine's public API (a
        real failure: the comparison must not silently disappear).
    """
    if not REFERENCE_PATH.exists():
        raise ReferenceMissing(f"{REFERENCE_PATH.relative_to(REPO)} does not exist yet")
    name = "riskcore_reference_model"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, REFERENCE_PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    needed = ("add_instrument", "add_account", "set_limits", "set_position_limit",
              "set_allowed_symbols", "book_fill", "check")
    candidates = [
        cls for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and all(callable(getattr(cls, m, None)) for m in needed)
    ]
    if len(candidates) != 1:
        raise ImportError(
            f"{REFERENCE_PATH.relative_to(REPO)} should define exactly one engine class with "
            f"{', '.join(needed)}; found {[c.__name__ for c in candidates]}")
    return candidates[0]


class WallClock:
    """The wall clock in the form the reference model reads (a ``time_ns`` attribute)."""

    @property
    def time_ns(self) -> int:
        return time.time_ns()


def reference_engine_factory() -> Callable[[], Any]:
    """A factory of empty reference models reading the wall clock, as ``default_engine`` does."""
    cls = reference_engine_class()
    return lambda: cls(clock=WallClock())


def reason_code(result: Any) -> int:
    """The reason code of a check: the engine returns a Decision, the reference model an int."""
    return result if isinstance(result, int) else result.code
