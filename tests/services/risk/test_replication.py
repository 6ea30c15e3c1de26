"""Hot standby on NATS JetStream: a real nats-server, a primary and a standby as child processes.

The primary journals every command to a JetStream stream and holds a lease;
the standby replays the stream and takes over when the lease expires (the
primary was killed) or when an operator calls Promote. Whatever the primary
acknowledged must be in the new primary's state, exactly once, after the
client re-sends what was in flight. The stream and the lease on their own are
tested in ``tests/services/common/journal/test_jetstream.py`` and
``tests/services/common/test_failover.py``.
"""
from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2

from riskcore_services.proto import risk_pb2
from riskcore_services.testing import wait_until

from .durability_helpers import (DEADLINE, TRADERS, Trader, account_state, engines,  # noqa: F401
                                 expected_state, observed_positions, write_config)

SEED = 4242
LEASE = 1.0
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def jetstream_config(tmp_path, url: str, snapshot_every: int = 300):
    return write_config(tmp_path, {"backend": "jetstream", "nats_servers": [url], "name": "risk",
                                   "lease_seconds": LEASE, "snapshot_every": snapshot_every})


def start_pair(engines, config):
    """A primary (ready) and a standby (following, not ready)."""
    primary = engines(config, "primary").start().wait_ready()
    standby = engines(config, "standby").start()
    standby.wait_log("standby following the primary")
    return primary, standby


def assert_refuses_calls(engine) -> None:
    assert engine.ready_status() == 503
    assert engine.health() == NOT_SERVING
    with pytest.raises(grpc.RpcError) as refused:
        engine.stub().GetPositions(risk_pb2.PositionsRequest(), timeout=DEADLINE)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def stream(engine, traders, seconds: float):
    """Let the traders stream to ``engine`` for ``seconds``; return the stop event."""
    stop = threading.Event()
    for trader in traders:
        trader.start(engine.stub(), stop)
    time.sleep(seconds)
    return stop


def assert_history_then_complete_it(stub, traders) -> None:
    """Each account holds its acknowledged events (+ at most its in-flight one); re-sending makes it exact."""
    for trader in traders:
        observed = account_state(stub, trader.account)
        allowed = (expected_state(trader.book, trader.account),
                   expected_state(trader.book_with_in_flight(), trader.account))
        assert observed in allowed, (trader.account, len(trader.acked), observed, allowed)
        batches, singles = trader.acked_fills()
        for batch in batches:
            assert not any(stub.ReportFills(batch, timeout=DEADLINE).applied), "an acknowledged fill was missing"
        for fill in singles:
            assert not stub.ReportFill(fill, timeout=DEADLINE).applied, fill.exec_id
        trader.resend_in_flight(stub)
        assert account_state(stub, trader.account) == expected_state(trader.book, trader.account)


def whole_state(stub):
    exposure = stub.GetExposure(risk_pb2.ExposureRequest(), timeout=DEADLINE)
    return observed_positions(stub), [(r.account, r.open_orders, r.working_buy_notional, r.working_sell_notional,
                                       r.realized_pnl, r.daily_pnl, r.state) for r in exposure.accounts]


def test_standby_takes_over_from_a_primary_killed_mid_stream_with_every_acknowledged_event(tmp_path, engines,
                                                                                            nats_url):
    config = jetstream_config(tmp_path, nats_url)
    primary, standby = start_pair(engines, config)
    assert_refuses_calls(standby)
    traders = [Trader(account, SEED + i) for i, account in enumerate(TRADERS)]

    stream(primary, traders, 1.5)
    primary.kill()
    for trader in traders:
        trader.join()
    assert sum(len(t.acked) for t in traders) > 100

    standby.wait_ready(LEASE * 10)
    assert standby.events("serving as the primary")
    assert_history_then_complete_it(standby.stub(), traders)

    # Once more, quiet this time: a new standby must hold exactly what the serving engine holds.
    before = whole_state(standby.stub())
    third = engines(config, "third").start()
    third.wait_log("standby following the primary")
    assert_refuses_calls(third)
    time.sleep(0.2)
    standby.kill()
    third.wait_ready(LEASE * 10)
    assert whole_state(third.stub()) == before


