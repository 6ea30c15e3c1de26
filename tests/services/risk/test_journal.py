"""The SQLite journal: durability of what it acknowledges, snapshots, and damaged files.

Damage is made with real bytes in real files: flipped pages, bad checksums,
torn write-ahead-log frames. A damaged journal must give a clear
JournalError (and an engine that refuses to start), never a silently
different state; a torn tail of the write-ahead log must recover the
committed prefix.
"""
from __future__ import annotations

import asyncio
import hashlib
import pickle
import random
import re
import sqlite3
import struct
import sys
import threading
import time

import pytest

from riskcore import StateError
from riskcore_services.proto import risk_pb2
from riskcore_services.risk.journal import FORMAT_VERSION, JournalError, SqliteJournal
from riskcore_services.risk.service import Command

from .durability_helpers import (BUY, DEADLINE, SELL, TRADERS, Book, ServiceStub, Trader, account_state,
                                 apply_request, engines, expected_state, make_service,  # noqa: F401
                                 with_journal, write_config)

SEED = 77


def fill_payload(i: int) -> bytes:
    return risk_pb2.Fill(exec_id=f"x{i}", quantity=1 + i % 9, price=190.0 + (i % 50) / 100, account="t0",
                         symbol="AAPL", side=BUY if i % 2 else SELL).SerializeToString()


def append_records(path, count: int, snapshot: tuple[int, dict] | None = None, start: int = 0) -> SqliteJournal:
    """Append ``count`` fill records (and queue ``snapshot`` after them); return the journal, closed."""
    async def run():
        journal = SqliteJournal(str(path))
        journal.start(asyncio.get_running_loop())
        seq = journal.last_seq
        for i in range(start, start + count):
            seq = journal.append(1_000 + i, Command.FILL, fill_payload(i))
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


def sql(path, statement: str, *args) -> list:
    db = sqlite3.connect(path, timeout=DEADLINE)
    try:
        with db:
            return db.execute(statement, args).fetchall()
    finally:
        db.close()


def checkpoint(path) -> None:
    """Move everything from the -wal file into the database file (and empty the -wal)."""
    sql(path, "PRAGMA wal_checkpoint(TRUNCATE)")


def page_size(path) -> int:
    return sql(path, "PRAGMA page_size")[0][0]


# ------------------------------------------------------------------ the journal itself

def test_records_are_committed_when_wait_returns_and_load_back_in_order_after_reopening(tmp_path):
    path = str(tmp_path / "j.db")

    async def run():
        journal = SqliteJournal(path)
        journal.start(asyncio.get_running_loop())
        seqs = [journal.append(1_000 + i, Command.FILL, fill_payload(i)) for i in range(50)]
        await asyncio.wait_for(journal.wait(seqs[-1]), DEADLINE)
        # Another connection sees every record the moment wait returned.
        seen = sql(path, "SELECT COUNT(*), MAX(seq) FROM journal")[0]
        await journal.aclose()
        return seqs, seen

    seqs, seen = asyncio.run(run())
    assert seqs == list(range(1, 51)) and seen == (50, 50)
    base, state, records = load_all(path)
    assert (base, state) == (0, None)
    assert records == [(i + 1, 1_000 + i, Command.FILL, fill_payload(i)) for i in range(50)]
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


def _corrupt_freelist(path) -> None:
    """Overwrite the first free-list trunk page (pages freed by a snapshot) with 0xff bytes."""
    checkpoint(path)
    header = path.read_bytes()[:100]
    trunk, free = struct.unpack(">II", header[32:40])
    assert trunk and free, "no free pages to damage"
    size = page_size(path)
    with open(path, "r+b") as file:
        file.seek((trunk - 1) * size)
        file.write(b"\xff" * size)


def test_a_database_that_fails_sqlites_quick_check_is_refused_when_opened(tmp_path):
    path = tmp_path / "j.db"
    append_records(path, 5_000, snapshot=(5_000, {"state": "x"}))
    _corrupt_freelist(path)
    assert sql(path, "PRAGMA quick_check")[0][0] != "ok"   # SQLite itself says the file is damaged
    with pytest.raises(JournalError):
        SqliteJournal(str(path)).close()


