"""Failover: a service's state recovered by DurableServer, and the lease that makes one process the primary.

A minimal service of its own (a running total, one record per addition)
shows that DurableServer needs nothing of the risk engine: it recovers from
a real SQLite journal, snapshots on the way down and replays what a crash
left after the snapshot. The lease runs against a real nats-server in
simulated time: the holder must fence itself before a standby may take over,
and a standby must take over within the lease's bound and not before. The
roles over a whole replicated service are tested with the risk engine in
``tests/services/risk/test_replication.py``.
"""
from __future__ import annotations

import asyncio
import time

from riskcore_services.common.config import Common, ServerConfig, StateConfig
from riskcore_services.common.failover import DurableServer, Lease, Role
from riskcore_services.common.journal import Journal
from riskcore_services.common.journal.jetstream import NatsJournal
from riskcore_services.common.journal.sqlite import SqliteJournal

DEADLINE = 5.0  # seconds for any wait on the lease or the journal
ADD = 1         # the total's one record kind: the payload is the number added, in decimal


class Total:
    """A service's durable state: a total that each journaled addition moves."""

    def __init__(self, journal: Journal | None):
        self.journal = journal
        self.total = 0
        self.last_seq = 0

    async def recover(self, base, state, records) -> dict:
        self.total = 0 if state is None else state["total"]
        replayed = self.replay(records)
        self.last_seq = max(self.last_seq, base)
        return {"snapshot_seq": base, "replayed": replayed}

    def replay(self, records) -> int:
        count = 0
        for seq, _, kind, payload in records:
            assert kind == ADD
            self.total += int(payload)
            self.last_seq = seq
            count += 1
        return count

    def snapshot(self) -> None:
        if self.journal is not None:
            self.journal.snapshot(self.last_seq, {"total": self.total})

    async def add(self, amount: int) -> None:
        """Apply, journal, and return once durable (what a call would answer after)."""
        self.total += amount
        if self.journal is not None:
            self.last_seq = self.journal.append(time.time_ns(), ADD, str(amount).encode())
            await self.journal.wait(self.last_seq)


class TotalServer(DurableServer):
    def __init__(self, config: Common):
        super().__init__(config, [], "total")
        self.durable = self.state = Total(self.journal)

    def servicers(self) -> list:
        return []


def _config(path) -> Common:
    return Common(server=ServerConfig(port=0, http_port=0, grace_seconds=0.1, drain_seconds=0.0),
                  state=StateConfig(path=path))


def _run(path, body):
    async def run():
        server = TotalServer(_config(path))
        await asyncio.wait_for(server.start(), DEADLINE)
        try:
            return await body(server)
        finally:
            await asyncio.wait_for(server.stop(), DEADLINE)
    return asyncio.run(run())


def test_a_service_of_its_own_recovers_its_state_from_its_snapshot_and_the_records_after_it(tmp_path):
    path = tmp_path / "total.db"

    async def add_and_stop(server):
        for amount in (1, 2, 3):
            await server.state.add(amount)
        return server.role, server.recovery

    async def append_after_the_snapshot():
        # What a process that died before its stop's snapshot leaves: a record after the snapshot.
        journal = SqliteJournal(str(path))
        journal.start(asyncio.get_running_loop())
        await asyncio.wait_for(journal.wait(journal.append(time.time_ns(), ADD, b"4")), DEADLINE)
        await journal.aclose()

    async def read(server):
        return server.state.total, server.recovery, server.ready

    assert _run(path, add_and_stop) == (Role.STANDALONE, {"snapshot_seq": 0, "replayed": 0})
    assert _run(path, read) == (6, {"snapshot_seq": 3, "replayed": 0}, True)
    asyncio.run(append_after_the_snapshot())
    assert _run(path, read) == (10, {"snapshot_seq": 3, "replayed": 1}, True)


def test_a_service_without_a_journal_serves_from_memory_as_the_only_writer(tmp_path):
    async def body(server):
        await server.state.add(5)
        return server.role, server.journal, server.ready, server.started()["state"]

    assert _run(None, body) == (Role.STANDALONE, None, True, "in memory only: lost when the process exits")


def test_only_the_standalone_and_primary_roles_write_the_journal():
    assert {role for role in Role if role.writes} == {Role.STANDALONE, Role.PRIMARY}


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
