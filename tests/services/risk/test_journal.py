"""The risk service over its SQLite journal: recovery rebuilds the state, damaged files stop the start.

The journal itself (records, snapshots, checksums, the file lock) is tested in
``tests/services/common/journal/test_sqlite.py``; here a real service writes
it and a real engine reads it. Damage is made with real bytes in real files:
flipped pages, torn write-ahead-log frames. A damaged journal must give a
clear JournalError (and an engine that refuses to start), never a silently
different state; a torn tail of the write-ahead log must recover the
committed prefix.
"""
from __future__ import annotations

import asyncio
import hashlib
import random
import re
import struct
import threading
import time

import pytest

from riskcore import StateError
from riskcore_services.proto import risk_pb2
from riskcore_services.common.journal import JournalError
from riskcore_services.testing import sqlite_rows as sql
from tests.services.common.journal.damage import checkpoint, corrupt_freelist, page_size

from .durability_helpers import (BUY, DEADLINE, SELL, TRADERS, Book, ServiceStub, Trader, account_state,
                                 apply_request, engines, expected_state, make_service,  # noqa: F401
                                 with_journal, write_config)

SEED = 77


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
    "a free page that fails quick_check": (True, corrupt_freelist, r"journal\.db"),
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

def test_a_second_engine_on_the_same_journal_exits_2_with_one_line_naming_the_path(tmp_path, engines):
    config = write_config(tmp_path, {"path": "journal.db"})
    first = engines(config, "first").start().wait_ready()
    first.stub().ReportFill(risk_pb2.Fill(exec_id="x-1", quantity=5, price=190.0, account="t0", symbol="AAPL",
                                          side=BUY), timeout=DEADLINE)

    second = engines(config, "second").start()

    assert second.wait_refusal() == 2
    path = tmp_path / "journal.db"
    assert second.output() == (f"riskcore: cannot open the risk service's state: JournalError: {path} is in use "
                               f"by another process (pid {first.process.pid}, lock {path}.lock); stop it or give "
                               f"this one another [state] path\n")
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
    from riskcore_services.common.journal import decode_snapshot, encode_snapshot

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
