"""The write-ahead journal of the risk service, in a SQLite database (WAL mode).

Every state-changing command is appended as a record ``(seq, time_ns, kind,
payload, crc)`` before its caller is answered. A writer thread commits what
has accumulated in one transaction (group commit: many records per fsync
under load, one per fsync when idle) and then wakes the waiting calls. A
snapshot of the whole state is stored in the same database, and the records
it covers are deleted in the same transaction, so recovery is always "newest
snapshot + the records after it".
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import pickle
import queue
import sqlite3
import struct
import threading
import time
import zlib
from typing import Any, Callable, Iterator, NamedTuple

from services.common.calls import Unavailable

FORMAT_VERSION = 1


class JournalError(Unavailable):
    """The journal or snapshot cannot be used as it is; the message says why and where."""


class Record(NamedTuple):
    """One journaled command."""

    seq: int
    time_ns: int
    kind: int
    payload: bytes


_KEY = struct.Struct("<qB")


def record_crc(time_ns: int, kind: int, payload: bytes) -> int:
    """CRC-32 over the time, the kind and the payload."""
    return zlib.crc32(payload, zlib.crc32(_KEY.pack(time_ns, kind)))


class _PlainData(pickle.Unpickler):
    # Snapshots hold only dicts, lists, tuples, sets, bytes, str, int, float and
    # None; refusing every class keeps a tampered file from running code.
    def find_class(self, module: str, name: str):
        raise JournalError(f"snapshot refers to {module}.{name}; only plain data is allowed")


def encode_snapshot(state: dict) -> bytes:
    return pickle.dumps(state, protocol=5)


def decode_snapshot(blob: bytes) -> dict:
    return _PlainData(io.BytesIO(blob)).load()


class SqliteJournal:
    """Append-only command journal with group commit.

    Parameters
    ----------
    path : str
        Database file; created when missing.
    synchronous : str
        SQLite ``synchronous`` pragma: FULL (default) fsyncs every commit.
    """

    def __init__(self, path: str, synchronous: str = "FULL"):
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript("""
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS journal (
                    seq INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL, kind INTEGER NOT NULL,
                    payload BLOB NOT NULL, crc INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS snapshots (
                    seq INTEGER PRIMARY KEY, version INTEGER NOT NULL, created_ns INTEGER NOT NULL,
                    state BLOB NOT NULL, sha256 TEXT NOT NULL);
            """)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT_VERSION,))
            elif row[0] != FORMAT_VERSION:
                raise JournalError(f"{path}: journal format {row[0]} is not the supported {FORMAT_VERSION}")
            problems = [row[0] for row in self._db.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                summary = "; ".join(problems[:3]).replace("\n", "; ")
                raise JournalError(f"{path}: the database fails SQLite's integrity check: {summary[:300]}")
        except sqlite3.DatabaseError as error:
            raise JournalError(f"{path}: {error}") from None
        last = self._db.execute("SELECT MAX(seq) FROM journal").fetchone()[0]
        snap = self._db.execute("SELECT MAX(seq) FROM snapshots").fetchone()[0]
        self.last_seq = max(last or 0, snap or 0)
        self.durable_seq = self.last_seq
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.on_failure: Callable[[BaseException], None] = lambda error: None
        self.commits = 0
        self.records_written = 0

    # ---------------------------------------------------------- recovery

    def load(self) -> tuple[int, dict | None, Iterator[Record]]:
        """Return ``(snapshot seq, snapshot state or None, records after it)``.

        Raises
        ------
        JournalError
            Checksum or version mismatch, a gap in the sequence, a corrupt page.
        """
        try:
            row = self._db.execute(
                "SELECT seq, version, state, sha256 FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
        except sqlite3.DatabaseError as error:
            raise JournalError(f"{self.path}: {error}") from None
        state, base = None, 0
        if row is not None:
            base, version, blob, digest = row
            if hashlib.sha256(blob).hexdigest() != digest:
                raise JournalError(f"{self.path}: snapshot at seq {base} fails its checksum")
            if version != FORMAT_VERSION:
                raise JournalError(f"{self.path}: snapshot at seq {base} has version {version}, "
                                   f"this build reads {FORMAT_VERSION}")
            try:
                state = decode_snapshot(blob)
            except JournalError:
                raise
            except Exception as error:  # noqa: BLE001 - any decoding failure is a bad snapshot
                raise JournalError(f"{self.path}: snapshot at seq {base} cannot be decoded: {error}") from None
        return base, state, self._records_after(base)

    def _records_after(self, base: int) -> Iterator[Record]:
        expected = base + 1
        try:
            cursor = self._db.execute(
                "SELECT seq, time_ns, kind, payload, crc FROM journal WHERE seq > ? ORDER BY seq", (base,))
            for seq, time_ns, kind, payload, crc in cursor:
                if seq != expected:
                    raise JournalError(f"{self.path}: journal jumps from seq {expected - 1} to {seq}")
                if record_crc(time_ns, kind, payload) != crc:
                    raise JournalError(f"{self.path}: journal record {seq} fails its checksum")
                expected += 1
                yield Record(seq, time_ns, kind, payload)
        except sqlite3.DatabaseError as error:
            raise JournalError(f"{self.path}: {error}") from None

    # ------------------------------------------------------------ writing

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer thread; waiters are woken on ``loop``."""
        self._loop = loop
        self._writer = threading.Thread(target=self._write_loop, name="journal-writer", daemon=True)
        self._writer.start()

    def append(self, time_ns: int, kind: int, payload: bytes) -> int:
        """Queue a record; return its sequence number (durable once :meth:`wait` returns)."""
        if self._failure is not None:
            raise JournalError(f"journal writer failed: {self._failure}")
        self.last_seq += 1
        self._queue.put((self.last_seq, time_ns, kind, payload, record_crc(time_ns, kind, payload)))
        return self.last_seq

    async def wait(self, seq: int) -> None:
        """Return once every record up to ``seq`` is durable."""
        if seq <= self.durable_seq:
            return
        if self._failure is not None:
            raise JournalError(f"journal writer failed: {self._failure}")
        future = self._loop.create_future()
        self._waiters.append((seq, future))
        await future

    def snapshot(self, seq: int, state: dict[str, Any]) -> None:
        """Queue a snapshot of the state after record ``seq``; older records are then deleted."""
        self._queue.put(("snapshot", seq, state))

    async def aclose(self) -> None:
        """Write everything queued and close, off the event loop."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Write everything queued, stop the writer and close the database."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None
        self._db.close()

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            batch, stop = [], False
            while item is not None:
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            else:
                stop = True
            try:
                self._commit(batch)
            except BaseException as error:  # noqa: BLE001 - fail every waiter, never ack
                self._failure = error
                self._loop.call_soon_threadsafe(self._fail_waiters, error)
                return
            if stop:
                return

    def _commit(self, batch: list) -> None:
        records = [item for item in batch if item[0] != "snapshot"]
        db = self._db
        db.execute("BEGIN")
        if records:
            db.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?)", records)
        for item in batch:
            if item[0] == "snapshot":
                _, seq, state = item
                blob = encode_snapshot(state)
                db.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?)",
                           (seq, FORMAT_VERSION, time.time_ns(), blob, hashlib.sha256(blob).hexdigest()))
                db.execute("DELETE FROM journal WHERE seq <= ?", (seq,))
                db.execute("DELETE FROM snapshots WHERE seq < ?", (seq,))
        db.execute("COMMIT")
        self.commits += 1
        self.records_written += len(records)
        if records:
            self._loop.call_soon_threadsafe(self._wake, records[-1][0])

    def _wake(self, seq: int) -> None:
        self.durable_seq = max(self.durable_seq, seq)
        still = []
        for target, future in self._waiters:
            if target <= self.durable_seq:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((target, future))
        self._waiters = still

    def _fail_waiters(self, error: BaseException) -> None:
        self.on_failure(error)
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(JournalError(f"journal write failed: {error}"))
        self._waiters = []
