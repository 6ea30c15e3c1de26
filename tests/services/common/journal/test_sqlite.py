"""The SQLite journal: durability of what it acknowledges, snapshots, damaged files, one writer per file.

Damage is made with real bytes in real files: flipped pages, bad checksums,
torn write-ahead-log frames. A damaged journal must give a clear
JournalError, never silently different records. The records here are opaque
bytes of one kind, as any service's would be to the journal.
"""
from __future__ import annotations

import asyncio
import hashlib
import pickle
import random
import sys

import pytest

from riskcore_services.common.journal import FORMAT_VERSION, JournalError
from riskcore_services.common.journal.sqlite import SqliteJournal
from riskcore_services.testing import sqlite_rows as sql

from .damage import checkpoint, corrupt_freelist, page_size

DEADLINE = 5.0  # seconds for any wait on the journal
SEED = 77
KIND = 5


def payload(i: int) -> bytes:
    """A record's payload: different lengths and bytes for each record."""
    return f"record {i}:".encode() + bytes(range(i % 200))


def append_records(path, count: int, snapshot: tuple[int, dict] | None = None, start: int = 0) -> SqliteJournal:
    """Append ``count`` records (and queue ``snapshot`` after them); return the journal, closed."""
    async def run():
        journal = SqliteJournal(str(path))
        journal.start(asyncio.get_running_loop())
        seq = journal.last_seq
        for i in range(start, start + count):
            seq = journal.append(1_000 + i, KIND, payload(i))
        if snapshot is not None:
            journal.snapshot(*snapshot)
        await asyncio.wait_for(journal.wait(seq), DEADLINE)
        await journal.aclose()
        return journal
    return asyncio.run(run())


def load_all(path) -> tuple[int, dict | None, list]:
    journal = SqliteJournal(str(path))
    try:
        base, state, records = journal.load()
        return base, state, list(records)
    finally:
        journal.close()


# ------------------------------------------------------------------ the journal itself

def test_records_are_committed_when_wait_returns_and_load_back_in_order_after_reopening(tmp_path):
    path = str(tmp_path / "j.db")

    async def run():
        journal = SqliteJournal(path)
        journal.start(asyncio.get_running_loop())
        seqs = [journal.append(1_000 + i, KIND, payload(i)) for i in range(50)]
        await asyncio.wait_for(journal.wait(seqs[-1]), DEADLINE)
        # Another connection sees every record the moment wait returned.
        seen = sql(path, "SELECT COUNT(*), MAX(seq) FROM journal")[0]
        await journal.aclose()
        return seqs, seen

    seqs, seen = asyncio.run(run())
    assert seqs == list(range(1, 51)) and seen == (50, 50)
    base, state, records = load_all(path)
    assert (base, state) == (0, None)
    assert records == [(i + 1, 1_000 + i, KIND, payload(i)) for i in range(50)]
    reopened = append_records(path, 5, start=50)
    assert reopened.last_seq == 55 and [seq for seq, *_ in load_all(path)[2]] == list(range(1, 56))


def test_many_appends_are_group_committed_in_fewer_transactions_than_records(tmp_path):
    journal = append_records(tmp_path / "j.db", 2_000)
    assert journal.records_written == 2_000
    assert journal.commits < 2_000 / 4, journal.commits


def test_a_snapshot_deletes_the_records_it_covers_and_load_starts_after_it(tmp_path):
    path = tmp_path / "j.db"
    append_records(path, 30, snapshot=(30, {"marker": 30, "rows": [1, 2, 3]}))
    append_records(path, 4, start=30)
    assert sql(path, "SELECT MIN(seq), MAX(seq), COUNT(*) FROM journal") == [(31, 34, 4)]
    assert sql(path, "SELECT seq, version FROM snapshots") == [(30, FORMAT_VERSION)]
    base, state, records = load_all(path)
    assert (base, state, [seq for seq, *_ in records]) == (30, {"marker": 30, "rows": [1, 2, 3]}, [31, 32, 33, 34])
    # A second snapshot replaces the first.
    append_records(path, 0, snapshot=(34, {"marker": 34}))
    assert sql(path, "SELECT seq FROM snapshots") == [(34,)] and sql(path, "SELECT COUNT(*) FROM journal") == [(0,)]
    assert load_all(path)[:2] == (34, {"marker": 34})


