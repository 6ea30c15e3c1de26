"""The risk engine's process: the common server plus what is the risk service's own.

``RiskServer`` adds to :class:`~riskcore_services.common.server.Server` the kernel
engine and its service, recovery from the journal, the standby/primary roles
of a replicated journal, the day roller, and the snapshot taken on the way
down. Tests construct it with port 0 and read the bound ports back.
"""
from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

from riskcore import Limits, ManualClock
from riskcore_services.common.config import roll_clock_time
from riskcore_services.common.logging import get_logger
from riskcore_services.common.schedule import DayRoller, Sleep, TimeNs
from riskcore_services.common.server import Server
from riskcore_services.proto import risk_pb2
from riskcore_services.risk.config import RiskConfig, build_engine, config_drift
from riskcore_services.risk.events import RiskEvents
from riskcore_services.risk.journal import JournalError, SqliteJournal
from riskcore_services.risk.metrics import RiskMetrics
from riskcore_services.risk.replication import JournalGap, Lease, NatsJournal
from riskcore_services.risk.service import RiskService, limits_to_proto
from riskcore_services.risk.servicer import make_servicer

log = get_logger("risk.server")

RISK_SERVICE = risk_pb2.DESCRIPTOR.services_by_name["RiskEngine"]


class RiskServer(Server):
    """The risk engine service, started and stopped on the running event loop.

    Parameters
    ----------
    config : RiskConfig
    engine : RiskEngine, optional
        A prepared engine (tests); built from ``config`` when omitted.
    apply_config : bool
        After recovery, journal the file's limits, position limits and
        trading states where the recovered state differs (as admin changes
        by ``configuration file``). Every difference is logged either way.
    time_ns, sleep : optional
        The clock the service and its day roller read, and how the roller
        waits (tests pass a :class:`~riskcore_services.common.schedule.ManualTime`
        and its ``sleep``).
    """

    event_source = "risk"

    def __init__(self, config: RiskConfig, engine=None, *, apply_config: bool = False,
                 time_ns: TimeNs = time.time_ns, sleep: Sleep = asyncio.sleep):
        super().__init__(config, [RISK_SERVICE], "risk engine")
        self.config: RiskConfig = config
        self.apply_config = apply_config
        state = config.state
        self.roller = None if state.roll_time is None else DayRoller(
            roll_clock_time(state.roll_time), state.roll_timezone, time_ns, sleep)
        self._drift_reported = False
        self.engine = engine if engine is not None else build_engine(config, clock=ManualClock(time_ns()))
        self.journal: SqliteJournal | NatsJournal | None
        if state.backend == "jetstream":
            self.journal = NatsJournal(list(state.nats_servers), state.name, state.replicas)
        elif state.path is not None:
            self.journal = SqliteJournal(str(state.path), state.synchronous)
        else:
            self.journal = None
        self.role = "standalone" if state.backend == "sqlite" else "starting"
        self._lease: Lease | None = None
        self.service = RiskService(self.engine, config.default_account, RiskMetrics(self.registry, self.engine),
                                   self.journal, state.snapshot_every, config.order_capacity, time_ns)
        self.recovery: dict[str, Any] | None = None
        self.events = RiskEvents(self.event_stream, self.service)
        self.service.on_breach = self.events.breach

    def servicers(self):
        return [(RISK_SERVICE, make_servicer(self.service, self.calls, self, self.events))]

    def started(self) -> dict:
        # Say where state lives and whether it came back, so nobody is surprised by yesterday's positions.
        if self.journal is None:
            state = "in memory only: lost when the process exits"
        elif self.recovery and (self.recovery["snapshot_seq"] or self.recovery["replayed"]):
            state = (f"recovered from {self.journal.path} (snapshot {self.recovery['snapshot_seq']}, "
                     f"{self.recovery['replayed']} records replayed)")
        else:
            state = f"new journal at {self.journal.path}"
        return dict(role=self.role, state=state, accounts=len(self.engine.accounts),
                    instruments=len(self.engine.symbols))

    async def recover(self) -> None:
        """Recover the journal's state (the standalone or primary engine), or follow a primary."""
        journal = self.journal
        if journal is not None:
            journal.on_failure = self._journal_failed
        if isinstance(journal, SqliteJournal):
            # Not ready (health NOT_SERVING, calls UNAVAILABLE) until the state is back.
            base, state, records = journal.load()
            recovery = self._recovered(journal, await self.service.recover(base, state, records))
            journal.start(asyncio.get_running_loop())
            if state is None and not recovery["replayed"]:
                self.service.snapshot()  # the configuration's state is the base every replay starts from
            await self._apply_config()
            await self._serve()
        elif isinstance(journal, NatsJournal):
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
            await self._serve()

    async def _reload(self, journal: NatsJournal) -> None:
        """Recover from the newest snapshot and the stream after it (again if a purge races us)."""
        for attempt in range(20):
            try:
                base, state, records = await journal.load()
            except JournalGap as gap:
                log.warning("snapshot replaced while loading; loading again", error=str(gap), attempt=attempt)
                continue
            self._recovered(journal, await self.service.recover(base, state, records))
            return
        raise JournalError(f"{journal.path}: could not load a consistent snapshot and stream")

    def _journal_failed(self, error: BaseException) -> None:
        """The journal cannot make writes durable: stop taking calls rather than answer without it."""
        # Installed as the journal's on_failure, so there is a journal; the check is for the type checker.
        path = self.journal.path if self.journal is not None else None
        log.error("journal failed; no longer serving", journal=path, error=str(error))
        self.ready = False
        asyncio.get_running_loop().create_task(self.set_serving(False))

    def _recovered(self, journal: SqliteJournal | NatsJournal, recovery: dict[str, Any]) -> dict[str, Any]:
        """Take the recovered engine, log what came back and how the file differs from it; return ``recovery``."""
        self.recovery = recovery
        self.engine = self.service.engine
        log.info("state recovered", journal=journal.path, **recovery)
        if not self._drift_reported:
            self._drift_reported = True
            for drift in config_drift(self.config, self.engine):
                log.warning("configuration file differs from the recovered state", what=drift.what,
                            target=drift.target, file=drift.file, state=drift.state,
                            fix=("restart with --apply-config or use SetLimits/SetTradingState" if drift.applicable
                                 else "not applied: start on a new journal to change it"))
        return recovery

    async def _apply_config(self) -> None:
        """With ``apply_config``, journal the file's limits and states where the state differs (the writer only)."""
        if not self.apply_config:
            return
        self.apply_config = False  # once per process, even when a standby becomes primary later
        engine, actor = self.engine, "configuration file"
        drift = config_drift(self.config, engine)
        accounts = {d.target.split("/")[0] for d in drift if d.what in ("limits", "position_limit")}
        for account in (a for a in engine.accounts if a in accounts):
            wanted = next((a for a in self.config.accounts if a.name == account), None)
            limits = wanted.limits if wanted is not None else Limits()   # the firm without a table
            configured = {p.symbol: (p.max_long, p.max_short) for p in (wanted.position_limits if wanted else ())}
            positions = [(symbol, *configured.get(symbol, (None, None))) for symbol in engine.symbols
                         if symbol in configured or engine.position_limit(account, symbol) != (None, None)]
            self.service.set_limits(risk_pb2.SetLimitsRequest(account=account,
                                                              limits=limits_to_proto(limits, positions)), actor)
        for d in (d for d in drift if d.what == "trading_state"):
            self.service.set_trading_state(risk_pb2.TradingStateRequest(
                account=d.target, state=risk_pb2.TradingState.Value(d.file)), actor)
        await self.service.durable()
        self.engine = self.service.engine
        log.warning("configuration file applied", changes=sum(d.applicable for d in drift),
                    not_applied=[f"{d.what} {d.target}" for d in drift if not d.applicable])

    async def _serve(self) -> None:
        """Take calls: start the day roller, go SERVING and ready."""
        if self.journal is not None and self.recovery and self.recovery["replayed"] >= self.service.snapshot_every:
            self.service.snapshot()  # a long replay is not repeated at the next start
        if self.roller is not None:
            self.spawn(self.roller.run(lambda: self.service.last_roll_ns, self._roll))
        await self.serve()

    def _follow(self, journal: NatsJournal, lease: Lease) -> None:
        """Run as a hot standby: apply the primary's records; take over when its lease expires."""
        self.role = "standby"
        service = self.service

        def apply(record) -> None:
            service.replay((record,))

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

    async def promote(self) -> str:
        """Operator failover: take the lease now and serve as the primary."""
        # Only a replicated engine is ever a standby, and it has both (the checks are for the type checker).
        journal, lease = self.journal, self._lease
        if self.role == "standby" and isinstance(journal, NatsJournal) and lease is not None:
            await lease.try_acquire(force=True)
            self._hold_lease(lease)
            # Give the old primary a renewal period to see it lost the lease and stop.
            await asyncio.sleep(lease.ttl / 2)
            await self._become_primary(journal)
        return self.role

    async def _become_primary(self, journal: NatsJournal) -> None:
        if self.role == "standby":
            # Drain: every record the old primary had acknowledged is applied before we write.
            end = await journal.stream_last_seq()
            while self.service.last_seq < end:
                if self._follower.done():
                    raise JournalError(f"standby stopped following: {self._follower.exception()}")
                await asyncio.sleep(0.002)
            self._follower.cancel()
            journal.last_seq = journal.durable_seq = self.service.last_seq
        if self.role == "fenced":
            return  # lost the lease again while loading or draining: someone else serves
        first_start = (self.role == "starting" and self.recovery is not None
                       and self.recovery["snapshot_seq"] == 0 and not self.recovery["replayed"])
        self.role = "primary"
        journal.start(asyncio.get_running_loop())
        if first_start and not await journal.has_snapshot():
            self.service.snapshot()  # standbys start from this, not from their own configuration
        await self._apply_config()
        await self._serve()
        log.warning("serving as the primary", last_seq=self.service.last_seq)

    async def _lost_lease(self, reason: str) -> None:
        """Fence: another engine is (or may be) the primary; stop taking calls at once."""
        self.ready = False
        self.role = "fenced"
        await self.set_serving(False)
        log.error("lost the primary lease; no longer serving", reason=reason)

    async def _roll(self) -> None:
        self.service.roll_day()
        await self.service.durable()

    async def flush(self) -> None:
        """Snapshot the state (the engine that writes the journal) and close the journal."""
        if self.journal is not None:
            if self.role in ("standalone", "primary"):
                self.service.snapshot()
            await self.journal.aclose()
