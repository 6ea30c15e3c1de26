"""The risk journal's record format: a journal written by the previous format still replays, a future one is refused.

``data/journal-v1.sqlite`` is a real journal written by the previous format
(records were the public request messages, kinds 1..11), with the
configuration it was written under (``data/journal-v1.toml``) and the state
the service held when it closed it (``data/journal-v1.state.json``). They
were made by :func:`write_journal_and_state` at commit f194e60, before the
journal had a schema of its own, by running::

    python -m tests.services.risk.test_journal_format tests/services/risk/data

Run today, the same function writes a journal in the current format.
"""
from __future__ import annotations

import json
import pathlib
import shutil
import sys

import pytest

from riskcore_services.common.journal import JournalError

from riskcore_services.proto import risk_pb2
from riskcore_services.risk.records import RECORD_FORMAT, RECORD_KIND, JournalRecord, LegacyKind, decode
from riskcore_services.testing import sqlite_rows as sql

from .durability_helpers import (BUY, SELL, ServiceStub, Trader, engines, with_journal,  # noqa: F401
                                 write_config, write_journal)

DATA = pathlib.Path(__file__).parent / "data"
SEED = 1207


def _commands(service) -> None:
    """Orders and batches, modifies, cancels, fills and fill batches, venue events, marks, limits, kill switches."""
    stub = ServiceStub(service)
    for account, seed in (("t1", SEED), ("t2", SEED + 1)):
        Trader(account, seed).send(stub, 40)
    service.set_limits(risk_pb2.SetLimitsRequest(account="t3", limits=risk_pb2.Limits(
        new_order_rate=risk_pb2.Window(count=3, seconds=1.0), max_open_orders=50, max_order_quantity=500,
        position_limits=[risk_pb2.PositionLimit(symbol="AAPL", max_long=400, max_short=300)])), "ops")
    for i in range(4):
        service.submit_order(risk_pb2.OrderRequest(client_order_id=f"rate{i}", account="t3", symbol="AAPL",
                                                   side=BUY, quantity=10, price=189.0 + i / 100))
    service.modify_order(risk_pb2.ModifyRequest(client_order_id="rate0", quantity=5, price=188.5))
    service.request_cancel(risk_pb2.CancelRequest(client_order_id="rate1"))
    service.report_order_event(risk_pb2.OrderEvent(client_order_id="rate1", kind=risk_pb2.OrderEvent.CANCELLED))
    service.report_order_event(risk_pb2.OrderEvent(client_order_id="rate2", kind=risk_pb2.OrderEvent.EXPIRED))
    service.report_fill(risk_pb2.Fill(client_order_id="rate0", exec_id="rate0-x", quantity=5, price=188.5))
    service.update_prices(risk_pb2.PriceUpdates(symbols=["AAPL", "ESZ6"], prices=[191.37, 6010.25]))
    service.set_trading_state(risk_pb2.TradingStateRequest(symbol="MSFT", state=risk_pb2.HALTED), "ops")
    service.set_trading_state(risk_pb2.TradingStateRequest(account="t2", state=risk_pb2.REDUCING), "ops")
    service.roll_day()
    service.report_fill(risk_pb2.Fill(exec_id="late", quantity=3, price=190.0, account="t3", symbol="AAPL",
                                      side=SELL))
    service.set_trading_state(risk_pb2.TradingStateRequest(account="FIRM", state=risk_pb2.HALTED), "kill switch")
    service.submit_order(risk_pb2.OrderRequest(client_order_id="after-kill", account="t1", symbol="AAPL",
                                               side=BUY, quantity=1, price=190.0))


