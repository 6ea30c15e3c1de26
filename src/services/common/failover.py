"""Which process writes the journal: the roles, the lease, and a Server whose state is a journal.

With a SQLite journal a service is ``STANDALONE``: it recovers, then writes.
With a JetStream journal several processes share one stream; each starts
``STARTING``, the one that takes the :class:`Lease` recovers and becomes the
``PRIMARY`` (the only writer), the others are ``STANDBY``: they replay the
stream as it grows and take over when the lease expires or an operator
promotes one. A primary that loses its lease is ``FENCED`` and stops serving.

Timing of the lease (``ttl`` = ``lease_seconds``): the holder renews every
ttl/5 and stops serving when it has not renewed for ttl/2; a standby polls
every ttl/10 and takes the lease once it has seen the same revision for
0.8 ttl on its own clock (or the key expired: the bucket keeps entries 0.8 ttl).
So a standby decides to take over at most ttl after the holder's last
renewal (one poll to see it, 0.8 ttl, one poll to notice), never before the
holder has fenced itself, and without comparing clocks across hosts.

A service with durable state subclasses :class:`DurableServer`, sets
``self.durable`` to an object that offers :class:`DurableState` (recover,
replay, snapshot, ``last_seq``), and may override :meth:`DurableServer.recovered`
and :meth:`DurableServer.writing`; the roles, the lease, following, take-over,
promotion, fencing and the snapshot on the way down are done here.
"""
from __future__ import annotations

import asyncio
import enum
import os
import socket
import time
from typing import Any, Awaitable, Callable, Iterable, Optional, Protocol, Sequence

import nats
from google.protobuf.descriptor import ServiceDescriptor
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from riskcore_services.common.config import Common, StateConfig
from riskcore_services.common.journal import JournalError, Record
from riskcore_services.common.journal.jetstream import JournalGap, NatsJournal
from riskcore_services.common.journal.sqlite import SqliteJournal
from riskcore_services.common.logging import get_logger
from riskcore_services.common.server import Server

log = get_logger("failover")


class Role(enum.Enum):
    """What this process does with its journal; the value is what logs and the wire say."""

    STARTING = "starting"        # replicated, lease not yet decided
    STANDALONE = "standalone"    # SQLite or no journal: the only writer there is
    STANDBY = "standby"          # follows the primary's stream, takes over when its lease expires
    PRIMARY = "primary"          # holds the lease, writes the stream
    FENCED = "fenced"            # lost the lease: serves nothing

    @property
    def writes(self) -> bool:
        """Whether this role appends to the journal (and so snapshots it on the way down)."""
        return self in (Role.STANDALONE, Role.PRIMARY)