def test_a_failed_commit_fails_its_waiters_and_every_later_append(tmp_path):
    path = str(tmp_path / "j.db")

    async def run():
        journal = SqliteJournal(path)
        journal.start(asyncio.get_running_loop())
        await journal.wait(journal.append(1, Command.FILL, fill_payload(1)))
        # Someone else takes the next sequence number: the writer's INSERT must fail, not be acknowledged.
        sql(path, "INSERT INTO journal VALUES (2, 0, 5, x'', 0)")
        seq = journal.append(2, Command.FILL, fill_payload(2))
        with pytest.raises(JournalError, match="journal writer? failed"):
            await asyncio.wait_for(journal.wait(seq), DEADLINE)
        with pytest.raises(JournalError, match="journal writer failed"):
            journal.append(3, Command.FILL, fill_payload(3))
        journal.close()

    asyncio.run(run())


# ------------------------------------------------------------------ the service over its journal

def _every_kind_of_command(service) -> None:
    """Orders, batches, modifies, cancels, fills, venue events, marks, limits, states and a roll."""
    stub = ServiceStub(service)
    trader = Trader("t1", SEED)
    trader.send(stub, 60)
    # Four orders against a rate limit of 3 per second: the fourth is refused, and replay must agree.
    service.set_limits(risk_pb2.SetLimitsRequest(account="t2", limits=risk_pb2.Limits(
        new_order_rate=risk_pb2.Window(count=3, seconds=1.0), max_open_orders=50)), "ops")
    answers = [service.submit_order(risk_pb2.OrderRequest(client_order_id=f"rate{i}", account="t2", symbol="AAPL",
                                                          side=BUY, quantity=10, price=189.0 + i / 100))
               for i in range(4)]
    assert [a.reason for a in answers] == ["OK", "OK", "OK", "ORDER_RATE_LIMIT"]
    service.modify_order(risk_pb2.ModifyRequest(client_order_id="rate0", quantity=5, price=188.5))
    service.request_cancel(risk_pb2.CancelRequest(client_order_id="rate1"))
    service.report_order_event(risk_pb2.OrderEvent(client_order_id="rate1", kind=risk_pb2.OrderEvent.CANCELLED))
    service.report_fill(risk_pb2.Fill(client_order_id="rate2", exec_id="rate2-x", quantity=10, price=189.0))
    service.update_prices(risk_pb2.PriceUpdates(symbols=["AAPL", "ESZ6"], prices=[191.37, 6010.25]))
    service.set_trading_state(risk_pb2.TradingStateRequest(symbol="MSFT", state=risk_pb2.HALTED), "ops")
    service.roll_day()
    service.report_fill(risk_pb2.Fill(exec_id="late", quantity=3, price=190.0, account="t3", symbol="AAPL",
                                      side=SELL))


def _observable(service) -> dict:
    engine = service.engine
    return {"positions": engine.positions().tolist(), "open_orders": engine.open_orders().tolist(),
            "aggregates": engine.aggregates().tolist(), "order_ids": service._order_ids,
            "answers": service._answers, "next_id": service._next_id, "last_roll_ns": service.last_roll_ns,
            "limits": [engine.limits(a).as_dict() for a in engine.accounts],
            "states": [int(engine.trading_state(symbol=s)) for s in engine.symbols],
            "references": [engine.reference_price(s) for s in engine.symbols]}


@pytest.mark.parametrize("snapshot_every", [10**9, 9], ids=["replay", "snapshots"])
def test_recovering_a_journal_rebuilds_exactly_the_state_its_commands_built(tmp_path, snapshot_every):
    config = write_config(tmp_path, {})
    path = tmp_path / "j.db"
    before = with_journal(path, config, lambda service: (_every_kind_of_command(service), _observable(service))[1],
                          snapshot_every)
    after = with_journal(path, config, _observable)
    assert after == before
    if snapshot_every < 10**9:
        assert sql(path, "SELECT COUNT(*) FROM snapshots") == [(1,)]
        assert sql(path, "SELECT COUNT(*) FROM journal")[0][0] < snapshot_every


def test_recovery_refuses_a_snapshot_whose_aggregates_disagree_with_its_positions(tmp_path):
    config = write_config(tmp_path, {})
    states = []
    for quantity in (100, 200):
        service = make_service(config)
        service.report_fill(risk_pb2.Fill(exec_id="x", quantity=quantity, price=190.0, account="t0", symbol="AAPL",
                                          side=BUY))
        states.append(service.to_state())
    mixed = states[0]
    mixed["engine"]["slots"] = states[1]["engine"]["slots"]   # positions of one state, aggregates of the other

    service = make_service(config)
    with pytest.raises(StateError, match="recomputed"):
        asyncio.run(service.recover(5, mixed, iter(())))


# ------------------------------------------------------------------ engines on damaged files

