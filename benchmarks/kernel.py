"""The kernel's benchmark cases, each defined once for both ways of running them.

A :class:`Case` is one public unit of work of the compiled kernel: its row in
the table, how to prepare it (build what it runs on, then assert that the
call does what the row says, before anything is timed), the call under test
with the arguments it takes in turn, and the targets the row is judged
against. ``python -m benchmarks --suite kernel`` (``Suite`` in
``__main__``) prints every case's row; the ``bench_*.py`` modules run the
same cases under pytest-benchmark. An :class:`Experiment` is a figure that is
not one call's time (a ratio of two timings, a thread's progress), built from
the same timings.

:func:`time_calls` is the one timing helper: ``perf_counter_ns`` around each
call for the percentiles, then a loop of as many calls with no timer inside
for the throughput. The timer's own cost (:func:`timer_overhead`) is
subtracted from the per-call figures by :class:`benchmarks.results.Timing`.
"""
from __future__ import annotations

import functools
import gc
import itertools
import math
import os
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.results import MS, US, Row, Target, Timing, expect
from benchmarks.workload import (
    CHECK_PRICE, CHECK_QUANTITY, CHECK_SYMBOL, N_DESKS, N_STRATEGIES, REJECT_QUANTITY,
    Book, ReferenceMissing, build_book, check_batches_in_threads, hot_slot_stream, order_stream,
    python_progress_during, random_checks, reason_code, reference_engine_factory, returns_matrix,
)
from riskcore import BUY, SELL, OrderStatus, Reason, historical_var, parametric_var, scenario_pnl

clock_ns = time.perf_counter_ns


@dataclass(frozen=True)
class Scale:
    """How much of everything one mode runs."""

    checks: int                 # per-call samples of each single-check case (and its timer-free loop)
    lifecycles: int             # submit + fill cycles
    book_symbols: tuple[int, ...]   # books for aggregate/recompute (x 100 positions)
    check_symbols: int          # the book of the single-check, lifecycle, price and batch cases
    batch: int                  # orders per batch
    batch_runs: int
    thread_batch: int           # orders per thread in the GIL case
    fast_calls: int             # samples of microsecond cases
    slow_calls: int             # samples of millisecond cases
    reference_calls: int        # samples of the reference model's check
    var_shapes: tuple[tuple[int, int], ...]
    itch_messages: int = 10_000_000     # the ITCH day replayed (decode + L3 book)
    itch_symbols: int = 5_000
    itch_runs: int = 3


FULL = Scale(checks=1_000_000, lifecycles=500_000, book_symbols=(10, 100, 1_000), check_symbols=1_000,
             batch=1_000_000, batch_runs=3, thread_batch=200_000, fast_calls=100_000, slow_calls=1_000,
             reference_calls=500, var_shapes=((250, 500), (1_000, 2_000)))
QUICK = Scale(checks=20_000, lifecycles=20_000, book_symbols=(10, 100), check_symbols=100,
              batch=100_000, batch_runs=2, thread_batch=50_000, fast_calls=5_000, slow_calls=100,
              reference_calls=30, var_shapes=((250, 500), (1_000, 2_000)),
              itch_messages=200_000, itch_symbols=500, itch_runs=2)

SINGLE_CHECK_TARGETS = (
    Target("p50<=1µs", "median_ns", 1 * US), Target("p99<=5µs", "p99_ns", 5 * US),
    Target("p99.9<=20µs", "p999_ns", 20 * US), Target("pub <100µs", "p999_ns", 100 * US, published=True),
)
BATCH_TARGETS = (Target(">=10M/s", "throughput", 10e6, at_most=False),)
ITCH_TARGETS = (Target(">=8M/s", "throughput", 8e6, at_most=False),)
GIL_TARGETS = (Target(">=10%", "value", 0.10, at_most=False),)
CONFIDENCE = 0.99


# ------------------------------------------------------------------ timing

@dataclass
class Work:
    """A prepared case: the call under test and what it is called with.

    ``arguments`` are taken in turn, one tuple a call. ``fresh``, when set,
    gives each call's arguments instead, outside the timed window, for a call
    that uses up what it runs on (a book that took a whole day, an engine that
    booked a batch). ``after`` checks what the timed calls left behind.
    """

    call: Callable[..., Any]
    arguments: Sequence[tuple] = ((),)
    fresh: Callable[[], tuple] | None = None
    after: Callable[[], None] | None = None
    note: str | Callable[["Timed"], str] = ""


