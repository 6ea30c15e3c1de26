"""Replay a NASDAQ ITCH 5.0 day file into a :class:`riskcore.Book`.

A day file is the feed's messages, each behind a 2-byte big-endian length,
plain or gzip-compressed (told apart by the gzip magic bytes, not the file
name). The file is read in big chunks straight into one buffer; a frame cut
by a chunk boundary is moved to the front and completed by the next read. The
last frame of a file that ends inside it is counted by the book as
``truncated_frame``.

Replay runs as fast as it can, or paced: each message is applied no earlier
than its recorded time since the first message, divided by ``speed``.
"""
from __future__ import annotations

import gzip
import io
import time
from dataclasses import dataclass
from typing import Callable

from riskcore import Book

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 8 * 2**20
MAX_FRAME = 2 + 0xFFFF           # a chunk must hold the largest frame


def open_day_file(path: str) -> io.BufferedIOBase:
    """Open ``path`` for reading bytes, through gzip when it starts with the gzip magic."""
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # closing it does not close raw
    return raw


@dataclass(slots=True)
class ReplayStats:
    """What a replay did."""

    messages: int = 0          # applied by the book (Book.counters()["messages"] delta)
    bytes: int = 0             # of framed messages read (after decompression)
    seconds: float = 0.0       # wall time

    @property
    def rate(self) -> float:
        """Messages per second of wall time."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def read_messages(path: str, first: int, last: int, chunk_bytes: int = CHUNK_BYTES) -> list[bytes]:
    """Messages ``first..last`` (1-based, inclusive) of a day file, fewer when it ends sooner.

    A day file of one MoldUDP64 session holds its messages in sequence, so
    message i is sequence number i: recovery from a captured session.

    Raises
    ------
    EOFError
        The file ends before message ``first``.

    Notes
    -----
    Walks every frame before ``first`` (about 0.2 µs each): seconds for a
    whole day.
    """
    out: list[bytes] = []
    sequence = 0
    pending = b""
    with open_day_file(path) as handle:
        while sequence < last:
            chunk = handle.read(chunk_bytes)
            if not chunk:
                break
            data = pending + chunk
            pos, end = 0, len(data)
            while pos + 2 <= end and sequence < last:
                stop = pos + 2 + ((data[pos] << 8) | data[pos + 1])
                if stop > end:
                    break
                sequence += 1
                if sequence >= first:
                    out.append(data[pos + 2:stop])
                pos = stop
            pending = data[pos:]
    if sequence < first:
        raise EOFError(f"{path} ends at message {sequence}, before message {first}")
    return out


def next_frame(view: memoryview, pos: int, end: int) -> tuple[int, int] | None:
    """(length of the frame at pos, its timestamp or -1 when too short for one), or None if incomplete."""
    if pos + 2 > end:
        return None
    length = (view[pos] << 8) | view[pos + 1]
    if pos + 2 + length > end:
        return None
    # The timestamp: 6 bytes at offset 5 of the message.
    return 2 + length, int.from_bytes(view[pos + 7:pos + 13], "big") if length >= 11 else -1


def replay(path: str, book: Book, *, speed: float | None = None, chunk_bytes: int = CHUNK_BYTES,
           progress: Callable[[ReplayStats], object] | None = None, progress_every: float = 1.0,
           clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], object] = time.sleep,
           ) -> ReplayStats:
    """Feed the day file at ``path`` into ``book``.

    Parameters
    ----------
    path : str
        A day file, plain or gzip.
    book : Book
    speed : float, optional
        None: as fast as possible. Otherwise a factor on recorded time (1.0
        real time, 10.0 ten times faster).
    chunk_bytes : int
        Bytes read at a time (at least 128 KiB).
    progress : callable(ReplayStats), optional
        Called about every ``progress_every`` seconds with the running totals.
    clock, sleep
        Time source and sleep, injected for tests.

    Returns
    -------
    ReplayStats
    """
    if chunk_bytes < 2 * MAX_FRAME:
        raise ValueError(f"chunk_bytes must be at least {2 * MAX_FRAME}, got {chunk_bytes}")
    if speed is not None and not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed!r}")
    stats = ReplayStats()
    start = clock()
    next_progress = start + progress_every
    first_ts: int | None = None
    before = book.counters()["messages"]
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    filled = 0
    with open_day_file(path) as handle:
        while True:
            n = handle.readinto(view[filled:])
            if not n:
                break
            stats.bytes += n
            filled += n
            consumed = 0
            if speed is None:
                consumed = book.feed_chunk(view[:filled])
            else:
                while (frame := next_frame(view, consumed, filled)) is not None:
                    size, ts = frame
                    if ts < 0:          # too short to be stamped: the book counts it
                        consumed += book.feed_chunk(view[consumed:consumed + size])
                        continue
                    if first_ts is None:
                        first_ts = ts
                    wait = start + (ts - first_ts) / 1e9 / speed - clock()
                    if wait > 0:
                        sleep(wait)
                    # Everything due by now goes in one call.
                    due = first_ts + int((clock() - start) * speed * 1e9)
                    consumed += book.feed_chunk(view[consumed:filled], until=max(due, ts))
            rest = filled - consumed
            view[:rest] = view[consumed:filled]
            filled = rest
            if progress is not None and clock() >= next_progress:
                stats.messages = book.counters()["messages"] - before
                stats.seconds = clock() - start
                progress(stats)
                next_progress = clock() + progress_every
    if filled:
        book.feed(view[:filled])        # a frame the file cut off: counted as truncated
    view.release()
    stats.messages = book.counters()["messages"] - before
    stats.seconds = clock() - start
    return stats
