"""Hot standby on NATS JetStream: a real nats-server, a primary and a standby as child processes.

The primary journals every command to a JetStream stream and holds a lease;
the standby replays the stream and takes over when the lease expires (the
primary was killed) or when an operator calls Promote. Whatever the primary
acknowledged must be in the new primary's state, exactly once, after the
client re-sends what was in flight.
"""
from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2

from services.proto import risk_pb2
from services.risk.replication import JournalGap, NatsJournal

from .durability_helpers import (DEADLINE, TRADERS, Trader, account_state, engines,  # noqa: F401
                                 expected_state, nats_url, observed_positions, wait_until, write_config)

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
    primary.kill9()
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
    standby.kill9()
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
    primary.kill9()
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


# ------------------------------------------------------------------ the journal on JetStream

def test_a_follower_behind_a_snapshot_purge_fails_loudly_instead_of_skipping_records(nats_url):
    async def run():
        primary, follower = NatsJournal([nats_url], "gap"), NatsJournal([nats_url], "gap")
        await primary.connect()
        primary.start(asyncio.get_running_loop())
        for i in range(10):
            seq = primary.append(i, 5, b"record %d" % i)
        await asyncio.wait_for(primary.wait(seq), DEADLINE)
        await follower.connect()
        base, _, records = await follower.load()
        assert (base, [r.seq for r in records]) == (0, list(range(1, 11)))
        # The primary goes on, snapshots at 20 (purging 1..20) and goes on again before the follower follows.
        for i in range(10, 25):
            seq = primary.append(i, 5, b"record %d" % i)
            if seq == 20:
                primary.snapshot(20, {"state": "after 20"})
        await asyncio.wait_for(primary.wait(seq), DEADLINE)
        await wait_for_purge(primary, 21)
        applied, failure = [], None
        task = asyncio.create_task(follower.follow(follower.last_seq, lambda record: applied.append(record.seq)))
        try:
            await asyncio.wait_for(asyncio.shield(task), 2.0)
        except asyncio.TimeoutError:
            pass
        except Exception as error:  # noqa: BLE001 - a loud failure is what we want
            failure = error
        task.cancel()
        await primary.aclose()
        await follower._nc.drain()
        return applied, failure

    applied, failure = asyncio.run(run())
    # Either it fails, or it applies 11.. in order; applying 21.. after 10 silently loses 11..20.
    assert failure is not None or applied[:1] == [11], f"follower applied {applied} after record 10"


def test_a_follower_behind_the_newest_snapshot_of_a_quiet_stream_reports_the_gap_instead_of_waiting(nats_url):
    # The primary dies right after a snapshot purged the records the follower still needs: no later
    # record will ever arrive to reveal the gap, and a takeover would wait for the follower forever.
    async def run():
        primary, follower = NatsJournal([nats_url], "quiet-gap"), NatsJournal([nats_url], "quiet-gap")
        await primary.connect()
        primary.start(asyncio.get_running_loop())
        await follower.connect()
        await follower.load()
        for i in range(10):
            seq = primary.append(i, 5, b"record %d" % i)
        primary.snapshot(seq, {"state": "after 10"})
        await asyncio.wait_for(primary.wait(seq), DEADLINE)
        await wait_for_purge(primary, seq + 1)
        try:
            await asyncio.wait_for(follower.follow(follower.last_seq, lambda record: None), 5.0)
        except JournalGap as gap:
            return gap
        finally:
            await primary.aclose()
            await follower._nc.drain()

    assert isinstance(asyncio.run(run()), JournalGap)


async def wait_for_purge(journal: NatsJournal, first: int) -> None:
    for _ in range(200):
        if (await journal.jetstream.stream_info(journal.stream)).state.first_seq >= first:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the snapshot never purged the stream")
