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
import nats
import pytest
from grpc_health.v1 import health_pb2

from riskcore_services.proto import risk_pb2
from riskcore_services.risk.replication import JournalGap, Lease, NatsJournal
from riskcore_services.testing import wait_until

from .durability_helpers import (DEADLINE, TRADERS, Trader, account_state, engines,  # noqa: F401
                                 expected_state, nats_url, observed_positions, write_config)

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
        applied = []
        try:
            await asyncio.wait_for(follower.follow(follower.last_seq, lambda record: applied.append(record.seq)),
                                   DEADLINE)
        except JournalGap as gap:
            return applied, gap
        finally:
            await primary.aclose()
            await follower._nc.drain()
        return applied, None

    applied, gap = asyncio.run(run())
    # Records 11..20 are gone: the follower must say so (JournalGap) before applying anything after
    # 10; applying 21.. after 10 would silently lose 11..20.
    assert (applied, type(gap)) == ([], JournalGap), f"follower applied {applied} after record 10, then {gap!r}"


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


# ------------------------------------------------------------------ snapshots and purges (issue 11, item 13)

def test_a_snapshot_at_0_purges_nothing_and_a_later_one_purges_exactly_the_records_it_covers(nats_url):
    # nats-server takes a purge "up to sequence 0 or 1" as "purge everything": the configuration
    # snapshot (seq 0) stored after record 1 was published used to empty the stream.
    async def run():
        primary = NatsJournal([nats_url], "purge")
        await primary.connect()
        primary.start(asyncio.get_running_loop())
        seq = primary.append(1, 11, b"")              # the roll journalled at start
        primary.snapshot(0, {"state": "configuration"})
        for i in range(2, 6):
            seq = primary.append(i, 5, b"record %d" % i)
        await asyncio.wait_for(primary.wait(seq), DEADLINE)
        await asyncio.wait_for(asyncio.gather(*primary._snapshot_tasks), DEADLINE)
        after_0 = (await primary.jetstream.stream_info(primary.stream)).state

        primary.snapshot(3, {"state": "after 3"})
        await asyncio.wait_for(asyncio.gather(*primary._snapshot_tasks), DEADLINE)
        after_3 = (await primary.jetstream.stream_info(primary.stream)).state
        reader = NatsJournal([nats_url], "purge")
        await reader.connect()
        base, state, records = await reader.load()
        await primary.aclose()
        await reader._nc.drain()
        return after_0, after_3, base, state, [r.seq for r in records]

    after_0, after_3, base, state, records = asyncio.run(run())
    assert (after_0.first_seq, after_0.last_seq, after_0.messages) == (1, 5, 5)
    assert (after_3.first_seq, after_3.last_seq, after_3.messages) == (4, 5, 2)
    assert (base, state, records) == (3, {"state": "after 3"}, [4, 5])


def test_an_older_snapshot_finishing_after_a_newer_one_is_dropped_not_stored_over_it(nats_url):
    async def run():
        primary = NatsJournal([nats_url], "order")
        await primary.connect()
        primary.start(asyncio.get_running_loop())
        for i in range(1, 9):
            seq = primary.append(i, 5, b"record %d" % i)
        await asyncio.wait_for(primary.wait(seq), DEADLINE)
        await primary._store_snapshot(6, {"state": "after 6"})
        await primary._store_snapshot(4, {"state": "after 4"})   # late: records 5 and 6 are gone
        reader = NatsJournal([nats_url], "order")
        await reader.connect()
        base, state, records = await reader.load()
        await primary.aclose()
        await reader._nc.drain()
        return base, state, [r.seq for r in records]

    assert asyncio.run(run()) == (6, {"state": "after 6"}, [7, 8])


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


def test_nats_servers_purge_keeps_the_given_sequence_and_later_and_purges_everything_without_one(nats_url):
    # What NatsJournal._purge_through relies on, pinned against the nats-server the tests run.
    async def run():
        nc = await nats.connect(nats_url)
        js, states = nc.jetstream(), {}
        for name, records, seq in (("NONE", 5, None), ("ZERO", 5, 0), ("ONE", 5, 1), ("THREE", 5, 3),
                                   ("EMPTY", 0, 3)):
            await js.add_stream(name=name, subjects=[name.lower()])
            for _ in range(records):
                await js.publish(name.lower(), b"x")
            await js.purge_stream(name, seq=seq)
            state = (await js.stream_info(name)).state
            states[name] = (state.first_seq, state.messages)
        await nc.close()
        return states

    assert asyncio.run(run()) == {"NONE": (6, 0), "ZERO": (6, 0), "ONE": (1, 5), "THREE": (3, 3), "EMPTY": (3, 0)}


