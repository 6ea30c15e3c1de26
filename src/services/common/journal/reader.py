"""Read and check the journal's records in a child process, for :meth:`.sqlite.SqliteJournal.load`.

Recovery may replay about a million records on the event loop's thread, and fetching them
from SQLite and checking their CRCs is a third of that work: a child process does it on
another core while the service replays. Run as ``python -I -S reader.py PATH AFTER``;
standard library only, so the child starts in milliseconds.

On stdout it writes messages, each a uint32 (little-endian) length and a :mod:`marshal`
blob: lists of ``(seq, time_ns, kind, payload)`` tuples in sequence order, then ``None``
at the end; or, after the records before it, a str saying what is wrong with the journal.
"""
import marshal
import sqlite3
import struct
import sys
import zlib
from typing import Iterator

SIZE = struct.Struct("<I")
_KEY = struct.Struct("<qB")
_CHUNK = 4096  # records per message, about 250 kB


def record_crc(time_ns: int, kind: int, payload: bytes) -> int:
    """CRC-32 over the time, the kind and the payload."""
    return zlib.crc32(payload, zlib.crc32(_KEY.pack(time_ns, kind)))


def messages(path: str, base: int) -> Iterator[list | str | None]:
    """The messages for the records after ``base``: checked in order, stopping at the first bad one."""
    expected = base + 1
    chunk: list[tuple[int, int, int, bytes]] = []
    try:
        db = sqlite3.connect(path)
        for seq, time_ns, kind, payload, crc in db.execute(
                "SELECT seq, time_ns, kind, payload, crc FROM journal WHERE seq > ? ORDER BY seq", (base,)):
            if seq != expected:
                yield chunk
                yield f"journal jumps from seq {expected - 1} to {seq}"
                return
            if record_crc(time_ns, kind, payload) != crc:
                yield chunk
                yield f"journal record {seq} fails its checksum"
                return
            expected += 1
            chunk.append((seq, time_ns, kind, payload))
            if len(chunk) == _CHUNK:
                yield chunk
                chunk = []
    except sqlite3.DatabaseError as error:
        yield chunk
        yield str(error)
        return
    yield chunk
    yield None


def main(path: str, base: int) -> None:
    out = sys.stdout.buffer
    for message in messages(path, base):
        blob = marshal.dumps(message)
        out.write(SIZE.pack(len(blob)))
        out.write(blob)
    out.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