def _real_journal(tmp_path, config, snapshot: bool) -> None:
    """A journal of real commands: 2,000 of them, or 1,000, a snapshot (freeing their pages) and 20 more."""
    def trade(service):
        trader = Trader("t0", SEED)
        trader.send(ServiceStub(service), 1_000)
        if snapshot:
            service.snapshot()
            trader.send(ServiceStub(service), 20)
        else:
            trader.send(ServiceStub(service), 1_000)
    with_journal(tmp_path / "journal.db", config, trade)


def _damage_page(path) -> None:
    checkpoint(path)
    size = page_size(path)
    # Without a snapshot the journal table fills the file; the middle page is one of its leaves.
    with open(path, "r+b") as file:
        file.seek(path.stat().st_size // size // 2 * size)
        file.write(random.Random(SEED).randbytes(size))


# name: (with a snapshot?, damage(path), what the log must say)
DAMAGE = {
    "a garbage page": (False, _damage_page, r"journal\.db: database disk image is malformed"),
    "a record with a bad crc": (True, lambda p: sql(p, "UPDATE journal SET crc = crc + 1 WHERE seq = 1010"),
                                r"journal record 1010 fails its checksum"),
    "a missing record": (True, lambda p: sql(p, "DELETE FROM journal WHERE seq = 1010"),
                         r"journal jumps from seq 1009 to 1011"),
    "a snapshot with a bad sha256": (True, lambda p: sql(p, "UPDATE snapshots SET sha256 = 'bad'"),
                                     r"snapshot at seq 1000 fails its checksum"),
    "a snapshot of another version": (True, lambda p: sql(p, "UPDATE snapshots SET version = 7"),
                                      r"snapshot at seq 1000 has version 7"),
    "a free page that fails quick_check": (True, _corrupt_freelist, r"journal\.db"),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=[d.replace(" ", "-") for d in DAMAGE])
def test_an_engine_refuses_to_start_on_a_damaged_journal_and_says_why(tmp_path, engines, damage):
    config = write_config(tmp_path, {"path": "journal.db"})
    snapshot, make_damage, message = DAMAGE[damage]
    _real_journal(tmp_path, config, snapshot)
    make_damage(tmp_path / "journal.db")

    engine = engines(config).start()
    code = engine.wait_refusal()
    output = engine.output()
    assert code != 0, output[-3000:]
    assert "JournalError" in output and str(tmp_path / "journal.db") in output, output[-3000:]
    assert re.search(message, output), output[-3000:]


# ------------------------------------------------------------------ torn write-ahead log

def wal_frames(path) -> tuple[int, list[tuple[int, int, int]]]:
    """(frame size, [(offset, page number, database size if a commit frame else 0)]) of the current WAL."""
    data = path.read_bytes()
    size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    frames, offset = [], 32
    while offset + 24 + size <= len(data) and data[offset + 8:offset + 16] == salts:
        page, commit = struct.unpack(">II", data[offset:offset + 8])
        frames.append((offset, page, commit))
        offset += 24 + size
    return 24 + size, frames


def tear_last_frame(path) -> None:
    """Cut the -wal file in the middle of its last valid frame (what a power cut mid-write leaves)."""
    frame, frames = wal_frames(path)
    assert frames, "nothing in the write-ahead log"
    with open(path, "r+b") as file:
        file.truncate(frames[-1][0] + frame // 2)


def test_a_wal_torn_in_its_last_commit_recovers_every_earlier_acknowledged_event(tmp_path, engines):
    engine = engines(write_config(tmp_path, {"path": "journal.db"})).start().wait_ready()
    stub = engine.stub()
    trader = Trader("t2", SEED)
    trader.send(stub, 60)
    before_last = trader.book.copy()
    last = risk_pb2.Fill(exec_id="last", quantity=7, price=6001.00, account="t2", symbol="ESZ6", side=BUY)
    assert stub.ReportFill(last, timeout=DEADLINE).applied
    engine.kill()
    wal = tmp_path / "journal.db-wal"
    _, frames = wal_frames(wal)
    assert frames[-1][2], "the last frame of the log is not a commit"
    # The torn commit is the last fill's: a power cut during its fsync, so it was never acknowledged.
    tear_last_frame(wal)

    engine.start().wait_ready()
    stub = engine.stub()
    assert account_state(stub, "t2") == expected_state(before_last, "t2")
    assert stub.ReportFill(last, timeout=DEADLINE).applied   # it was not there: applied now, once
    trader.book.fill("last", 7, 6001.00, account="t2", symbol="ESZ6", side=1)
    assert account_state(stub, "t2") == expected_state(trader.book, "t2")


def test_a_wal_torn_after_kill_9_mid_stream_loses_at_most_the_final_commit_and_recovers(tmp_path, engines):
    engine = engines(write_config(tmp_path, {"path": "journal.db", "snapshot_every": 5_000})).start().wait_ready()
    traders = [Trader(account, SEED + i) for i, account in enumerate(TRADERS)]
    stop = threading.Event()
    for trader in traders:
        trader.start(engine.stub(), stop)
    time.sleep(0.6)
    engine.kill()
    for trader in traders:
        trader.join()
    tear_last_frame(tmp_path / "journal.db-wal")

    engine.start().wait_ready()
    stub = engine.stub()
    # The final commit holds at most one request per trader (each waits for its answer before the next).
    for trader in traders:
        observed = account_state(stub, trader.account)
        allowed = [expected_state(trader.book_with_in_flight(), trader.account),
                   expected_state(trader.book, trader.account)]
        if trader.acked:
            without_last = Book()
            for method, request, response in trader.acked[:-1]:
                apply_request(without_last, method, request, response)
            allowed.append(expected_state(without_last, trader.account))
        assert observed in allowed, (trader.account, observed, allowed)
    # Sending the last acknowledged and the in-flight request again completes every history exactly once.
    for trader in traders:
        if trader.acked:
            method, request, _ = trader.acked[-1]
            getattr(stub, method)(request, timeout=DEADLINE)
        trader.resend_in_flight(stub)
        assert account_state(stub, trader.account) == expected_state(trader.book, trader.account)
    assert sum(len(t.acked) for t in traders) > 50


# ------------------------------------------------------------------ one engine per journal

def test_a_second_journal_on_the_same_file_is_refused_naming_the_path_until_the_first_closes(tmp_path):
    path = tmp_path / "journal.db"
    first = SqliteJournal(str(path))
    try:
        with pytest.raises(JournalError) as refused:
            SqliteJournal(str(path))
        assert str(refused.value).startswith(f"{path} is in use by another risk engine (pid ")
        assert "\n" not in str(refused.value)
    finally:
        first.close()

    SqliteJournal(str(path)).close()


def test_a_second_engine_on_the_same_journal_exits_2_with_one_line_naming_the_path(tmp_path, engines):
    config = write_config(tmp_path, {"path": "journal.db"})
    first = engines(config, "first").start().wait_ready()
    first.stub().ReportFill(risk_pb2.Fill(exec_id="x-1", quantity=5, price=190.0, account="t0", symbol="AAPL",
                                          side=BUY), timeout=DEADLINE)

    second = engines(config, "second").start()

    assert second.wait_refusal() == 2
    path = tmp_path / "journal.db"
    assert second.output() == (f"riskcore: cannot open the risk service's state: JournalError: {path} is in use "
                               f"by another "
                               f"risk engine (pid {first.process.pid}, lock {path}.lock); stop it or give this "
                               f"engine another [state] path\n")
    assert first.ready_status() == 200


def test_the_journal_of_an_engine_killed_by_sigkill_opens_for_the_next_engine(tmp_path, engines):
    config = write_config(tmp_path, {"path": "journal.db"})
    first = engines(config, "first").start().wait_ready()
    assert first.stub().ReportFill(risk_pb2.Fill(exec_id="x-1", quantity=5, price=190.0, account="t0",
                                                 symbol="AAPL", side=BUY), timeout=DEADLINE).applied
    first.kill()

    second = engines(config, "second").start().wait_ready()

    assert not second.stub().ReportFill(risk_pb2.Fill(exec_id="x-1", quantity=5, price=190.0, account="t0",
                                                      symbol="AAPL", side=BUY), timeout=DEADLINE).applied


def test_a_journal_of_an_earlier_release_is_refused_at_start_not_replayed(tmp_path, build_server):
    # The previous release's records carry TradingState values renumbered since (UNSPECIFIED is 0 now):
    # replayed, a journaled HALTED would come back REDUCING. Its base snapshot says which release wrote it.
    from riskcore_services.risk.journal import decode_snapshot, encode_snapshot

    path = tmp_path / "journal.db"
    build_server(state_path=path).start().stop()
    (seq, blob), = sql(path, "SELECT seq, state FROM snapshots")
    state = decode_snapshot(blob)
    state["version"] = 1
    old = encode_snapshot(state)
    sql(path, "UPDATE snapshots SET state = ?, sha256 = ? WHERE seq = ?", old, hashlib.sha256(old).hexdigest(), seq)

    server = build_server(state_path=path)
    with pytest.raises(JournalError, match="service state version 1, written by another release"):
        server.start()