class Lease:
    """Leadership: a key in a JetStream key-value bucket, renewed by its holder.

    See the module's notes for the timing. ``clock`` (monotonic seconds) and
    ``sleep`` are injected so tests can drive the lease in simulated time.
    """

    def __init__(self, journal: NatsJournal, owner: str, ttl: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self._journal = journal
        self.owner = owner
        self.ttl = ttl
        self.renew_every = ttl / 5
        self.fence_after = ttl / 2
        self.expiry = ttl * 0.8
        self.poll = ttl / 10
        self._clock = clock
        self._sleep = sleep
        self._kv: KeyValue | None = None
        self._revision: Optional[int] = None
        self._acquired_at = 0.0

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            js, bucket = self._journal.jetstream, f"riskcore_lease_{self._journal.name}"
            try:
                self._kv = await js.create_key_value(bucket=bucket, ttl=self.expiry, history=1)
            except nats.js.errors.BadRequestError:
                # Made by an engine with another lease_seconds: the standby's own count still bounds takeover.
                self._kv = await js.key_value(bucket)
        return self._kv

    async def holder(self) -> Optional[str]:
        try:
            entry = await (await self._bucket()).get("primary")
        except KeyNotFoundError:
            return None
        return None if entry.value is None else entry.value.decode()

    async def try_acquire(self, force: bool = False, stale: Optional[int] = None) -> bool:
        """Take the lease if it is free, or if it is still at revision ``stale`` (expired by
        :meth:`wait_expired`), or unconditionally with ``force``."""
        kv = await self._bucket()
        sent = self._clock()
        try:
            if force:
                self._revision = await kv.put("primary", self.owner.encode())
            elif stale is not None:
                self._revision = await kv.update("primary", self.owner.encode(), last=stale)
            else:
                self._revision = await kv.create("primary", self.owner.encode())
        except KeyWrongLastSequenceError:
            return False
        self._acquired_at = sent
        return True

    async def hold(self, on_lost: Callable[[str], Awaitable[None]]) -> None:
        """Renew until cancelled; call ``on_lost`` once the lease is gone or could not be renewed in time."""
        kv = await self._bucket()
        renewed = self._acquired_at     # when the last successful renewal was sent
        pause = self.renew_every
        while True:
            await self._sleep(pause)
            sent = self._clock()
            try:
                self._revision = await asyncio.wait_for(kv.update("primary", self.owner.encode(), last=self._revision),
                                                        timeout=self.poll)
                renewed, pause = sent, self.renew_every
            except KeyWrongLastSequenceError:
                await on_lost("another engine took the lease")
                return
            except (asyncio.TimeoutError, nats.errors.Error) as error:
                if self._clock() - renewed >= self.fence_after:
                    await on_lost(f"lease not renewed in time: {error!r}")
                    return
                pause = self.poll / 2    # retry soon: the fence deadline is near

    async def wait_expired(self) -> Optional[int]:
        """Return once the holder has stopped renewing: the revision seen unchanged for ``expiry``
        (take it with ``try_acquire(stale=...)``), or None when the key is gone."""
        kv = await self._bucket()
        seen, since = None, 0.0
        while True:
            try:
                revision = (await asyncio.wait_for(kv.get("primary"), timeout=self.ttl)).revision
            except KeyNotFoundError:
                return None
            except (asyncio.TimeoutError, nats.errors.Error) as error:
                log.warning("cannot read the lease; retrying", error=repr(error))
                await self._sleep(self.poll)
                continue
            now = self._clock()
            if revision != seen:
                seen, since = revision, now
            elif now - since >= self.expiry:
                return seen
            await self._sleep(self.poll)


class DurableState(Protocol):
    """What a service's state offers :class:`DurableServer`."""

    last_seq: int

    async def recover(self, base: int, state: Optional[dict], records: Iterable[tuple[int, int, int, bytes]]
                      ) -> dict[str, Any]:
        """Restore ``state`` (the snapshot after record ``base``, or None), replay ``records``; return
        at least ``snapshot_seq`` and ``replayed`` (logged with the rest)."""
        ...

    def replay(self, records: Iterable[tuple[int, int, int, bytes]]) -> int:
        """Apply records as they were applied live, without journaling them again; return how many."""
        ...

    def snapshot(self) -> None:
        """Queue a snapshot of the whole state as of ``last_seq``."""
        ...


def open_journal(state: StateConfig) -> SqliteJournal | NatsJournal | None:
    """The journal ``[state]`` configures: a locked SQLite file, a (not yet connected) stream, or None."""
    if state.backend == "jetstream":
        return NatsJournal(list(state.nats_servers), state.name, state.replicas)
    if state.path is not None:
        return SqliteJournal(str(state.path), state.synchronous)
    return None


class DurableServer(Server):
    """A :class:`Server` whose state is recovered from a journal before it serves, and written to it after.

    Parameters
    ----------
    config : Common
        Its ``state`` section picks and configures the journal (opened here:
        a SQLite journal is locked from construction on).
    services, name
        As for :class:`Server`.

    Notes
    -----
    The subclass sets ``self.durable`` before :meth:`start`.
    """

    durable: DurableState

    def __init__(self, config: Common, services: Sequence[ServiceDescriptor], name: str):
        super().__init__(config, services, name)
        self.journal = open_journal(config.state)
        self.role = Role.STARTING if isinstance(self.journal, NatsJournal) else Role.STANDALONE
        self.recovery: dict[str, Any] | None = None
        self._lease: Lease | None = None
        self._follower: asyncio.Task | None = None

    # -- what a service may add
    def recovered(self, recovery: dict[str, Any]) -> None:
        """Called after each recovery (at start, and when a standby reloads); logs what came back."""
        log.info("state recovered", journal=self.journal.path if self.journal else None, **recovery)

    async def writing(self) -> None:
        """Called once this process has become the journal's writer, before it serves."""

    # -- the shared lifecycle
    def started(self) -> dict:
        # Say where state lives and whether it came back, so nobody is surprised by yesterday's state.
        if self.journal is None:
            state = "in memory only: lost when the process exits"
        elif self.recovery and (self.recovery["snapshot_seq"] or self.recovery["replayed"]):
            state = (f"recovered from {self.journal.path} (snapshot {self.recovery['snapshot_seq']}, "
                     f"{self.recovery['replayed']} records replayed)")
        else:
            state = f"new journal at {self.journal.path}"
        return dict(role=self.role.value, state=state)

    async def recover(self) -> None:
        """Recover the journal's state (standalone or primary) and serve, or follow a primary."""
        journal = self.journal
        if isinstance(journal, SqliteJournal):
            journal.on_failure = self._journal_failed
            # Not ready (health NOT_SERVING, calls UNAVAILABLE) until the state is back.
            base, state, records = journal.load()
            self._recovered(await self._recover(journal.path, base, state, records))
            journal.start(asyncio.get_running_loop())
            # The first state (from configuration) is the base every later replay starts from.
            await self._write(fresh=state is None and not self._replayed)
        elif isinstance(journal, NatsJournal):
            journal.on_failure = self._journal_failed
            await journal.connect()
            lease = self._lease = Lease(journal, f"{socket.gethostname()}:{os.getpid()}:{self.port}",
                                        self.config.state.lease_seconds)
            if await lease.try_acquire():
                self._hold_lease(lease)
                await self._reload(journal)
                await self._become_primary(journal)
            else:
                # A standby starts from the primary's snapshot, never from its own configuration.
                while not await journal.has_snapshot():
                    await asyncio.sleep(0.05)
                await self._reload(journal)
                self._follow(journal, lease)
        else:
            await self.serve()

    @property
    def _replayed(self) -> int:
        return self.recovery["replayed"] if self.recovery else 0

    async def _recover(self, path: str, base: int, state: Optional[dict],
                       records: Iterable[tuple[int, int, int, bytes]]) -> dict[str, Any]:
        try:
            return await self.durable.recover(base, state, records)
        except JournalError as error:
            # The service knows the record, not the file: name it, once.
            if str(error).startswith(path):
                raise
            raise JournalError(f"{path}: {error}") from None

    def _recovered(self, recovery: dict[str, Any]) -> None:
        self.recovery = recovery
        self.recovered(recovery)

    async def _write(self, fresh: bool) -> None:
        """Take calls as the journal's writer (its writing side already started)."""
        if fresh:
            self.durable.snapshot()
        await self.writing()
        if self._replayed >= self.config.state.snapshot_every:
            self.durable.snapshot()  # a long replay is not repeated at the next start
        await self.serve()

    async def _reload(self, journal: NatsJournal) -> None:
        """Recover from the newest snapshot and the stream after it (again if a purge races us)."""
        for attempt in range(20):
            try:
                base, state, records = await journal.load()
            except JournalGap as gap:
                log.warning("snapshot replaced while loading; loading again", error=str(gap), attempt=attempt)
                continue
            self._recovered(await self._recover(journal.path, base, state, records))
            return
        raise JournalError(f"{journal.path}: could not load a consistent snapshot and stream")

    def _journal_failed(self, error: BaseException) -> None:
        """The journal cannot make writes durable: stop taking calls rather than answer without it."""
        log.error("journal failed; no longer serving", journal=self.journal.path if self.journal else None,
                  error=str(error))
        self.ready = False
        asyncio.get_running_loop().create_task(self.set_serving(False))

    def _follow(self, journal: NatsJournal, lease: Lease) -> None:
        """Run as a hot standby: apply the primary's records; take over when its lease expires."""
        self.role = Role.STANDBY
        durable = self.durable

        def apply(record: Record) -> None:
            durable.replay((record,))

        async def follow_forever() -> None:
            while True:
                try:
                    await journal.follow(journal.last_seq, apply)
                except JournalGap as gap:
                    log.warning("standby fell behind a snapshot; reloading", error=str(gap))
                    await self._reload(journal)

        self._follower = self.spawn(follow_forever())
        self.spawn(self._take_over_when_free(journal, lease))
        log.info("standby following the primary", holder_seq=journal.last_seq)

    async def _take_over_when_free(self, journal: NatsJournal, lease: Lease) -> None:
        while True:
            stale = await lease.wait_expired()
            if await lease.try_acquire(stale=stale):
                self._hold_lease(lease)
                await self._become_primary(journal)
                return

    def _hold_lease(self, lease: Lease) -> None:
        """Renew the lease from the moment it is ours (a long drain must not let it lapse)."""
        self.spawn(lease.hold(self._lost_lease))

    async def promote(self) -> Role:
        """Operator failover: take the lease now and serve as the primary; return the role after."""
        # Only a replicated process is ever a standby, and it has both (the checks are for the type checker).
        journal, lease = self.journal, self._lease
        if self.role is Role.STANDBY and isinstance(journal, NatsJournal) and lease is not None:
            await lease.try_acquire(force=True)
            self._hold_lease(lease)
            # Give the old primary a renewal period to see it lost the lease and stop.
            await asyncio.sleep(lease.ttl / 2)
            await self._become_primary(journal)
        return self.role

    async def _become_primary(self, journal: NatsJournal) -> None:
        if self.role is Role.STANDBY and self._follower is not None:
            # Drain: every record the old primary had acknowledged is applied before we write.
            end = await journal.stream_last_seq()
            while self.durable.last_seq < end:
                if self._follower.done():
                    raise JournalError(f"standby stopped following: {self._follower.exception()}")
                await asyncio.sleep(0.002)
            self._follower.cancel()
            journal.last_seq = journal.durable_seq = self.durable.last_seq
        if self.role is Role.FENCED:
            return  # lost the lease again while loading or draining: someone else serves
        first_start = (self.role is Role.STARTING and self.recovery is not None
                       and self.recovery["snapshot_seq"] == 0 and not self._replayed)
        self.role = Role.PRIMARY
        journal.start(asyncio.get_running_loop())
        # Standbys start from this first snapshot, not from their own configuration.
        await self._write(fresh=first_start and not await journal.has_snapshot())
        log.warning("serving as the primary", last_seq=self.durable.last_seq)

    async def _lost_lease(self, reason: str) -> None:
        """Fence: another process is (or may be) the primary; stop taking calls at once."""
        self.ready = False
        self.role = Role.FENCED
        await self.set_serving(False)
        log.error("lost the primary lease; no longer serving", reason=reason)

    async def flush(self) -> None:
        """Snapshot the state (the writer only) and close the journal."""
        if self.journal is not None:
            if self.role.writes:
                self.durable.snapshot()
            await self.journal.aclose()
