"""Durable state of the risk engine with a SQLite journal: kill -9, restart, compare.

Engines run as child processes (``python -m riskcore_services.risk``) on a journal in
tmp_path. Traders record every acknowledgement into an independent position
model (durability_helpers.Book); after each SIGKILL and restart the engine
must hold exactly what the acknowledged events imply, plus at most the one
request per trader that was on the wire when the kill landed.
"""
from __future__ import annotations

import random
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2

from riskcore_services.proto import risk_pb2
from riskcore_services.risk.records import RECORD_KIND, JournalRecord, encode

from riskcore_services.testing import sqlite_rows, wait_until

from .durability_helpers import (BUY, DEADLINE, INSTRUMENTS, SELL, TRADERS, Book, Trader, account_state,
                                 apply_request, engines, expected_state, observed_positions,  # noqa: F401
                                 observed_working, write_config, write_journal)

KILLS = 14
SEED = 20240611
RECOVERY_RECORDS = 150_000
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def journal_rows(path) -> tuple[int, int]:
    """(journal records, snapshots) in a journal file, read with a separate connection."""
    ((records, snapshots),) = sqlite_rows(path, "SELECT (SELECT COUNT(*) FROM journal), "
                                               "(SELECT COUNT(*) FROM snapshots)")
    return records, snapshots


def assert_acknowledged_present(stub, traders: list[Trader]) -> None:
    """Before anything is re-sent: each account holds its acked events, plus at most its in-flight request."""
    for trader in traders:
        observed = account_state(stub, trader.account)
        without = expected_state(trader.book, trader.account)
        with_in_flight = expected_state(trader.book_with_in_flight(), trader.account)
        assert observed in (without, with_in_flight), (
            f"{trader.account} after restart is neither its {len(trader.acked)} acknowledged requests nor those "
            f"plus the one in flight ({trader.in_flight and trader.in_flight[0]}):\n"
            f"engine   {observed}\nacked    {without}\n+flight  {with_in_flight}")


def assert_acked_fills_are_duplicates(stub, trader: Trader) -> None:
    batches, singles = trader.acked_fills()
    for batch in batches:
        applied = stub.ReportFills(batch, timeout=DEADLINE).applied
        again = [x for x, a in zip(batch.exec_ids, applied) if a]
        assert not again, f"acknowledged fills were missing after the restart and applied again: {again[:5]}"
    for fill in singles:
        assert not stub.ReportFill(fill, timeout=DEADLINE).applied, f"acked fill {fill.exec_id} applied again"


def assert_acked_orders_keep_their_answers(stub, trader: Trader) -> None:
    for method, request, answer in trader.acked_orders():
        again = getattr(stub, method)(request, timeout=DEADLINE)
        if method == "SubmitOrder":
            assert (again.accepted, again.reason) == (answer.accepted, answer.reason), request.client_order_id
        else:
            assert list(again.reason_codes) == list(answer.reason_codes), list(request.client_order_ids)


def assert_state_is_the_books(stub, traders: list[Trader]) -> None:
    for trader in traders:
        assert account_state(stub, trader.account) == expected_state(trader.book, trader.account), trader.account


# ------------------------------------------------------------------ crash loop

def test_kill_9_at_random_points_loses_no_acknowledged_event_and_applies_retries_once(tmp_path, engines):
    config = write_config(tmp_path, {"path": "journal.db", "snapshot_every": 400})
    engine = engines(config).start().wait_ready()
    rng = random.Random(SEED)
    traders = [Trader(account, SEED + i) for i, account in enumerate(TRADERS)]
    in_flight_seen = 0
    for kill in range(KILLS):
        stop = threading.Event()
        for trader in traders:
            trader.start(engine.stub(), stop)
        # Mostly mid-stream; now and then right after the restart, before much has been sent.
        time.sleep(rng.choice((0.0, 0.02)) if kill % 5 == 4 else rng.uniform(0.1, 0.8))
        engine.kill()
        for trader in traders:
            trader.join()
        in_flight_seen += sum(t.in_flight is not None for t in traders)

        engine.start().wait_ready()
        stub = engine.stub()
        assert_acknowledged_present(stub, traders)
        for trader in traders:
            assert_acked_fills_are_duplicates(stub, trader)
            trader.resend_in_flight(stub)
        assert_state_is_the_books(stub, traders)

    for trader in traders:
        assert_acked_orders_keep_their_answers(engine.stub(), trader)
    acked = sum(len(t.acked) for t in traders)
    assert acked > 500 and in_flight_seen >= KILLS, (acked, in_flight_seen)
    # A clean stop and start changes nothing either.
    assert engine.stop() == 0
    engine.start().wait_ready()
    assert_state_is_the_books(engine.stub(), traders)


