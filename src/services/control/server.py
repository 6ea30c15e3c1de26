"""The control plane's process: the common durable server plus the supervisor of the strategies.

``ControlServer`` adds to :class:`~riskcore_services.common.failover.DurableServer`
one :class:`~riskcore_services.control.supervisor.Supervisor`, its link to
the risk engine (a RiskClient, whose deadline, retries and breaker apply) and
the ``WatchEvents`` hub. With ``[state] path`` its desired state
(:mod:`~riskcore_services.control.desired`) is journaled in SQLite: at start
it is recovered and the strategies are found again (re-adopted, started or
left stopped) before it serves; the configuration file's strategies are
registered only when the journal does not know them. The heartbeat socket is
the journal's path plus ``.hb``. On the way down every strategy is stopped
(SIGTERM, grace, SIGKILL) before gRPC stops; their desired state stays.
"""
from __future__ import annotations

import pathlib
from typing import Any, Optional

from riskcore_services.common.errors import FailedPrecondition, Unavailable
from riskcore_services.common.fanout import FanOut
from riskcore_services.common.logging import get_logger
from riskcore_services.common.failover import DurableServer
from riskcore_services.control.config import ConfigError, ControlConfig
from riskcore_services.control.desired import DesiredState
from riskcore_services.control.lifecycle import State
from riskcore_services.control.metrics import register_metrics
from riskcore_services.control.servicer import make_servicer
from riskcore_services.control.supervisor import Event, RiskGate, Supervisor
from riskcore_services.proto import control_pb2

log = get_logger("control.server")

# The states a strategy_state event reports as trouble (active).
TROUBLE = frozenset({State.FAILED, State.BACKOFF, State.FAULTED})

CONTROL_PLANE = control_pb2.DESCRIPTOR.services_by_name["ControlPlane"]


def read_token(path: pathlib.Path, key: str) -> str:
    """The bearer token in ``path`` (surrounding whitespace dropped); ConfigError naming ``key`` if it cannot
    be read or is empty."""
    try:
        token = path.read_text().strip()
    except OSError as error:
        raise ConfigError(f"{key}: cannot read {str(path)!r}: {error.strerror}") from None
    if not token:
        raise ConfigError(f"{key}: {str(path)!r} is empty")
    return token


def make_risk_client(config: ControlConfig) -> Any:
    """A RiskClient for ``risk_target`` with the configured deadline and token (ConfigError if unreadable)."""
    from riskcore_services.risk.client import RiskClient

    token = None if config.risk_token_file is None else read_token(config.risk_token_file,
                                                                     "control.risk_token_file")
    return RiskClient(config.risk_target, token=token, deadline=config.risk_deadline)


class ControlServer(DurableServer):
    """The ControlPlane service over a :class:`Supervisor`.

    Parameters
    ----------
    config : ControlConfig
    risk_client : RiskClient, optional
        Defaults to one for ``config.risk_target``.
    """

    event_source = "control"

    def __init__(self, config: ControlConfig, risk_client: Optional[Any] = None):
        super().__init__(config, [CONTROL_PLANE], "control plane")
        self.config: ControlConfig = config
        self.gate = RiskGate(risk_client or make_risk_client(config), config.firm, config.pause_mode)
        self.events: FanOut[Optional[Event]] = FanOut()
        tokens = {account: read_token(path, f"control.account_tokens.{account}")
                  for account, path in config.account_tokens.items()}
        self.desired = self.durable = DesiredState(self.journal)
        heartbeats = None if config.state.path is None else f"{config.state.path}.hb"
        try:
            self.supervisor = Supervisor(config.timings(), config.policy(), self.gate, self._transition,
                                         risk_target=config.risk_target, risk_tokens=tokens,
                                         market_data_target=config.market_data_target or "", desired=self.desired,
                                         heartbeat_path=heartbeats)
        except ValueError as error:
            raise ConfigError(f"state.path: {error}") from None
        register_metrics(self.registry, self.supervisor)
        self.event_stream.conditions = self._conditions

    def _transition(self, event: Event) -> None:
        """A lifecycle transition: to WatchEvents subscribers, and to monitoring as a strategy_state event."""
        self.events.publish(event)
        self.event_stream.forward(self._strategy_event(event.strategy, event.state, event.reason,
                                                       int(event.time * 1e9)))

    def _strategy_event(self, name: str, state: State, reason: str, time_ns: int | None = None):
        # ``cause`` names a failure's kind where the reason tells it: heartbeat loss has rules of its own.
        cause = "heartbeat" if reason.startswith("heartbeat lost") else ""
        return self.event_stream.event("strategy_state", {"strategy": name, "state": state.name, "cause": cause},
                                       active=state in TROUBLE, detail=reason, time_ns=time_ns)

    def _conditions(self) -> list:
        supervisor = self.supervisor
        return [self._strategy_event(name, info["state"], info["last_error"])
                for name in supervisor.names() for info in (supervisor.info(name),)]

    def servicers(self):
        return [(CONTROL_PLANE, make_servicer(self, self.calls))]

    def started(self) -> dict:
        return dict(super().started(), risk_target=self.config.risk_target,
                    strategies=len(self.desired.strategies))

    async def writing(self) -> None:
        """The journal is ours: find its strategies again before serving."""
        await self.supervisor.recover_strategies()

    async def recover(self) -> None:
        """Recover the desired state and its strategies, serve, then register the configured strategies the
        journal does not know and start those of them marked ``start``."""
        await self.supervisor.open()
        await super().recover()
        new = [entry for entry in self.config.strategies if entry.name not in self.desired.strategies]
        for entry in new:
            await self.supervisor.register(entry.spec())
        for entry in new:
            if entry.start:
                try:
                    await self.supervisor.start(entry.name)
                except (Unavailable, FailedPrecondition) as error:
                    log.error("strategy not started", strategy=entry.name, error=str(error))

    async def stop(self, grace: float | None = None) -> None:
        self.ready = False                  # no start while the strategies are being stopped
        await self.supervisor.close()
        self.events.publish(None)           # ends the WatchEvents streams
        await super().stop(grace)

    async def flush(self) -> None:
        await super().flush()
        self.gate.close()
