"""Damage made to a SQLite journal's file from outside, for the journal's tests and the risk service's."""
from __future__ import annotations

import struct

from riskcore_services.testing import sqlite_rows as sql


def checkpoint(path) -> None:
    """Move everything from the -wal file into the database file (and empty the -wal)."""
    sql(path, "PRAGMA wal_checkpoint(TRUNCATE)")


def page_size(path) -> int:
    return sql(path, "PRAGMA page_size")[0][0]


def corrupt_freelist(path) -> None:
    """Overwrite the first free-list trunk page (pages freed by a snapshot) with 0xff bytes."""
    checkpoint(path)
    header = path.read_bytes()[:100]
    trunk, free = struct.unpack(">II", header[32:40])
    assert trunk and free, "no free pages to damage"
    size = page_size(path)
    with open(path, "r+b") as file:
        file.seek((trunk - 1) * size)
        file.write(b"\xff" * size)