@dataclass
class Timed:
    """What :func:`time_calls` measured."""

    samples: array                  # ns of each timed call, timer included
    elapsed_ns: int | None          # the timer-free loop's ns, if one ran
    gc_collections: int             # garbage collections while the samples were taken
    gc_counts: tuple[int, int]      # the gen-0 allocation counter before and after them


class GcWatch:
    """Count garbage collections (via ``gc.callbacks``) and the gen-0 allocation counter."""

    def __enter__(self) -> "GcWatch":
        self.collections = 0
        gc.callbacks.append(self._callback)
        self.before = gc.get_count()
        return self

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.collections += 1

    def __exit__(self, *exc: object) -> None:
        self.after = gc.get_count()
        gc.callbacks.remove(self._callback)


# The loops of time_calls, written out for each number of arguments (as the standard library's timeit
# does): a call inside the timed window is then a plain call with local arguments, as a hand-written loop
# makes it, not call(*args).
_LOOPS = """
def sampled(call, arguments, fresh, n, samples, clock_ns):
    turn = len(arguments)
    if fresh is None and turn == 1:
        {unpack}arguments[0]
        for i in range(n):
            t0 = clock_ns()
            call({names})
            t1 = clock_ns()
            samples[i] = t1 - t0
        return
    for i in range(n):
        {unpack}arguments[i % turn] if fresh is None else fresh()
        t0 = clock_ns()
        call({names})
        t1 = clock_ns()
        samples[i] = t1 - t0


def timer_free(call, arguments, first, n, clock_ns):
    turn = len(arguments)
    if turn == 1:
        {unpack}arguments[0]
        start = clock_ns()
        for _ in range(n):
            call({names})
        return clock_ns() - start
    start = clock_ns()
    for i in range(first, first + n):
        {unpack}arguments[i % turn]
        call({names})
    return clock_ns() - start
"""


@functools.cache
def _loops(arity: int | None) -> tuple[Callable[..., None], Callable[..., int]]:
    """The loops for calls of ``arity`` arguments; None: ``call(*args)`` (fresh arguments, for calls that take
    milliseconds)."""
    if arity is None:
        names, unpack = "*args", "args = "
    else:
        names = ", ".join(f"a{k}" for k in range(arity))
        unpack = f"{names}, = " if arity else "_ = "
    scope: dict[str, Any] = {}
    exec(_LOOPS.format(names=names, unpack=unpack), scope)
    return scope["sampled"], scope["timer_free"]


def time_calls(work: Work, n: int, timer_free: bool = False) -> Timed:
    """Time ``n`` calls of ``work`` one by one, then (``timer_free``) ``n`` more in a loop with no timer inside.

    Only the call is inside the timed window: taking the next arguments, or
    making fresh ones, happens outside it. The timer-free loop goes on
    through the arguments where the samples stopped.
    """
    call, arguments, fresh = work.call, work.arguments, work.fresh
    arity = None if fresh is not None else len(arguments[0])
    expect(fresh is not None or all(len(args) == arity for args in arguments),
           "a case's argument tuples differ in length")
    sampled, loop = _loops(arity)
    samples = array("q", bytes(8 * n))
    with GcWatch() as watch:
        sampled(call, arguments, fresh, n, samples, clock_ns)
    elapsed = None
    if timer_free:
        expect(fresh is None, "a timer-free loop cannot make fresh arguments")
        elapsed = loop(call, arguments, n, n, clock_ns)
    return Timed(samples, elapsed, watch.collections, (watch.before[0], watch.after[0]))


def timer_overhead(n: int = 200_000) -> dict[str, float]:
    """What two back-to-back ``perf_counter_ns`` reads measure when nothing runs between them."""
    samples = array("q", bytes(8 * n))
    for i in range(n):
        t0 = clock_ns()
        t1 = clock_ns()
        samples[i] = t1 - t0
    data = np.frombuffer(samples, dtype=np.int64)
    return {"median": float(np.median(data)), "p99": float(np.percentile(data, 99)),
            "min": float(data.min())}


