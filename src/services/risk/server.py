"""Assemble and run the risk service: gRPC server, health, reflection, ops HTTP.

``RiskServer`` owns the process concerns: readiness, TLS, tracing, signal
handling and graceful shutdown. Tests construct it with port 0 and read the
bound ports back.
"""
from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from riskcore import Limits, ManualClock, __version__
from services.common.auth import TokenAuth
from services.common.calls import CallHandling, add_servicer
from services.common.http import OpsServer
from services.common.schedule import DayRoller, Sleep, TimeNs
from services.common.logging import get_logger
from services.common.metrics import GrpcMetrics, new_registry
from services.proto import risk_pb2
from services.risk.config import RiskConfig, build_engine, config_drift, roll_clock_time
from services.risk.journal import SqliteJournal
from services.risk.journal import JournalError
from services.risk.replication import JournalGap, Lease, NatsJournal
from services.risk.metrics import RiskMetrics
from services.risk.service import RiskService, limits_to_proto
from services.risk.servicer import make_servicer

log = get_logger("risk.server")

SERVICE_NAME = risk_pb2.DESCRIPTOR.services_by_name["RiskEngine"].full_name
METHODS = [m.name for m in risk_pb2.DESCRIPTOR.services_by_name["RiskEngine"].methods]


class PortInUse(RuntimeError):
    """A port the server must listen on is taken; the message names it and the option that changes it."""


def _check_port_free(host: str, port: int, option: str) -> None:
    """Raise PortInUse when something already listens on ``host:port`` (0 always binds)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return  # the bind itself reports an unusable host
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {port} on {host} is in use; choose another with {option}") from None


def server_credentials(config: RiskConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from configuration (mutual TLS when a client CA is set), or None."""
    tls = config.tls
    if tls is None:
        return None
    pair = [(tls.key.read_bytes(), tls.cert.read_bytes())]
    if tls.client_ca is None:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(pair, root_certificates=tls.client_ca.read_bytes(),
                                       require_client_auth=True)


