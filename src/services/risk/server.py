"""The risk engine's process: the common server plus what is the risk service's own.

``RiskServer`` adds to :class:`~riskcore_services.common.failover.DurableServer`
(recovery from the journal, the standby/primary roles, the snapshot taken on
the way down) the kernel engine and its service, the configuration drift
report and ``--apply-config``, and the day roller. Tests construct it with
port 0 and read the bound ports back.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from riskcore import Limits, ManualClock
from riskcore_services.common.config import roll_clock_time
from riskcore_services.common.logging import get_logger
from riskcore_services.common.failover import DurableServer
from riskcore_services.common.schedule import DayRoller, Sleep, TimeNs
from riskcore_services.monitor.alerting import ALERTS_SERVICE, Alerting
from riskcore_services.proto import risk_pb2
from riskcore_services.risk.codec import limits_to_proto
from riskcore_services.risk.config import RiskConfig, build_engine, config_drift
from riskcore_services.risk.events import RiskEvents
from riskcore_services.risk.metrics import RiskMetrics
from riskcore_services.risk.service import RiskService
from riskcore_services.risk.servicer import make_servicer

log = get_logger("risk.server")

RISK_SERVICE = risk_pb2.DESCRIPTOR.services_by_name["RiskEngine"]


class RiskServer(DurableServer):
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
        # The engine first: a configuration it refuses must not leave the journal opened and locked.
        self.engine = engine if engine is not None else build_engine(config, clock=ManualClock(time_ns()))
        super().__init__(config, [RISK_SERVICE, *([ALERTS_SERVICE] if config.alert_rules else [])], "risk engine")
        self.config: RiskConfig = config
        self.apply_config = apply_config
        state = config.state
        self.roller = None if state.roll_time is None else DayRoller(
            roll_clock_time(state.roll_time), state.roll_timezone, time_ns, sleep)
        self._drift_reported = False
        self.service = RiskService(self.engine, config.default_account, RiskMetrics(self.registry, self.engine),
                                   self.journal, state.snapshot_every, config.order_capacity, time_ns)
        self.durable = self.service
        self.events = RiskEvents(self.event_stream, self.service)
        self.service.on_breach = self.events.breach
        # The rules about our own events, evaluated as they happen: a breach is one hop from a
        # WatchAlerts subscriber here (two through the monitor, which still sends the webhooks and logs).
        self.alerting = Alerting(config.alert_rules, (), self.registry, log_alerts=False, time_ns=time_ns) \
            if config.alert_rules else None

    def servicers(self):
        risk = (RISK_SERVICE, make_servicer(self.service, self.calls, self, self.events))
        return [risk] if self.alerting is None else [risk, (ALERTS_SERVICE, self.alerting.servicer(self.calls))]

    def started(self) -> dict:
        return dict(super().started(), accounts=len(self.engine.accounts), instruments=len(self.engine.symbols))

    def recovered(self, recovery: dict[str, Any]) -> None:
        """Take the recovered engine, log what came back and how the file differs from it."""
        super().recovered(recovery)
        self.engine = self.service.engine
        if not self._drift_reported:
            self._drift_reported = True
            for drift in config_drift(self.config, self.engine):
                log.warning("configuration file differs from the recovered state", what=drift.what,
                            target=drift.target, file=drift.file, state=drift.state,
                            fix=("restart with --apply-config or use SetLimits/SetTradingState" if drift.applicable
                                 else "not applied: start on a new journal to change it"))

    async def writing(self) -> None:
        await self._apply_config()

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

    async def serve(self) -> None:
        """Take calls, and roll the day from now on."""
        if self.roller is not None:
            self.spawn(self.roller.run(lambda: self.service.last_roll_ns, self._roll))
        if self.alerting is not None:
            self.event_stream.listen(self.alerting.on_event)   # the recovered state's conditions first
        await super().serve()

    async def flush(self) -> None:
        if self.alerting is not None:
            await self.alerting.close()
        await super().flush()

    async def _roll(self) -> None:
        self.service.roll_day()
        await self.service.durable()