# ------------------------------------------------------------------- cases

@dataclass(frozen=True)
class Case:
    """One unit of kernel work, as the table and pytest-benchmark both run it.

    ``prepare`` builds what the call runs on and asserts that it does what
    the row says (an accepted check is accepted, a rejection has its reason)
    before anything is timed. ``per_call`` is the units of work in one call
    (orders in a batch, messages in a day) when the throughput is theirs.
    """

    row: str
    prepare: Callable[[], Work]
    calls: int
    timer_free: bool = False
    per_call: int | None = None
    unit: str = "calls/s"
    targets: tuple[Target, ...] = ()
    warmup: int = 0
    gc_row: bool = False        # also report the garbage collections while sampling

    def rows(self, timing: Timing) -> list[Row]:
        """Prepare, time and check the case; its row (and the GC row if asked)."""
        work = self.prepare()
        if self.warmup:
            time_calls(work, self.warmup)
            gc.collect()
        timed = time_calls(work, self.calls, self.timer_free)
        if work.after is not None:
            work.after()
        note = work.note(timed) if callable(work.note) else work.note
        rows = [timing.row(self.row, timed.samples, timed.elapsed_ns, per_call=self.per_call, unit=self.unit,
                           targets=list(self.targets), note=note)]
        if self.gc_row:
            before, after = timed.gc_counts
            rows.append(Row(f"GC collections in {self.calls:,} checks", samples=self.calls,
                            value=timed.gc_collections,
                            value_text=f"{timed.gc_collections} (gen0 count {before}->{after})",
                            targets=[Target("=0", "value", 0)]))
        return rows


@dataclass(frozen=True)
class Experiment:
    """A figure that is not one call's time (a ratio of timings, a thread's progress): its rows."""

    name: str
    rows: Callable[[Timing], list[Row]]


def reasons(codes: np.ndarray) -> str:
    """The share of each reason code in a batch's answers."""
    counts = np.bincount(codes)
    return ", ".join(f"{Reason(k).name} {c / codes.size:.1%}" for k, c in enumerate(counts) if c)


def size_label(count: int) -> str:
    """100000 -> "100k", 1000000 -> "1M"."""
    return f"{count // 1_000_000}M" if count >= 1_000_000 else f"{count // 1000}k"


def progress_row(name: str, fn: Callable[[], Any], note: str) -> Row:
    """The share of its free-running speed a counting Python thread keeps while ``fn`` runs."""
    progress = python_progress_during(fn)
    return Row(name, value=progress, value_text=f"{progress:.0%}", targets=list(GIL_TARGETS), note=note)


def threads_ratio(name: str, one: Work, two: Work, rounds: int) -> Row:
    """The time of ``two`` (the work of two threads) over ``one`` (one thread's), timed in turn.

    1.0 when the calls run in parallel (they release the GIL), 2.0 when they
    are serialised; timed in turn, so that a shared machine's drift hits both.
    """
    ones, twos = [], []
    for _ in range(rounds):
        ones.extend(time_calls(one, 1).samples)
        twos.extend(time_calls(two, 1).samples)
    ratio = float(np.median(twos) / np.median(ones))
    return Row(name, value=ratio, value_text=f"{ratio:.2f}", median_ns=float(np.median(twos)),
               note="1.0 = parallel, 2.0 = serialised; needs 2 free cores")


GIL_NOTE = "share of its free-running speed a counting thread keeps; ~2% if the GIL were held"