# ------------------------------------------------------------------ retries and duplicates

def test_risk_client_retrying_across_kill_9_applies_every_order_and_fill_exactly_once(tmp_path, engines):
    from riskcore_services.risk.client import RiskClient

    engine = engines(write_config(tmp_path, {"path": "journal.db", "snapshot_every": 7})).start().wait_ready()
    book, stop, errors = Book(), threading.Event(), []
    rng, prices = random.Random(SEED), random.Random(SEED + 1)

    def trade():
        client = RiskClient(engine.target, deadline=2.0, retry_attempts=60, retry_initial=0.02, retry_max=0.2,
                            breaker_failures=10_000)
        try:
            i = 0
            while not stop.is_set():
                i += 1
                side = BUY if i % 2 else SELL
                price = 189.50 if side == BUY else 190.50
                answer = client.submit_order(f"r{i}", "AAPL", 10 + i % 7, risk_pb2.Side.Name(side), account="t1",
                                             price=price)
                assert answer.accepted, f"r{i}: {answer.reason} {answer.message}"
                book.submit(f"r{i}", "t1", "AAPL", 1 if side == BUY else -1, 10 + i % 7, price, True)
                fill_price = round(prices.uniform(189.0, 191.0), 2)
                # False when an attempt cut off by the kill had already been journaled: still exactly once.
                client.report_fill(f"r{i}", f"rx{i}", 10 + i % 7, fill_price)
                book.fill(f"rx{i}", 10 + i % 7, fill_price, f"r{i}")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            client.close()

    thread = threading.Thread(target=trade, daemon=True)
    thread.start()
    for _ in range(3):
        time.sleep(rng.uniform(0.2, 0.5))
        engine.kill()
        time.sleep(0.2)
        engine.start().wait_ready()
    time.sleep(0.2)
    stop.set()
    thread.join(30)
    assert not thread.is_alive() and not errors, errors

    stub = engine.stub()
    assert len(book.exec_ids) > 20
    assert account_state(stub, "t1") == expected_state(book, "t1")


