"""The write-ahead journal in a SQLite database (WAL mode), for any service with durable state.

Every change a service journals is appended as a record ``(seq, time_ns, kind,
payload, crc)`` before its caller is answered. A writer thread commits what
has accumulated in one transaction (group commit: many records per fsync
under load, one per fsync when idle) and then wakes the waiting calls. A
snapshot of the whole state is stored in the same database, and the records
it covers are deleted in the same transaction, so recovery is always "newest
snapshot + the records after it"; a child process (:mod:`.reader`) reads and
checks those records while the service replays them. The package's docstring
shows the calls a service makes.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import marshal
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from typing import IO, Any, Callable, Iterator, cast

from riskcore_services.common.journal import FORMAT_VERSION, JournalError, decode_snapshot, encode_snapshot
from riskcore_services.common.journal import reader as journal_reader
from riskcore_services.common.journal.reader import record_crc

def _read_message(stream: IO[bytes]) -> list | str | None:
    """The journal reader's next message; EOFError when its output ends before one."""
    size = journal_reader.SIZE
    header = stream.read(size.size)
    if len(header) == size.size:
        (length,) = size.unpack(header)
        body = stream.read(length)
        if len(body) == length:
            # marshal, not pickle: the child sends only strs and lists of tuples of ints and bytes.
            return marshal.loads(body)
    raise EOFError


def _lock_journal(path: str) -> int:
    """Hold ``<path>.lock`` under an exclusive flock for as long as the returned descriptor is open.

    One writer per journal: a second one would serve stale reads until its
    first write failed. The kernel drops a flock when its holder dies, even
    by kill -9, so a crash never leaves the journal locked. The holder's pid
    is written into the file for the refusal message.
    """
    lock_path = f"{path}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise JournalError(f"{path}: cannot open its lock file {lock_path}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise JournalError(f"{path} is in use by another process (pid {holder}, lock {lock_path}); "
                           f"stop it or give this one another [state] path") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class SqliteJournal:
    """Append-only command journal with group commit.

    Parameters
    ----------
    path : str
        Database file; created when missing. ``<path>.lock`` beside it is held
        under an exclusive lock until :meth:`close`: a second journal on the
        same file (in this process or another) raises JournalError.
    synchronous : str
        SQLite ``synchronous`` pragma: FULL (default) fsyncs every commit.
    """

    def __init__(self, path: str, synchronous: str = "FULL"):
        self.path = path
        self._lock = _lock_journal(path)
        try:
            self._open(path, synchronous)
        except BaseException:
            os.close(self._lock)
            raise

    def _open(self, path: str, synchronous: str) -> None:
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

    def load(self) -> tuple[int, dict | None, Iterator[tuple[int, int, int, bytes]]]:
        """Return ``(snapshot seq, snapshot state or None, records after it)``.

        The records are ``(seq, time_ns, kind, payload)`` tuples, each checked as it is read.

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

    def _records_after(self, base: int) -> Iterator[tuple[int, int, int, bytes]]:
        # Read and checked by a child process, on another core than the replay (see journal_reader).
        command = [sys.executable, "-I", "-S", journal_reader.__file__, self.path, str(base)]
        with subprocess.Popen(command, stdout=subprocess.PIPE) as reader:
            stream = cast(IO[bytes], reader.stdout)
            # Room for a few messages, so that neither process waits for the other at every one
            # (which costs most when the other core is busy too). Capped by /proc/sys/fs/pipe-max-size.
            with contextlib.suppress(OSError):
                fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
            try:
                while (message := _read_message(stream)) is not None:
                    if isinstance(message, str):
                        raise JournalError(f"{self.path}: {message}")
                    yield from message
            except EOFError:
                raise JournalError(f"{self.path}: the journal reader stopped (exit status {reader.wait()})") from None
            finally:
                reader.kill()  # finished, failed, or abandoned by the caller: nothing more to read

    # ------------------------------------------------------------ writing

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer thread; waiters are woken on ``loop``."""
        self._loop = loop
        self._writer = threading.Thread(target=self._write_loop, args=(loop,), name="journal-writer", daemon=True)
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
        if self._loop is None:
            raise JournalError(f"{self.path}: wait() before start(): nothing would make record {seq} durable")
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
        if self._lock >= 0:
            os.close(self._lock)  # releases the flock
            self._lock = -1

    def _write_loop(self, loop: asyncio.AbstractEventLoop) -> None:
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
                self._commit(batch, loop)
            except BaseException as error:  # noqa: BLE001 - fail every waiter, never ack
                self._failure = error
                loop.call_soon_threadsafe(self._fail_waiters, error)
                return
            if stop:
                return

    def _commit(self, batch: list, loop: asyncio.AbstractEventLoop) -> None:
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
            loop.call_soon_threadsafe(self._wake, records[-1][0])

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