# ------------------------------------------------------------------ the lease's timing (issue 11, item 14)

class SimulatedTime:
    """A monotonic clock and a sleep for Lease that advance simulated seconds instantly."""

    def __init__(self, at: dict | None = None):
        self.now = 0.0
        self.at = dict(at or {})    # simulated second -> coroutine function run once the clock passes it

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        for when in sorted(w for w in self.at if w <= self.now):
            await self.at.pop(when)()
        await asyncio.sleep(0)


def _with_lease_journal(nats_url, body):
    async def run():
        journal = NatsJournal([nats_url], "lease")
        await journal.connect()
        try:
            return await body(journal)
        finally:
            await journal._nc.close()
    return asyncio.run(run())


def test_the_failover_bound_is_the_lease_and_the_holder_fences_itself_before_a_standby_may_take_over():
    lease = Lease(None, "x", ttl=2.0)

    # Seen within one poll of the last renewal, unchanged for `expiry`, noticed at the next poll.
    assert lease.poll + lease.expiry + lease.poll <= lease.ttl
    # The holder's last failed attempt before fencing ends at most a timeout (poll) after fence_after.
    assert lease.fence_after + lease.poll < lease.expiry
    assert lease.renew_every * 2 < lease.fence_after


def test_a_standby_takes_the_lease_once_the_holder_has_not_renewed_for_the_expiry_and_not_before(nats_url):
    async def body(journal):
        holder = Lease(journal, "holder", ttl=60.0)   # the bucket keeps entries 48 s: none expires here
        assert await holder.try_acquire()
        time = SimulatedTime()
        standby = Lease(journal, "standby", ttl=60.0, clock=time.clock, sleep=time.sleep)
        stale = await standby.wait_expired()
        taken = await standby.try_acquire(stale=stale)
        bucket = await (await standby._bucket()).status()
        return stale, holder._revision, time.now, taken, await holder.holder(), bucket.ttl, standby

    stale, revision, now, taken, owner, bucket_ttl, standby = _with_lease_journal(nats_url, body)
    assert stale == revision
    assert standby.expiry <= now <= standby.expiry + standby.poll
    assert (taken, owner) == (True, "standby")
    assert bucket_ttl == standby.expiry


def test_a_renewal_seen_by_the_standby_restarts_its_count_and_a_stale_take_over_then_fails(nats_url):
    async def body(journal):
        holder = Lease(journal, "holder", ttl=60.0)
        assert await holder.try_acquire()
        first = holder._revision

        async def renew():
            holder._revision = await (await holder._bucket()).update("primary", b"holder", last=holder._revision)

        time = SimulatedTime(at={30.0: renew})
        standby = Lease(journal, "standby", ttl=60.0, clock=time.clock, sleep=time.sleep)
        stale = await standby.wait_expired()
        late = await standby.try_acquire(stale=first)
        return first, stale, holder._revision, time.now, late, await holder.holder(), standby

    first, stale, renewed, now, late, owner, standby = _with_lease_journal(nats_url, body)
    assert renewed != first and stale == renewed
    assert 30.0 + standby.expiry <= now <= 30.0 + standby.expiry + 2 * standby.poll
    assert (late, owner) == (False, "holder")


def test_a_holder_that_cannot_renew_fences_itself_within_the_fence_time(nats_url):
    async def body(journal):
        time = SimulatedTime()
        holder = Lease(journal, "holder", ttl=2.0, clock=time.clock, sleep=time.sleep)
        assert await holder.try_acquire()
        fenced = []

        async def lost(reason):
            fenced.append((time.now, reason))

        await (await holder._bucket()).status()
        await journal._nc.close()          # every renewal now fails at once
        await asyncio.wait_for(holder.hold(lost), DEADLINE)
        return fenced, holder

    [(at, reason)], holder = _with_lease_journal(nats_url, body)
    assert holder.fence_after <= at < holder.expiry
    assert reason.startswith("lease not renewed in time")


def test_a_holder_whose_lease_was_taken_fences_itself_at_its_next_renewal(nats_url):
    async def body(journal):
        time = SimulatedTime()
        holder = Lease(journal, "holder", ttl=60.0, clock=time.clock, sleep=time.sleep)
        assert await holder.try_acquire()
        assert await Lease(journal, "operator", ttl=60.0).try_acquire(force=True)
        fenced = []

        async def lost(reason):
            fenced.append((time.now, reason))

        await asyncio.wait_for(holder.hold(lost), DEADLINE)
        return fenced, holder

    [(at, reason)], holder = _with_lease_journal(nats_url, body)
    assert (at, reason) == (holder.renew_every, "another engine took the lease")
