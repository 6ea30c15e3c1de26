"""The process every service runs in: gRPC, health, reflection, ops HTTP, readiness, the stop sequence.

A service subclasses :class:`Server` and adds what is its own: the servicers
(``servicers``), how it comes back to its state before taking calls
(``recover``, which calls ``serve`` when ready) and what it saves on the way
down (``flush``). Everything else is here once: server options, TLS and mutual
TLS, the auth and tracing interceptors, ``grpc.health.v1`` and reflection, the
ops HTTP server (``/health``, ``/ready``, ``/metrics``, profiling), readiness
gating (calls get UNAVAILABLE until ready), SIGTERM/SIGINT handling and the
stop sequence: not ready, drain, grace, cancel background tasks, flush, stop
HTTP, flush telemetry.
"""
from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
from typing import Any, Coroutine, Sequence

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Gauge

from riskcore import __version__
from riskcore_services.common.auth import TokenAuth
from riskcore_services.common.calls import CallHandling, add_servicer
from riskcore_services.common.config import Common
from riskcore_services.common.errors import PortInUse
from riskcore_services.common.events import EVENTS_SERVICE, EventStream
from riskcore_services.common.http import OpsServer
from riskcore_services.common.logging import get_logger
from riskcore_services.common.metrics import GrpcMetrics, new_registry

log = get_logger("server")


def check_port_free(host: str, port: int, option: str) -> None:
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


def server_credentials(config: Common) -> grpc.ServerCredentials | None:
    """TLS credentials from configuration (mutual TLS when a client CA is set), or None."""
    tls = config.tls
    if tls is None:
        return None
    pair = [(tls.key.read_bytes(), tls.cert.read_bytes())]
    if tls.client_ca is None:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(pair, root_certificates=tls.client_ca.read_bytes(),
                                       require_client_auth=True)


class Server:
    """One service's gRPC and HTTP servers, started and stopped on the running event loop.

    Parameters
    ----------
    config : Common
        The shared sections of the service's configuration.
    services : sequence of ServiceDescriptor
        The gRPC services it serves (their methods label the call metrics).
    name : str
        What log lines call the service ("risk engine", "control plane").

    Every service also serves ``Events.WatchEvents`` over :attr:`event_stream`,
    labelled with the subclass's :attr:`event_source`.
    """

    event_source = "service"  # the events' source label: risk, control, ingest, monitor

    def __init__(self, config: Common, services: Sequence[ServiceDescriptor], name: str):
        self.config = config
        self.name = name
        self.services = [*services, EVENTS_SERVICE]
        self.registry = new_registry()
        self.event_stream = EventStream(self.event_source, self.registry)
        self.grpc_metrics = GrpcMetrics(self.registry, [m.name for s in self.services for m in s.methods],
                                        __version__)
        self.ready = False
        # Read at scrape time: an alert can tell a service that runs but refuses calls from one that is down.
        Gauge("riskcore_ready", "1 while the service takes calls (/ready answers 200), else 0",
              registry=self.registry).set_function(lambda: float(self.ready))
        self.calls = CallHandling(TokenAuth(list(config.tokens)), self.grpc_metrics, config.log_requests,
                                  is_ready=lambda: self.ready)
        self.port = 0
        self.http_port = 0
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._ops = OpsServer(config.server.http_host, config.server.http_port, self.registry,
                              lambda: self.ready, profiling=config.profiling)
        self._tracer_provider: Any = None
        self._tasks: list[asyncio.Task] = []
        self._stopped = asyncio.Event()

    # -- what a service adds
    def servicers(self) -> list[tuple[ServiceDescriptor, object]]:
        """The (descriptor, servicer) pairs to register."""
        raise NotImplementedError

    async def recover(self) -> None:
        """Bring the service's state back after gRPC has started (calls get UNAVAILABLE meanwhile);
        call :meth:`serve` once calls may be taken. The default serves at once."""
        await self.serve()

    async def flush(self) -> None:
        """Save what must survive the process, once gRPC has stopped taking calls."""

    def started(self) -> dict:
        """Fields of the service's start-up log line."""
        return {}

    # -- the shared lifecycle
    def spawn(self, coroutine: Coroutine) -> asyncio.Task:
        """Run a background task for the server's life (cancelled by :meth:`stop`)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.append(task)
        return task

    async def start(self) -> None:
        """Bind, start gRPC (NOT_SERVING), start HTTP, then ``recover``."""
        interceptors = []
        if self.config.tracing_endpoint:
            from riskcore_services.common.tracing import tracing_interceptors

            interceptors, self._tracer_provider = tracing_interceptors(self.config.service_name,
                                                                       self.config.tracing_endpoint)
        server = self.config.server
        limit = server.max_message_bytes
        self._server = grpc.aio.server(interceptors=interceptors, options=[
            ("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0)])
        for descriptor, servicer in [*self.servicers(), (EVENTS_SERVICE, self.event_stream.servicer(self.calls))]:
            add_servicer(self._server, descriptor, servicer)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [s.full_name for s in self.services]
            + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], self._server)
        address = f"{server.host}:{server.port}"
        credentials = server_credentials(self.config)
        check_port_free(server.host, server.port, "--port")
        check_port_free(server.http_host, server.http_port, "--http-port")
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
        await self.set_serving(False)
        await self._server.start()
        await self.recover()
        log.info(f"{self.name} started", grpc_port=self.port, http_port=self.http_port,
                 grpc_experiments=os.environ.get("GRPC_EXPERIMENTS"), tls=credentials is not None,
                 auth=self.calls.auth.enabled, **self.started())

    async def serve(self) -> None:
        """Take calls: health SERVING and ready."""
        await self.set_serving(True)
        self.ready = True

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *(s.full_name for s in self.services)]:
            await self._health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop: not ready, refuse new calls, let in-flight calls finish within the grace."""
        if self._server is None or self._stopped.is_set():
            return
        grace = self.config.server.grace_seconds if grace is None else grace
        self.ready = False
        await self.set_serving(False)
        log.info(f"{self.name} stopping", grace_seconds=grace)
        # Drain: for a moment new calls are answered UNAVAILABLE (clients retry
        # elsewhere, load balancers see NOT_SERVING) before the server closes.
        await asyncio.sleep(min(grace, self.config.server.drain_seconds))
        await self._server.stop(grace)
        for task in self._tasks:
            task.cancel()
        await self.flush()
        await self._ops.stop()
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
        self._stopped.set()
        log.info(f"{self.name} stopped")

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