class KernelCases:
    """Every kernel case and experiment at one scale, by section; shared books built on first use."""

    def __init__(self, scale: Scale) -> None:
        self.scale = scale
        self._books: dict[int, Book] = {}
        self._scratch: tempfile.TemporaryDirectory | None = None

    def book(self, n_symbols: int) -> Book:
        """A shared book, for cases that leave it as they found it."""
        if n_symbols not in self._books:
            self._books[n_symbols] = build_book(n_symbols)
        return self._books[n_symbols]

    def sections(self) -> list[tuple[str, list[Case | Experiment]]]:
        """The table's sections, in the order they run."""
        return [
            ("single check", self.single_checks()),
            ("compiled vs reference model", [self.reference_comparison()]),
            ("order lifecycle", [self.lifecycle()]),
            ("batches", self.batches()),
            ("GIL release", [self.gil_release()]),
            ("price updates", self.price_updates()),
            ("aggregates", self.aggregates()),
            ("VaR", [*self.var(), self.var_gil()]),
            ("ITCH replay", [*self.itch(), self.itch_gil()]),
        ]

    # -------------------------------------------------------- single checks

    def single_checks(self) -> list[Case]:
        s = self.scale
        size = f"{s.check_symbols * N_STRATEGIES // 1000}k"

        def check(quantity: int, by_ids: bool = False) -> Callable[[], Work]:
            def prepare() -> Work:
                book = self.book(s.check_symbols)
                engine, account, symbol = book.engine, book.check_account, CHECK_SYMBOL
                if by_ids:
                    account, symbol = engine.account_id(account), engine.symbol_id(symbol)
                decision = engine.check(account, symbol, BUY, quantity, CHECK_PRICE)
                if quantity == REJECT_QUANTITY:
                    # Passes steps 1-7 and the strategy's position limit, fails at the desk's (step 8).
                    expect(decision.reason == Reason.POSITION_LIMIT and decision.node == book.check_desk,
                           f"unexpected {decision!r}")
                else:
                    expect(decision.accepted, f"check not accepted: {decision!r}")
                return Work(engine.check, ((account, symbol, BUY, quantity, CHECK_PRICE),))
            return prepare

        def spread() -> Work:
            # A different (strategy, symbol) every call: the cache misses of a real flow.
            book = self.book(s.check_symbols)
            orders = [(a, sym, BUY, CHECK_QUANTITY, px) for a, sym, px in random_checks(book, 65_536)]
            expect(all(book.engine.check(*order).accepted for order in orders[:1000]), "spread checks not accepted")
            return Work(book.engine.check, orders,
                        note="65,536 (strategy, symbol) pairs in turn; the timer-free loop includes taking "
                             "the next one")

        common = dict(calls=s.checks, timer_free=True, targets=SINGLE_CHECK_TARGETS)
        return [
            Case(f"check, accepted ({size} book, names)", check(CHECK_QUANTITY),
                 warmup=min(s.checks, 50_000), gc_row=True, **common),
            Case("check, rejected at step 8 (desk)", check(REJECT_QUANTITY), **common),
            Case("check, accepted (integer ids)", check(CHECK_QUANTITY, by_ids=True), **common),
            Case("check, spread over the book", spread, **common),
        ]

    # ---------------------------------------------------- reference model

    def compiled_check(self) -> Case:
        """The compiled side of the comparison: the reference model's book, in the engine."""
        def prepare() -> Work:
            book = self.book(10)
            decision = book.engine.check(book.check_account, CHECK_SYMBOL, BUY, CHECK_QUANTITY, CHECK_PRICE)
            expect(decision.accepted, f"compiled check not accepted: {decision!r}")
            return Work(book.engine.check, ((book.check_account, CHECK_SYMBOL, BUY, CHECK_QUANTITY, CHECK_PRICE),))
        return Case("check, compiled (1k book)", prepare, calls=min(self.scale.checks, 100_000))

    def reference_check(self) -> Case:
        """The same check in the pure-Python reference model (raises ReferenceMissing without it).

        The model recomputes every aggregate from the leaves on each check and
        loads positions in O(n^2): the comparison runs on the smallest book.
        """
        def prepare() -> Work:
            book = build_book(10, engine_factory=reference_engine_factory())
            order = (book.check_account, CHECK_SYMBOL, BUY, CHECK_QUANTITY, CHECK_PRICE)
            expect(reason_code(book.engine.check(*order)) == 0, "reference check not accepted")
            return Work(book.engine.check, (order,))
        return Case("check, reference model (1k book)", prepare, calls=self.scale.reference_calls)

    def reference_comparison(self) -> Experiment:
        def rows(timing: Timing) -> list[Row]:
            fast, = self.compiled_check().rows(timing)
            try:
                slow, = self.reference_check().rows(timing)
            except ReferenceMissing as missing:
                return [fast, Row("reference model check", skipped=str(missing))]
            # Raw medians (timer cost included on both sides) make the ratio conservative.
            ratio = slow.raw_ns["median"] / fast.raw_ns["median"]
            return [fast, slow, Row("compiled speed-up over reference", value=ratio, value_text=f"{ratio:,.0f}x",
                                    targets=[Target(">=50x", "value", 50, at_most=False)],
                                    note="ratio of raw medians from this run; the model is O(positions) per check")]
        return Experiment("compiled vs reference model", rows)

    # ---------------------------------------------------------- lifecycle

    def lifecycle(self) -> Case:
        s = self.scale

        def prepare() -> Work:
            book = build_book(s.check_symbols)      # its own: fills and orders stay in the engine
            engine, account = book.engine, book.check_account
            submit, on_fill = engine.submit, engine.on_fill
            ids = itertools.count()

            def submit_and_fill() -> None:
                # Buys and sells alternate so the position, and every limit's use, stays put.
                # A rejected submit makes on_fill raise UnknownOrderError.
                oid = next(ids)
                submit(oid, account, CHECK_SYMBOL, BUY if oid & 1 else SELL, CHECK_QUANTITY, CHECK_PRICE)
                on_fill(oid, CHECK_QUANTITY, CHECK_PRICE, oid)

            submit_and_fill()

            def after() -> None:
                expect(engine.aggregate(account).open_orders == 0, "lifecycle orders left open")
                engine.verify()
            return Work(submit_and_fill, after=after,
                        note="timed through one Python function making both calls (its call included)")
        return Case("submit + full fill of one order", prepare, calls=s.lifecycles, timer_free=True,
                    unit="orders/s")

    # ------------------------------------------------------------ batches

    def batches(self) -> list[Case]:
        s = self.scale
        label = size_label(s.batch)

        def accepted(case: str, codes: np.ndarray) -> str:
            expect(np.mean(codes == 0) > 0.9, f"{case}: {reasons(codes)}")
            return f"median of {s.batch_runs} runs; {reasons(codes)}"

        def what_if(case: str, stream_of: Callable[[Book, int], Any]) -> Callable[[], Work]:
            def prepare() -> Work:
                book = self.book(s.check_symbols)
                columns = stream_of(book, s.batch).columns
                note = accepted(case, book.engine.check_batch(*columns))
                # The what-if batches take back all they book.
                return Work(book.engine.check_batch, (columns,), after=book.engine.verify, note=note)
            return prepare

        # Submitted orders stay: a new book per run. A production engine sizes its
        # order tables at start of day (reserve_orders); the unsized row shows
        # what a batch pays when the tables grow (and fault in memory) under it.
        def submitted(case: str, sized: bool) -> Callable[[], Work]:
            def prepare() -> Work:
                stream = order_stream(self.book(s.check_symbols), s.batch)
                ids = np.arange(1, s.batch + 1, dtype=np.int64)

                def fresh() -> tuple:
                    engine = build_book(s.check_symbols).engine
                    if sized:
                        engine.reserve_orders(s.batch)
                    return engine, ids, *stream.columns

                engine, *columns = fresh()
                note = accepted(case, engine.submit_batch(*columns))
                return Work(submit_batch, fresh=fresh, note=note)
            return prepare

        def cancels(shuffled: bool) -> Callable[[], Work]:
            # What the batch left for later: the first cancel on a slot side adds the
            # side's pending orders to its price levels (README, "Using the kernel").
            # In booking order, successive cancels read neighbouring order rows; in
            # random order, as a venue's cancels come, each reads a row out of cache.
            def prepare() -> Work:
                engine = build_book(s.check_symbols).engine          # unsized, as the batch rows leave it
                ids = np.arange(1, s.batch + 1, dtype=np.int64)
                codes = engine.submit_batch(ids, *order_stream(self.book(s.check_symbols), s.batch).columns)
                booked = ids[codes == 0][:s.fast_calls]
                expect(len(booked) == s.fast_calls, f"only {len(booked)} orders booked")
                if shuffled:
                    np.random.default_rng(7).shuffle(booked)
                sent = booked.tolist()
                open_orders = engine.aggregate().open_orders

                def after() -> None:
                    cancelled = sum(engine.order(oid).status == OrderStatus.CANCELLED for oid in sent)
                    expect(cancelled > 0 and engine.aggregate().open_orders == open_orders - cancelled,
                           "cancels not applied")
                return Work(engine.on_cancel, [(oid,) for oid in sent], after=after,
                            note="the same cancels, shuffled" if shuffled else
                            "a slot side's first cancel adds its pending orders to its price levels")
            return prepare

        spread, hot = f"check_batch {label}, spread over book", f"check_batch {label}, one hot slot"
        on_sized = f"submit_batch {label}, spread over book (sized)"
        on_unsized = f"submit_batch {label}, unsized order tables"
        per_run = dict(calls=s.batch_runs, per_call=s.batch, unit="orders/s")
        return [
            Case(spread, what_if(spread, order_stream), targets=BATCH_TARGETS, **per_run),
            Case(hot, what_if(hot, hot_slot_stream), targets=BATCH_TARGETS, **per_run),
            Case(on_sized, submitted(on_sized, True), targets=BATCH_TARGETS, **per_run),
            Case(on_unsized, submitted(on_unsized, False), **per_run),
            Case("on_cancel of orders submit_batch booked", cancels(False), calls=s.fast_calls),
            Case("on_cancel of those orders, random order", cancels(True), calls=s.fast_calls),
        ]

    def gil_release(self) -> Experiment:
        """Two engines, one thread each: released, two batches take about one's time (given 2 free cores)."""
        s = self.scale

        def rows(timing: Timing) -> list[Row]:
            books = [build_book(100), build_book(100)]
            streams = [order_stream(b, s.thread_batch) for b in books]
            expected = books[0].engine.check_batch(*streams[0].columns)
            expect(all(np.array_equal(r, expected) for r in check_batches_in_threads(books, streams)),
                   "threaded batches disagree")
            return [threads_ratio(f"2 threads / 1 thread, check_batch {s.thread_batch // 1000}k",
                                  Work(books[0].engine.check_batch, (streams[0].columns,)),
                                  Work(check_batches_in_threads, ((books, streams),)), rounds=3),
                    progress_row("Python thread speed during check_batch",
                                 lambda: books[0].engine.check_batch(*streams[0].columns), GIL_NOTE)]
        return Experiment("GIL release", rows)

    # ------------------------------------------------------- price updates

    def price_updates(self) -> list[Case]:
        s = self.scale
        holders = N_STRATEGIES + N_DESKS + 1

        def one_symbol() -> Work:
            book = build_book(s.check_symbols)      # its own: the references move
            # Two prices in turn: the same price again is a no-op in the engine.
            prices = ((CHECK_SYMBOL, CHECK_PRICE + 0.01), (CHECK_SYMBOL, CHECK_PRICE))
            book.engine.update_price(*prices[1])
            return Work(book.engine.update_price, prices, after=book.engine.verify)

        def every_symbol() -> Work:
            book = build_book(s.check_symbols)
            symbols = np.arange(len(book.symbols), dtype=np.int32)
            vectors = ((symbols, book.prices(1)), (symbols, book.prices(0)))
            book.engine.update_prices(*vectors[1])
            return Work(book.engine.update_prices, vectors, after=book.engine.verify,
                        note=f"{book.n_positions:,} positions revalued per call")

        return [Case(f"update_price, 1 symbol x {holders} holders", one_symbol, calls=s.fast_calls, timer_free=True),
                Case(f"update_prices, all {s.check_symbols} symbols", every_symbol, calls=s.slow_calls)]

    # ---------------------------------------------------------- aggregates

    def aggregates(self) -> list[Case]:
        s = self.scale
        cases = []
        for n_symbols in s.book_symbols:
            size = f"{n_symbols * N_STRATEGIES // 1000}k"

            def firm(n_symbols: int = n_symbols) -> Work:
                engine = self.book(n_symbols).engine
                aggregate = engine.aggregate()
                expect(aggregate.account == "FIRM" and aggregate.gross > 0, f"firm aggregate {aggregate!r}")
                return Work(engine.aggregate)

            def recompute(n_symbols: int = n_symbols) -> Work:
                engine = self.book(n_symbols).engine
                expect(bool((engine.recompute() == engine.aggregates()).all()), "recompute disagrees")
                return Work(engine.recompute)

            cases += [Case(f"firm aggregate(), {size} positions", firm, calls=s.fast_calls, timer_free=True,
                           targets=(Target("p50<=10µs", "median_ns", 10 * US),
                                    Target("pub p99<1ms", "p99_ns", 1 * MS, published=True))),
                      Case(f"recompute(), {size} positions", recompute, calls=s.slow_calls,
                           targets=(Target("p50<=1ms", "median_ns", 1 * MS),
                                    Target("pub p99<1ms", "p99_ns", 1 * MS, published=True)))]
        return cases

    # ----------------------------------------------------------------- VaR

    def var(self) -> list[Case]:
        """Each VaR function per shape, next to the same figures in plain numpy (context rows)."""
        s = self.scale
        cases = []
        for days, instruments in s.var_shapes:
            shape = f"{days}x{instruments}"

            def var_of(fn: Callable[..., Any], days: int = days, instruments: int = instruments
                       ) -> Callable[[], Work]:
                def prepare() -> Work:
                    returns, exposures = returns_matrix(days, instruments)
                    result = fn(returns, exposures, CONFIDENCE)
                    expect(result.es >= result.var > 0, f"{fn.__name__}: {result}")
                    return Work(fn, ((returns, exposures, CONFIDENCE),))
                return prepare

            def numpy_of(fn: Callable[..., Any], ours: Callable[..., Any], step: str, days: int = days,
                         instruments: int = instruments) -> Callable[[], Work]:
                def prepare() -> Work:
                    returns, exposures = returns_matrix(days, instruments)
                    expect(np.allclose(fn(returns, exposures), tuple(ours(returns, exposures, CONFIDENCE)),
                                       rtol=1e-9), f"numpy and riskcore disagree: {fn.__name__}")
                    return Work(fn, ((returns, exposures),),
                                note=f"context: returns @ exposures, then {step}, in plain numpy")
                return prepare

            def pnl_of(fn: Callable[..., Any], note: str = "", days: int = days, instruments: int = instruments
                       ) -> Callable[[], Work]:
                def prepare() -> Work:
                    returns, exposures = returns_matrix(days, instruments)
                    expect(np.allclose(fn(returns, exposures), returns @ exposures), f"{fn.__name__} is wrong")
                    return Work(fn, ((returns, exposures),), note=note)
                return prepare

            calls = s.slow_calls
            cases += [
                Case(f"historical_var {shape}", var_of(historical_var), calls),
                Case(f"parametric_var {shape}", var_of(parametric_var), calls),
                Case(f"scenario_pnl {shape}", pnl_of(scenario_pnl), calls),
                Case(f"numpy historical VaR {shape}",
                     numpy_of(numpy_historical_var, historical_var, "np.partition"), calls),
                Case(f"numpy parametric VaR {shape}",
                     numpy_of(numpy_parametric_var, parametric_var, "mean and std"), calls),
                Case(f"numpy returns @ exposures {shape}",
                     pnl_of(np.matmul, "context: the P&L step both VaR methods start with, through BLAS"), calls),
            ]
        return cases

    def var_gil(self) -> Experiment:
        days, instruments = self.scale.var_shapes[-1]

        def rows(timing: Timing) -> list[Row]:
            returns, exposures = returns_matrix(days, instruments)
            return [progress_row(f"Python thread speed during historical_var {days}x{instruments}",
                                 lambda: [historical_var(returns, exposures, CONFIDENCE) for _ in range(20)],
                                 "the product runs in numpy's BLAS without the GIL, the selection in a nogil loop")]
        return Experiment("VaR GIL release", rows)

    # ---------------------------------------------------------------- ITCH

    def day_file(self, compress: bool = False) -> str:
        """The simulated ITCH day of this scale, written once (plain or gzip) to a scratch folder."""
        from riskcore_services.ingest.simulate import SimulationConfig, write_day_file

        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="riskcore-itch-")
        path = os.path.join(self._scratch.name, "day.itch.gz" if compress else "day.itch")
        if not os.path.exists(path):
            s = self.scale
            write_day_file(path, SimulationConfig(messages=s.itch_messages, symbols=s.itch_symbols, seed=0),
                           compress=compress)
        return path

    def day_bytes(self) -> bytes:
        """The plain day file's bytes."""
        with open(self.day_file(), "rb") as handle:
            return handle.read()

    def expect_whole_day(self, book: Any) -> None:
        """The book took every message of the day cleanly: a benchmark must not time a broken decode."""
        counters = {k: v for k, v in book.counters().items() if v}
        expect(counters == {"messages": self.scale.itch_messages}, f"ITCH day: {counters}")

    def itch(self) -> list[Case]:
        """A simulated ITCH 5.0 day replayed from a file into an L3 book (decode + book), plain and gzip."""
        from riskcore import Book as ItchBook
        from riskcore_services.ingest.reader import replay

        s = self.scale
        day = f"{size_label(s.itch_messages)} msgs x {s.itch_symbols:,} symbols"

        def replayed(compress: bool) -> Callable[[], Work]:
            def prepare() -> Work:
                path = self.day_file(compress)
                book = ItchBook()
                replay(path, book)
                self.expect_whole_day(book)
                live = book.orders

                def note(timed: Timed) -> str:
                    return (f"file -> decode -> L3 book, median of {len(timed.samples)} runs (best "
                            f"{s.itch_messages / (min(timed.samples) / 1e9) / 1e6:.2f}M/s); {live:,} live "
                            f"orders at the end")
                return Work(replay, fresh=lambda: (path, ItchBook()), note=note)
            return prepare

        def in_memory() -> Work:
            data = self.day_bytes()
            book = ItchBook()
            book.feed(data)
            self.expect_whole_day(book)
            return Work(feed, fresh=lambda: (ItchBook(), data), note="bytes in memory -> decode -> L3 book")

        per_run = dict(calls=s.itch_runs, per_call=s.itch_messages, unit="msg/s")
        return [Case(f"ITCH replay {day}, plain", replayed(False), targets=ITCH_TARGETS, **per_run),
                Case(f"ITCH replay {day}, gzip", replayed(True), **per_run),
                Case(f"ITCH feed {day}, in memory", in_memory, **per_run)]

    def itch_gil(self) -> Experiment:
        """Feeds release the GIL: two books fed from two threads take about one's time (given 2 free cores)."""
        from riskcore import Book as ItchBook

        def rows(timing: Timing) -> list[Row]:
            data = self.day_bytes()
            books = [ItchBook(), ItchBook()]
            feed_in_threads(books, data)
            for book in books:
                self.expect_whole_day(book)
            return [threads_ratio("2 threads / 1 thread, Book.feed", Work(feed, fresh=lambda: (ItchBook(), data)),
                                  Work(feed_in_threads, fresh=lambda: ([ItchBook(), ItchBook()], data)), rounds=2),
                    progress_row("Python thread speed during Book.feed", lambda: ItchBook().feed(data), GIL_NOTE)]
        return Experiment("ITCH GIL release", rows)


