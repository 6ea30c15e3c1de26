"""``riskcore feed``: make a test ITCH 5.0 day file, and replay one into a book."""
from __future__ import annotations

import argparse
import csv
import sys

from riskcore import Book, format_price


def _simulate(args: argparse.Namespace) -> int:
    from riskcore_services.ingest.simulate import SimulationConfig, write_day_file

    try:
        config = SimulationConfig(messages=args.messages, symbols=args.symbols, seed=args.seed)
    except ValueError as error:
        print(f"riskcore feed simulate: {error}", file=sys.stderr)
        return 2
    size = write_day_file(args.out, config, compress=args.gzip)
    print(f"wrote {args.out}: {config.messages:,} messages, {config.symbols:,} symbols, seed {config.seed}, "
          f"{size:,} bytes{' before gzip' if args.gzip else ''}")
    return 0


def write_top_of_book(book: Book, path: str) -> int:
    """Write the top of book of every symbol in the directory as CSV; return the rows written."""
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["symbol", "bid_price", "bid_size", "ask_price", "ask_size", "last_price"])
        symbols = book.symbols()
        for symbol in symbols:
            top = book.top(symbol)
            out.writerow([symbol,
                          format_price(top.bid_price), top.bid_size if top.bid_price is not None else "",
                          format_price(top.ask_price), top.ask_size if top.ask_price is not None else "",
                          format_price(top.last_price)])
    return len(symbols)


def _replay(args: argparse.Namespace) -> int:
    from riskcore_services.ingest.reader import ReplayStats, replay

    if args.speed is not None and not args.speed > 0:
        print(f"riskcore feed replay: --speed must be > 0, got {args.speed}", file=sys.stderr)
        return 2

    def progress(stats: ReplayStats) -> None:
        print(f"{stats.messages:,} messages, {stats.seconds:.1f} s, {stats.rate:,.0f} msg/s", file=sys.stderr,
              flush=True)

    book = Book()
    try:
        stats = replay(args.file, book, speed=args.speed, progress=progress)
    except OSError as error:
        print(f"riskcore feed replay: {error}", file=sys.stderr)
        return 2
    counters = book.counters()
    skipped = {k: v for k, v in counters.items() if k != "messages" and v}
    print(f"{stats.messages:,} messages in {stats.seconds:.3f} s: {stats.rate:,.0f} msg/s; "
          f"{len(book.symbols()):,} symbols, {book.orders:,} live orders")
    print("counters: " + (", ".join(f"{k} {v:,}" for k, v in skipped.items()) or "all clean"))
    if args.book_out:
        rows = write_top_of_book(book, args.book_out)
        print(f"wrote the top of book of {rows:,} symbols to {args.book_out}")
    return 0


def add_feed_commands(commands: argparse._SubParsersAction) -> None:
    """Add the ``feed`` command group to the ``riskcore`` parser."""
    feed = commands.add_parser("feed", help="ITCH 5.0 market data: make a test day file, replay one")
    sub = feed.add_subparsers(dest="feed_command", required=True)

    sim = sub.add_parser("simulate", help="write a valid ITCH 5.0 day file (NASDAQ framing)",
                         description="Write a seeded, valid ITCH 5.0 day: system events, a stock directory, "
                                     "adds, executions, cancels, deletes, replaces, trades, crosses, halts.")
    sim.add_argument("--out", required=True, metavar="FILE", help="the day file to write")
    sim.add_argument("--messages", type=int, default=1_000_000, metavar="N",
                     help="messages in the day, all included (default 1,000,000)")
    sim.add_argument("--symbols", type=int, default=100, metavar="K", help="symbols (default 100)")
    sim.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    sim.add_argument("--gzip", action="store_true", help="gzip the file")
    sim.set_defaults(handler=_simulate)

    rep = sub.add_parser("replay", help="replay a day file (plain or gzip) into an L3 book",
                         description="Decode a day file into an L3 book, print progress on stderr and the "
                                     "rate and the book's counters at the end.")
    rep.add_argument("file", help="an ITCH 5.0 day file, plain or gzip (detected from its first bytes)")
    rep.add_argument("--speed", type=float, metavar="X",
                     help="pace at recorded time divided by X (1 = real time); default: as fast as possible")
    rep.add_argument("--book-out", metavar="PATH",
                     help="write the final top of book per symbol as CSV: "
                          "symbol,bid_price,bid_size,ask_price,ask_size,last_price")
    rep.set_defaults(handler=_replay)