def test_repeated_order_ids_and_exec_ids_apply_once_before_and_after_a_restart(tmp_path, engines):
    engine = engines(write_config(tmp_path, {"path": "journal.db", "snapshot_every": 3})).start().wait_ready()
    stub = engine.stub()
    book = Book()
    order = risk_pb2.OrderRequest(client_order_id="d1", account="t2", symbol="MSFT", side=BUY, quantity=50,
                                  price=419.00)
    batch = risk_pb2.OrderBatch(client_order_ids=["d1", "d2", "d3"], accounts=["t2"] * 3,
                                symbols=["MSFT", "AAPL", "AAPL"], sides=[BUY, BUY, SELL], quantities=[50, 30, 40],
                                prices=[419.00, 189.00, 191.00])
    fill = risk_pb2.Fill(client_order_id="d2", exec_id="e1", quantity=10, price=189.10)
    fills = risk_pb2.FillBatch(client_order_ids=["d2", "d2", "d3", "d2"], exec_ids=["e2", "e2", "e3", "e1"],
                               quantities=[5, 5, 40, 10], prices=[189.20, 189.20, 190.90, 189.10])
    unbooked = risk_pb2.Fill(exec_id="e4", quantity=7, price=6001.25, account="t2", symbol="ESZ6", side=SELL)
    reused = risk_pb2.Fill(exec_id="e1", quantity=3, price=6000.00, account="t2", symbol="ESZ6", side=BUY)

    def send_everything():
        answers = [stub.SubmitOrder(order, timeout=DEADLINE), stub.SubmitOrder(order, timeout=DEADLINE),
                   stub.SubmitOrders(batch, timeout=DEADLINE), stub.SubmitOrders(batch, timeout=DEADLINE)]
        applied = [stub.ReportFill(fill, timeout=DEADLINE).applied, stub.ReportFill(fill, timeout=DEADLINE).applied,
                   list(stub.ReportFills(fills, timeout=DEADLINE).applied),
                   stub.ReportFill(unbooked, timeout=DEADLINE).applied,
                   stub.ReportFill(unbooked, timeout=DEADLINE).applied,
                   stub.ReportFill(reused, timeout=DEADLINE).applied]
        return ([(a.accepted, a.reason) for a in answers[:2]], [list(a.reason_codes) for a in answers[2:]], applied)

    singles, batches, applied = send_everything()
    assert singles == [(True, "OK"), (True, "OK")]
    assert batches == [[0, 0, 0], [0, 0, 0]]
    assert applied == [True, False, [True, False, True, False], True, False, False]
    for method, request in (("SubmitOrder", order), ("SubmitOrders", batch), ("ReportFill", fill),
                            ("ReportFills", fills), ("ReportFill", unbooked)):
        apply_request(book, method, request)
    assert account_state(stub, "t2") == expected_state(book, "t2")
    assert observed_working(stub)["t2"][0] == 2  # d1 and d2 work; d3 is filled

    engine.kill()
    engine.start().wait_ready()
    stub = engine.stub()
    assert account_state(stub, "t2") == expected_state(book, "t2")
    singles, batches, applied = send_everything()
    assert (singles, batches) == ([(True, "OK"), (True, "OK")], [[0, 0, 0], [0, 0, 0]])
    assert applied == [False, False, [False, False, False, False], False, False, False]
    assert account_state(stub, "t2") == expected_state(book, "t2")


# ------------------------------------------------------------------ recovery

def test_engine_is_not_ready_until_a_long_journal_is_replayed_and_logs_counts_and_timings(tmp_path, engines):
    records, book = [], Book()
    for i in range(RECOVERY_RECORDS):
        symbol = ("AAPL", "MSFT")[i % 2]
        spec = INSTRUMENTS[symbol]
        fill = risk_pb2.Fill(exec_id=f"h{i}", quantity=1 + i % 5, price=spec.price(spec.fill_ticks[0] + i % 97),
                             account=TRADERS[i % 4], symbol=symbol, side=BUY if i % 3 else SELL)
        records.append((RECORD_KIND, encode("fill", JournalRecord.Fill(
            exec_id=fill.exec_id, quantity=fill.quantity, price=fill.price, account=fill.account, symbol=fill.symbol,
            side=1 if fill.side == BUY else -1))))
        apply_request(book, "ReportFill", fill)
    write_journal(tmp_path / "journal.db", records)
    engine = engines(write_config(tmp_path, {"path": "journal.db"})).start()

    # Three probes poll side by side; each answer is stored with whether the recovery line had been
    # logged by the time the answer arrived.
    def ready():
        return engine.ready_status()

    def health():
        return engine.health()

    positions_stub = engine.stub()

    def positions():
        try:
            positions_stub.GetPositions(risk_pb2.PositionsRequest(), timeout=2.0)
            return "OK"
        except grpc.RpcError as error:
            return "NOT_READY" if "not ready" in (error.details() or "") else error.code().name

    answers = {probe.__name__: [] for probe in (ready, health, positions)}
    done = threading.Event()

    def poll(probe):
        while not done.is_set():
            answer = probe()
            answers[probe.__name__].append((answer, bool(engine.events("state recovered"))))
            time.sleep(0.005)

    threads = [threading.Thread(target=poll, args=(p,), daemon=True) for p in (ready, health, positions)]
    for thread in threads:
        thread.start()
    try:
        engine.wait_ready(60)
        wait_until(lambda: all(a and a[-1][0] in (200, SERVING, "OK") for a in answers.values()), 10,
                   "every probe to see the engine ready")
    finally:
        done.set()
        for thread in threads:
            thread.join(DEADLINE)

    # While recovering: 503, NOT_SERVING, calls refused; ready answers only once recovery has been logged.
    for name, recovering, serving in (("ready", 503, 200), ("health", NOT_SERVING, SERVING),
                                      ("positions", "NOT_READY", "OK")):
        seen = [answer for answer, _ in answers[name]]
        assert recovering in seen, f"{name} never answered {recovering!r} during recovery: {seen}"
        first = seen.index(serving)
        assert recovering not in seen[first:], f"{name} went back to {recovering!r}: {seen}"
        assert all(logged for answer, logged in answers[name] if answer == serving), answers[name]
        assert not any(logged for answer, logged in answers[name][:seen.index(recovering) + 1]), answers[name]

    (line,) = engine.events("state recovered")
    assert (line["snapshot_seq"], line["replayed"], line["last_seq"]) == (0, RECOVERY_RECORDS, RECOVERY_RECORDS)
    assert line["replay_seconds"] > 0 and line["snapshot_seconds"] >= 0
    assert line["positions"] == len(book.expected_positions()) and line["open_orders"] == 0
    assert observed_positions(engine.stub()) == book.expected_positions()