def numpy_historical_var(returns: np.ndarray, exposures: np.ndarray,
                         confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Historical VaR and ES in plain numpy: the BLAS product, then a partial sort of the losses."""
    periods = returns.shape[0]
    k = max(1, math.ceil(periods * (1 - confidence) - 1e-9))
    losses = np.partition(-(returns @ exposures), periods - k)
    return float(losses[periods - k]), float(losses[periods - k:].mean())


def numpy_parametric_var(returns: np.ndarray, exposures: np.ndarray,
                         confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Normal VaR and ES in plain numpy (z at 99% as a constant, as a caller would hold it)."""
    pnl = returns @ exposures
    mu, sigma = pnl.mean(), pnl.std(ddof=1)
    return 2.3263478740408408 * sigma - mu, 2.665214220345808 * sigma - mu


def submit_batch(engine: Any, *columns: np.ndarray) -> np.ndarray:
    """``engine.submit_batch(*columns)``: the call of a case whose every run gets a fresh engine."""
    return engine.submit_batch(*columns)


def feed(book: Any, data: bytes) -> int:
    """``book.feed(data)``: the call of a case whose every run gets a fresh book."""
    return book.feed(data)


def feed_in_threads(books: list[Any], data: bytes) -> None:
    """Feed ``data`` to each book, one thread a book."""
    threads = [threading.Thread(target=book.feed, args=(data,)) for book in books]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