def test_a_standby_started_while_the_primary_streams_and_snapshots_takes_over_exactly(tmp_path, engines, nats_url):
    # Snapshots purge the stream every 25 records, also while the standby loads and subscribes.
    config = jetstream_config(tmp_path, nats_url, snapshot_every=25)
    primary = engines(config, "primary").start().wait_ready()
    traders = [Trader(account, SEED + 10 + i) for i, account in enumerate(TRADERS)]
    stop = stream(primary, traders, 0.5)
    standby = engines(config, "standby").start()
    standby.wait_log("standby following the primary", timeout=15)
    time.sleep(0.8)
    primary.kill()
    stop.set()
    for trader in traders:
        trader.join()

    standby.wait_ready(LEASE * 10)
    assert_history_then_complete_it(standby.stub(), traders)


def test_promote_on_the_standby_fences_the_live_primary_and_serves_the_same_state(tmp_path, engines, nats_url):
    config = jetstream_config(tmp_path, nats_url)
    primary, standby = start_pair(engines, config)
    traders = [Trader(account, SEED + 20 + i) for i, account in enumerate(TRADERS)]
    stream(primary, traders, 1.0)

    answer = standby.stub().Promote(risk_pb2.PromoteRequest(), timeout=DEADLINE + LEASE)
    assert answer.role == "primary"
    # The old primary sees the lease taken at its next renewal and stops serving; its clients see outages.
    wait_until(lambda: primary.ready_status() == 503, LEASE * 5, "the old primary to stop being ready")
    for trader in traders:
        trader.join()
    assert primary.process.poll() is None   # fenced, not dead
    assert_refuses_calls(primary)
    assert primary.events("lost the primary lease; no longer serving")

    standby.wait_ready(LEASE * 5)
    assert_history_then_complete_it(standby.stub(), traders)
    assert sum(len(t.acked) for t in traders) > 50
    # The new primary takes writes; the fenced engine stays fenced.
    for trader in traders:
        trader.send(standby.stub(), 20)
    assert_refuses_calls(primary)
    for trader in traders:
        assert account_state(standby.stub(), trader.account) == expected_state(trader.book, trader.account)


def test_promote_on_an_engine_without_a_replicated_journal_is_a_failed_precondition(tmp_path, engines):
    engine = engines(write_config(tmp_path, {"path": "journal.db"})).start().wait_ready()
    with pytest.raises(grpc.RpcError) as refused:
        engine.stub().Promote(risk_pb2.PromoteRequest(), timeout=DEADLINE)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def _fill(i: int) -> risk_pb2.Fill:
    return risk_pb2.Fill(exec_id=f"start-{i}", quantity=1, price=190.0, account="t0", symbol="AAPL",
                         side=risk_pb2.BUY)


def _fills_from_before_start(engine, count: int, first: int = 0) -> list[int]:
    """Send fills one at a time from before ``engine`` is up until ``count`` are acknowledged; return their
    numbers. Refused calls (UNAVAILABLE while it starts) were not applied and are sent again."""
    acked, i, stub = [], first, engine.stub()
    while len(acked) < count:
        try:
            assert stub.ReportFill(_fill(i), timeout=DEADLINE).applied
            acked.append(i)
            i += 1
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            time.sleep(0.005)
    return acked


def _holds_exactly(engine, acked: list[int]) -> None:
    stub = engine.stub()
    [(quantity, *_)] = observed_positions(stub, "t0").values()
    assert quantity == len(acked)
    for i in acked:
        assert not stub.ReportFill(_fill(i), timeout=DEADLINE).applied, i


def test_a_primary_rolling_the_day_at_its_first_start_keeps_its_journal_for_a_standby_and_a_restart(
        tmp_path, engines, nats_url):
    # roll_time is due at every first start (no roll has happened yet): the shipped sample's case.
    config = write_config(tmp_path, {"backend": "jetstream", "nats_servers": [nats_url], "name": "risk",
                                     "lease_seconds": LEASE, "roll_time": "00:00", "roll_timezone": "UTC"})
    primary = engines(config, "primary").start()
    acked = _fills_from_before_start(primary, 40)
    primary.wait_log("start of day roll")

    standby = engines(config, "standby").start()
    standby.wait_log("standby following the primary")
    acked += _fills_from_before_start(primary, 10, first=len(acked))
    primary.kill()
    standby.wait_ready(LEASE * 10)
    _holds_exactly(standby, acked)

    # Everything stopped uncleanly; the next engine recovers every acknowledged record from the stream.
    standby.kill()
    primary.start().wait_ready(LEASE * 10)
    _holds_exactly(primary, acked)
    assert len(primary.events("start of day roll")) == 0      # the roll was journalled, not repeated