def _flip_payload_byte(path) -> None:
    (payload,), = sql(path, "SELECT payload FROM journal WHERE seq = 7")
    payload = bytearray(payload)
    payload[len(payload) // 2] ^= 0x01
    sql(path, "UPDATE journal SET payload = ? WHERE seq = 7", bytes(payload))


@pytest.mark.parametrize("damage", [
    lambda path: sql(path, "UPDATE journal SET crc = crc + 1 WHERE seq = 7"),
    _flip_payload_byte,
    lambda path: sql(path, "UPDATE journal SET time_ns = time_ns + 1 WHERE seq = 7"),
    lambda path: sql(path, "UPDATE journal SET kind = 1 WHERE seq = 7"),
], ids=["crc", "payload", "time", "kind"])
def test_a_record_that_fails_its_crc_is_a_journal_error_naming_it(tmp_path, damage):
    path = tmp_path / "j.db"
    append_records(path, 10)
    damage(path)
    with pytest.raises(JournalError, match=r"journal record 7 fails its checksum"):
        load_all(path)


def test_a_missing_record_is_a_journal_error_naming_the_gap(tmp_path):
    path = tmp_path / "j.db"
    append_records(path, 10)
    sql(path, "DELETE FROM journal WHERE seq = 4")
    with pytest.raises(JournalError, match=r"journal jumps from seq 3 to 5"):
        load_all(path)


def test_records_cut_off_by_the_reader_process_are_a_journal_error_not_the_end_of_the_journal(
        tmp_path, monkeypatch):
    path = tmp_path / "j.db"
    append_records(path, 5_000)
    # The child that reads the records has its output cut short, as if it died mid-way.
    cut = tmp_path / "cut-python"
    cut.write_text(f'#!/bin/sh\n"{sys.executable}" "$@" | head -c 100000\n')
    cut.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(cut))
    with pytest.raises(JournalError, match=rf"{path}: the journal reader stopped"):
        load_all(path)


@pytest.mark.parametrize("damage, message", [
    ("UPDATE snapshots SET sha256 = '0' || substr(sha256, 2)", r"snapshot at seq 12 fails its checksum"),
    ("UPDATE snapshots SET state = CAST(state || x'00' AS BLOB)", r"snapshot at seq 12 fails its checksum"),
    (f"UPDATE snapshots SET version = {FORMAT_VERSION + 1}", rf"snapshot at seq 12 has version {FORMAT_VERSION + 1}"),
], ids=["sha256", "state", "version"])
def test_a_damaged_snapshot_is_a_journal_error(tmp_path, damage, message):
    path = tmp_path / "j.db"
    append_records(path, 12, snapshot=(12, {"state": "x"}))
    sql(path, damage)
    with pytest.raises(JournalError, match=message):
        load_all(path)


class _Boom:
    def __reduce__(self):
        return (print, ("a snapshot ran code",))


def test_a_snapshot_that_names_a_class_is_refused_without_running_it(tmp_path, capsys):
    path = tmp_path / "j.db"
    append_records(path, 3)
    blob = pickle.dumps({"state": _Boom()}, protocol=5)
    sql(path, "INSERT INTO snapshots VALUES (3, ?, 0, ?, ?)", FORMAT_VERSION, blob, hashlib.sha256(blob).hexdigest())
    with pytest.raises(JournalError, match=r"snapshot refers to builtins\.print"):
        load_all(path)
    assert "ran code" not in capsys.readouterr().out


def test_a_journal_of_another_format_is_refused_when_opened(tmp_path):
    path = tmp_path / "j.db"
    append_records(path, 3)
    sql(path, "UPDATE meta SET value = 99 WHERE key = 'format'")
    with pytest.raises(JournalError, match=rf"journal format 99 is not the supported {FORMAT_VERSION}"):
        SqliteJournal(str(path))


def test_a_garbage_page_in_the_middle_of_the_file_is_a_journal_error(tmp_path):
    path = tmp_path / "j.db"
    append_records(path, 5_000)
    checkpoint(path)
    size = page_size(path)
    pages = path.stat().st_size // size
    with open(path, "r+b") as file:
        file.seek(pages // 2 * size)
        file.write(random.Random(SEED).randbytes(size))
    with pytest.raises(JournalError, match=rf"{path}: .*malformed"):
        load_all(path)


def test_a_database_that_fails_sqlites_quick_check_is_refused_when_opened(tmp_path):
    path = tmp_path / "j.db"
    append_records(path, 5_000, snapshot=(5_000, {"state": "x"}))
    corrupt_freelist(path)
    assert sql(path, "PRAGMA quick_check")[0][0] != "ok"   # SQLite itself says the file is damaged
    with pytest.raises(JournalError):
        SqliteJournal(str(path)).close()


def test_a_failed_commit_fails_its_waiters_and_every_later_append(tmp_path):
    path = str(tmp_path / "j.db")

    async def run():
        journal = SqliteJournal(path)
        journal.start(asyncio.get_running_loop())
        await journal.wait(journal.append(1, KIND, payload(1)))
        # Someone else takes the next sequence number: the writer's INSERT must fail, not be acknowledged.
        sql(path, "INSERT INTO journal VALUES (2, 0, 5, x'', 0)")
        seq = journal.append(2, KIND, payload(2))
        with pytest.raises(JournalError, match="journal writer? failed"):
            await asyncio.wait_for(journal.wait(seq), DEADLINE)
        with pytest.raises(JournalError, match="journal writer failed"):
            journal.append(3, KIND, payload(3))
        journal.close()

    asyncio.run(run())


def test_a_second_journal_on_the_same_file_is_refused_naming_the_path_until_the_first_closes(tmp_path):
    path = tmp_path / "journal.db"
    first = SqliteJournal(str(path))
    try:
        with pytest.raises(JournalError) as refused:
            SqliteJournal(str(path))
        assert str(refused.value).startswith(f"{path} is in use by another process (pid ")
        assert "\n" not in str(refused.value)
    finally:
        first.close()

    SqliteJournal(str(path)).close()