def test_small_snapshot_every_compacts_the_journal_and_restarts_to_the_same_state(tmp_path, engines):
    engine = engines(write_config(tmp_path, {"path": "journal.db", "snapshot_every": 10})).start().wait_ready()
    trader = Trader("t3", SEED)
    trader.send(engine.stub(), 95)

    path = tmp_path / "journal.db"
    records, snapshots = journal_rows(path)
    first, last, snapshot_seq = snapshot_span(path)
    assert snapshots == 1 and records < 10, (records, snapshots)
    assert (first, last) == (snapshot_seq + 1, 95), (first, last, snapshot_seq)

    engine.kill()
    engine.start().wait_ready()
    (line,) = engine.events("state recovered")
    assert (line["snapshot_seq"], line["replayed"]) == (snapshot_seq, 95 - snapshot_seq)
    assert account_state(engine.stub(), "t3") == expected_state(trader.book, "t3")
    # A replay shorter than snapshot_every is not worth a snapshot of its own: the
    # records stay until the next periodic snapshot (at most snapshot_every away).
    assert journal_rows(path) == (95 - snapshot_seq, 1)

    trader.send(engine.stub(), 12)
    assert engine.stop() == 0
    assert journal_rows(path) == (0, 1)   # a graceful stop leaves one snapshot and no records
    engine.start().wait_ready()
    (line,) = engine.events("state recovered")
    assert (line["snapshot_seq"], line["replayed"]) == (107, 0)
    assert account_state(engine.stub(), "t3") == expected_state(trader.book, "t3")


def snapshot_span(path) -> tuple[int, int, int]:
    """(first journal seq, last journal seq, snapshot seq) of a journal file."""
    ((first, last, snapshot),) = sqlite_rows(path, "SELECT (SELECT MIN(seq) FROM journal), "
                                                   "(SELECT MAX(seq) FROM journal), (SELECT MAX(seq) FROM snapshots)")
    return first, last, snapshot


def test_orders_accepted_under_a_rate_limit_over_more_than_its_window_stay_accepted_after_kill_9(tmp_path, engines):
    # Replay must run each command at its recorded time: the same orders squeezed into one instant
    # would break the 3-per-second limit that they kept when they were accepted.
    engine = engines(write_config(tmp_path, {"path": "journal.db"})).start().wait_ready()
    stub = engine.stub()
    stub.SetLimits(risk_pb2.SetLimitsRequest(account="t0", limits=risk_pb2.Limits(
        new_order_rate=risk_pb2.Window(count=3, seconds=1.0))), timeout=DEADLINE)
    orders = [risk_pb2.OrderRequest(client_order_id=f"rl{i}", account="t0", symbol="AAPL", side=BUY, quantity=10,
                                    price=189.00) for i in range(6)]
    answers = []
    for i, order in enumerate(orders):
        if i == 3:
            time.sleep(1.1)   # the first three have left the window
        answers.append(stub.SubmitOrder(order, timeout=DEADLINE).reason)
    assert answers == ["OK"] * 6
    assert observed_working(stub)["t0"][0] == 6

    engine.kill()
    engine.start().wait_ready()
    stub = engine.stub()
    assert observed_working(stub)["t0"][0] == 6
    assert [stub.SubmitOrder(order, timeout=DEADLINE).reason for order in orders] == ["OK"] * 6