class RiskServer:
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
        waits (tests pass a :class:`~services.common.schedule.ManualTime`
        and its ``sleep``).
    """

    def __init__(self, config: RiskConfig, engine=None, *, apply_config: bool = False,
                 time_ns: TimeNs = time.time_ns, sleep: Sleep = asyncio.sleep):
        self.config = config
        self.apply_config = apply_config
        state = config.state
        self.roller = None if state.roll_time is None else DayRoller(
            roll_clock_time(state.roll_time), state.roll_timezone, time_ns, sleep)
        self._drift_reported = False
        self.registry = new_registry()
        self.engine = engine if engine is not None else build_engine(config, clock=ManualClock(time_ns()))
        if state.backend == "jetstream":
            self.journal = NatsJournal(list(state.nats_servers), state.name, state.replicas)
        elif state.path is not None:
            self.journal = SqliteJournal(str(state.path), state.synchronous)
        else:
            self.journal = None
        self.role = "standalone" if state.backend == "sqlite" else "starting"
        self._lease: Lease | None = None
        self._tasks: list[asyncio.Task] = []
        self.service = RiskService(self.engine, config.default_account, RiskMetrics(self.registry, self.engine),
                                   self.journal, state.snapshot_every, config.order_capacity, time_ns)
        self.grpc_metrics = GrpcMetrics(self.registry, METHODS, __version__)
        self.ready = False
        self.calls = CallHandling(TokenAuth(list(config.tokens)), self.grpc_metrics, config.log_requests,
                                  is_ready=lambda: self.ready)
        self.port = 0
        self.http_port = 0
        self.recovery: dict | None = None
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._ops = OpsServer(config.server.http_host, config.server.http_port, self.registry,
                              lambda: self.ready, profiling=config.profiling)
        self._tracer_provider = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        """Bind and start serving; ready once gRPC accepts calls."""
        interceptors = []
        if self.config.tracing_endpoint:
            from services.common.tracing import tracing_interceptors

            interceptors, self._tracer_provider = tracing_interceptors(self.config.service_name,
                                                                       self.config.tracing_endpoint)
        limit = self.config.server.max_message_bytes
        self._server = grpc.aio.server(interceptors=interceptors, options=[
            ("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0)])
        add_servicer(self._server, risk_pb2.DESCRIPTOR.services_by_name["RiskEngine"],
                     make_servicer(self.service, self.calls, self))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self._server)
        server = self.config.server
        address = f"{server.host}:{server.port}"
        credentials = server_credentials(self.config)
        _check_port_free(server.host, server.port, "--port")
        _check_port_free(server.http_host, server.http_port, "--http-port")
        try:
            if credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, credentials)
        except RuntimeError:
            raise PortInUse(f"cannot listen on {address} for gRPC; choose another port with --port") from None
        try:
            self.http_port = await self._ops.start()
        except OSError as error:
            raise PortInUse(f"cannot listen on {server.http_host}:{server.http_port} for HTTP ({error.strerror}); "
                            f"choose another port with --http-port") from None
        await self._set_serving(False)
        await self._server.start()
        if self.journal is not None:
            self.journal.on_failure = self._journal_failed
        if isinstance(self.journal, SqliteJournal):
            # Not ready (health NOT_SERVING, calls UNAVAILABLE) until the state is back.
            base, state, records = self.journal.load()
            self.recovery = await self.service.recover(base, state, records)
            self._recovered()
            self.journal.start(asyncio.get_running_loop())
            if state is None and not self.recovery["replayed"]:
                self.service.snapshot()  # the configuration's state is the base every replay starts from
            await self._apply_config()
            await self._serve()
        elif isinstance(self.journal, NatsJournal):
            await self.journal.connect()
            self._lease = Lease(self.journal, f"{socket.gethostname()}:{os.getpid()}:{self.port}",
                                self.config.state.lease_seconds)
            if await self._lease.try_acquire():
                self._hold_lease()
                await self._reload()
                await self._become_primary()
            else:
                # A standby starts from the primary's snapshot, never from its own configuration.
                while not await self.journal.has_snapshot():
                    await asyncio.sleep(0.05)
                await self._reload()
                self._follow()
        else:
            await self._serve()
        log.info("risk engine started", grpc_port=self.port, http_port=self.http_port, role=self.role,
                 grpc_experiments=os.environ.get("GRPC_EXPERIMENTS"),
                 tls=credentials is not None, auth=self.calls.auth.enabled, journal=getattr(self.journal, "path", None),
                 accounts=len(self.engine.accounts), instruments=len(self.engine.symbols))

    async def _reload(self) -> None:
        """Recover from the newest snapshot and the stream after it (again if a purge races us)."""
        for attempt in range(20):
            try:
                base, state, records = await self.journal.load()
            except JournalGap as gap:
                log.warning("snapshot replaced while loading; loading again", error=str(gap), attempt=attempt)
                continue
            self.recovery = await self.service.recover(base, state, records)
            self._recovered()
            return
        raise JournalError(f"{self.journal.path}: could not load a consistent snapshot and stream")

    def _journal_failed(self, error: BaseException) -> None:
        """The journal cannot make writes durable: stop taking calls rather than answer without it."""
        log.error("journal failed; no longer serving", journal=self.journal.path, error=str(error))
        self.ready = False
        asyncio.get_running_loop().create_task(self._set_serving(False))

    def _recovered(self) -> None:
        self.engine = self.service.engine
        log.info("state recovered", journal=self.journal.path, **self.recovery)
        if not self._drift_reported:
            self._drift_reported = True
            for drift in config_drift(self.config, self.engine):
                log.warning("configuration file differs from the recovered state", what=drift.what,
                            target=drift.target, file=drift.file, state=drift.state,
                            fix=("restart with --apply-config or use SetLimits/SetTradingState" if drift.applicable
                                 else "not applied: start on a new journal to change it"))

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
            self._tasks.append(asyncio.create_task(self.roller.run(lambda: self.service.last_roll_ns, self._roll)))
        await self._set_serving(True)
        self.ready = True

    def _follow(self) -> None:
        """Run as a hot standby: apply the primary's records; take over when its lease expires."""
        self.role = "standby"
        service = self.service

        def apply(record) -> None:
            service.replay((record,))

        async def follow_forever() -> None:
            while True:
                try:
                    await self.journal.follow(self.journal.last_seq, apply)
                except JournalGap as gap:
                    log.warning("standby fell behind a snapshot; reloading", error=str(gap))
                    await self._reload()

        self._follower = asyncio.create_task(follow_forever())
        self._tasks.append(self._follower)
        self._tasks.append(asyncio.create_task(self._take_over_when_free()))
        log.info("standby following the primary", holder_seq=self.journal.last_seq)

    async def _take_over_when_free(self) -> None:
        while True:
            stale = await self._lease.wait_expired()
            if await self._lease.try_acquire(stale=stale):
                self._hold_lease()
                await self._become_primary()
                return

    def _hold_lease(self) -> None:
        """Renew the lease from the moment it is ours (a long drain must not let it lapse)."""
        self._tasks.append(asyncio.create_task(self._lease.hold(self._lost_lease)))

    async def promote(self) -> str:
        """Operator failover: take the lease now and serve as the primary."""
        if self.role == "standby":
            await self._lease.try_acquire(force=True)
            self._hold_lease()
            # Give the old primary a renewal period to see it lost the lease and stop.
            await asyncio.sleep(self._lease.ttl / 2)
            await self._become_primary()
        return self.role

    async def _become_primary(self) -> None:
        if self.role == "standby":
            # Drain: every record the old primary had acknowledged is applied before we write.
            end = await self.journal.stream_last_seq()
            while self.service.last_seq < end:
                if self._follower.done():
                    raise JournalError(f"standby stopped following: {self._follower.exception()}")
                await asyncio.sleep(0.002)
            self._follower.cancel()
            self.journal.last_seq = self.journal.durable_seq = self.service.last_seq
        if self.role == "fenced":
            return  # lost the lease again while loading or draining: someone else serves
        first_start = self.role == "starting" and self.recovery["snapshot_seq"] == 0 and not self.recovery["replayed"]
        self.role = "primary"
        self.journal.start(asyncio.get_running_loop())
        if first_start and not await self.journal.has_snapshot():
            self.service.snapshot()  # standbys start from this, not from their own configuration
        await self._apply_config()
        await self._serve()
        log.warning("serving as the primary", last_seq=self.service.last_seq)

    async def _lost_lease(self, reason: str) -> None:
        """Fence: another engine is (or may be) the primary; stop taking calls at once."""
        self.ready = False
        self.role = "fenced"
        await self._set_serving(False)
        log.error("lost the primary lease; no longer serving", reason=reason)

    async def _roll(self) -> None:
        self.service.roll_day()
        await self.service.durable()

    async def _set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self._health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop: not ready, refuse new calls, let in-flight calls finish within the grace."""
        if self._server is None or self._stopped.is_set():
            return
        grace = self.config.server.grace_seconds if grace is None else grace
        self.ready = False
        await self._set_serving(False)
        log.info("risk engine stopping", grace_seconds=grace)
        # Drain: for a moment new calls are answered UNAVAILABLE (clients retry
        # elsewhere, load balancers see NOT_SERVING) before the server closes.
        await asyncio.sleep(min(grace, self.config.server.drain_seconds))
        await self._server.stop(grace)
        for task in self._tasks:
            task.cancel()
        if self.journal is not None:
            if self.role in ("standalone", "primary"):
                self.service.snapshot()
            await self.journal.aclose()
        await self._ops.stop()
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
        self._stopped.set()
        log.info("risk engine stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def run_until_signal(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        log.info("signal received")
        await self.stop()
