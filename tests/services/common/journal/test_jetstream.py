"""The journal on NATS JetStream, against a real nats-server: following, gaps, snapshots and purges.

Records are opaque bytes, as any service's would be to the journal. A
follower that missed records purged behind a snapshot must say so
(JournalGap), never skip them.
"""
from __future__ import annotations

import asyncio

import nats

from riskcore_services.common.journal.jetstream import JournalGap, NatsJournal

DEADLINE = 5.0  # seconds for any wait on the stream


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