def engine_state(service) -> dict:
    """What the engine and the service hold, as JSON would give it back (tuples become lists)."""
    engine = service.engine
    state = {"positions": engine.positions().tolist(), "open_orders": engine.open_orders().tolist(),
             "aggregates": engine.aggregates().tolist(),
             "account_states": [int(engine.trading_state(account=a)) for a in engine.accounts],
             "symbol_states": [int(engine.trading_state(symbol=s)) for s in engine.symbols],
             "limits": [engine.limits(a).as_dict() for a in engine.accounts],
             "position_limits": [engine.position_limit(a, s) for a in engine.accounts for s in engine.symbols],
             "references": [engine.reference_price(s) for s in engine.symbols],
             "order_ids": service._order_ids, "answers": service._answers,
             "answers_before": service._answers_before, "next_id": service._next_id,
             "last_roll_ns": service.last_roll_ns}
    return json.loads(json.dumps(state))


def write_journal_and_state(folder: pathlib.Path) -> None:
    """Write ``journal-v1.sqlite`` (a configuration snapshot, then every kind of command), its
    configuration and the state it closed with into ``folder``."""
    config = write_config(folder, {}, "journal-v1.toml")
    journal = folder / "journal-v1.sqlite"

    def run(service) -> dict:
        service.snapshot()          # what a server does on a new journal: the configuration's state at seq 0
        _commands(service)
        return engine_state(service)

    state = with_journal(journal, config, run)
    (folder / "journal-v1.state.json").write_text(json.dumps(state, indent=None, sort_keys=True) + "\n")
    (folder / "journal-v1.sqlite.lock").unlink()


def _replay(tmp_path, name: str = "journal-v1.sqlite") -> dict:
    journal = tmp_path / name
    shutil.copyfile(DATA / "journal-v1.sqlite", journal)
    return with_journal(journal, DATA / "journal-v1.toml", engine_state)


def test_a_journal_written_by_the_previous_format_replays_to_the_state_it_was_written_with(tmp_path):
    expected = json.loads((DATA / "journal-v1.state.json").read_text())
    assert expected["positions"] and expected["open_orders"] and expected["last_roll_ns"]

    assert _replay(tmp_path) == expected


def test_a_journal_written_now_holds_journal_records_not_the_public_request_messages(tmp_path):
    config = write_config(tmp_path, {})
    journal = tmp_path / "journal.db"
    with_journal(journal, config, _commands)

    rows = sql(journal, "SELECT seq, kind, payload FROM journal ORDER BY seq")
    commands = [decode(seq, kind, payload) for seq, kind, payload in rows]
    assert {kind for _, kind, _ in rows} == {RECORD_KIND}
    assert {record.format for record in commands} == {RECORD_FORMAT}
    # Every kind of command the previous format had, each as the journal's own message.
    assert {record.WhichOneof("command") for record in commands} == {
        field.name for field in JournalRecord.DESCRIPTOR.oneofs_by_name["command"].fields}
    assert len(LegacyKind) == len(JournalRecord.DESCRIPTOR.oneofs_by_name["command"].fields)


def test_a_journal_from_a_newer_format_is_refused_at_start_with_one_line_naming_the_format(tmp_path, engines):
    newer = JournalRecord(format=RECORD_FORMAT + 1, roll_day=JournalRecord.RollDay()).SerializeToString()
    write_journal(tmp_path / "journal.db", [(RECORD_KIND, newer)])

    engine = engines(write_config(tmp_path, {"path": "journal.db"})).start()

    assert engine.wait_refusal() == 2
    assert engine.output() == (f"riskcore: cannot recover the risk service's state: JournalError: "
                               f"{tmp_path / 'journal.db'}: journal record 1 has format {RECORD_FORMAT + 1}, "
                               f"written by a newer release; this release reads formats 1 and {RECORD_FORMAT}\n")


def test_a_record_of_an_unknown_kind_is_refused_naming_it(tmp_path):
    config = write_config(tmp_path, {})
    write_journal(tmp_path / "journal.db", [(LegacyKind.ROLL_DAY, b""), (RECORD_KIND + 1, b"")])

    with pytest.raises(JournalError, match="journal record 2 has an unknown kind 17"):
        with_journal(tmp_path / "journal.db", config, engine_state)


if __name__ == "__main__":
    write_journal_and_state(pathlib.Path(sys.argv[1]))
