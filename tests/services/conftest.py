"""Real risk servers for the service tests: in-process on a background loop, or child processes.

Every server binds 127.0.0.1 on a port the operating system picked; every
call carries a deadline and every server and child process is stopped by the
fixture that made it, so a broken service fails a test instead of hanging the
suite. Ports, child processes, HTTP and /metrics come from the harness the
benchmarks share, :mod:`riskcore_services.testing`.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import importlib.resources
import ipaddress
import json
import pathlib
import queue
import threading

import grpc
import pytest

from riskcore_services.common.logging import configure_logging, flush_logs
from riskcore_services.proto import risk_pb2, risk_pb2_grpc
from riskcore_services.risk.config import RiskConfig, load_config
from riskcore_services.risk.server import RiskServer
from riskcore_services.testing import Children, Endpoints, NatsServer, ServerProcess, free_port
from tests.services.ingest.service_helpers import IngestProcess

# Seconds allowed for any single RPC, HTTP request or server start/stop in these tests.
DEADLINE = 5.0
SAMPLE_TOML = importlib.resources.files("riskcore_services.risk").joinpath("sample.toml").read_text()


class _Stubs:
    """Risk engine stubs on the channels of an :class:`~riskcore_services.testing.Endpoints`."""

    def stub(self, **kwargs) -> risk_pb2_grpc.RiskEngineStub:
        return risk_pb2_grpc.RiskEngineStub(self.channel(**kwargs))


class InProcessServer(_Stubs, Endpoints):
    """A :class:`RiskServer` running on its own asyncio loop in a daemon thread."""

    def __init__(self, config: RiskConfig, engine=None, **options):
        Endpoints.__init__(self)
        self.config = config
        self._options = options
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="risk-server-loop", daemon=True)
        self._thread.start()
        self.server: RiskServer = self.run(self._build(engine))
        self.started = False

    async def _build(self, engine) -> RiskServer:
        return RiskServer(self.config, engine, **self._options)

    def run(self, coroutine, timeout: float = DEADLINE):
        """Run ``coroutine`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def run_on_loop(self, function, *args):
        """Run a plain function on the loop thread (the engine is single-threaded) and return its result."""
        async def call():
            return function(*args)
        return self.run(call())

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def http_port(self) -> int:
        return self.server.http_port

    def start(self) -> "InProcessServer":
        self.run(self.server.start())
        self.started = True
        return self

    def stop(self, grace: float = 0.0) -> None:
        if self.started:
            self.started = False
            self.run(self.server.stop(grace), timeout=grace + DEADLINE)

    def stop_in_background(self, grace: float):
        """Begin a graceful stop and return its concurrent future."""
        self.started = False
        return asyncio.run_coroutine_threadsafe(self.server.stop(grace), self.loop)

    def close(self) -> None:
        self.close_channels()
        try:
            self.stop()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(DEADLINE)


class ChildServer(_Stubs, ServerProcess):
    """``python -m riskcore_services.risk`` (or ``command``) in a child process, on ports picked by the test."""

    def __init__(self, directory: pathlib.Path, config: pathlib.Path | None = None, args=(),
                 command=("-m", "riskcore_services.risk")):
        super().__init__("server", directory, config, args, command=command)


def for_tests(config: RiskConfig, port: int = 0, http_port: int = 0, state_path=None) -> RiskConfig:
    """``config`` on 127.0.0.1 at the given ports (0: picked by the operating system).

    State is kept in memory unless ``state_path`` names a journal: the sample's
    journal is a file relative to the working directory, which would carry state
    from one test's server into the next.
    """
    return dataclasses.replace(
        config,
        server=dataclasses.replace(config.server, host="127.0.0.1", port=port, http_host="127.0.0.1",
                                   http_port=http_port),
        state=dataclasses.replace(config.state, path=state_path))


@pytest.fixture(scope="session")
def pick_port():
    """:func:`free_port`: a port to hand to a server that must come back on the same port."""
    return free_port


@pytest.fixture(scope="session", autouse=True)
def _logging_for_tests():
    # Uncached loggers, so structlog.testing.capture_logs sees every line the services log.
    configure_logging("info", cache=False)


@pytest.fixture(autouse=True)
def _lines_written_before_the_next_test():
    """A call's access line is written by the log writer's thread after the answer: let one test's lines out
    (its servers have stopped by then: an autouse fixture is torn down last) before the next test captures."""
    yield
    flush_logs()


def write_config(directory: pathlib.Path, extra: str = "", settings: dict | None = None,
                 name: str = "riskcore.toml") -> pathlib.Path:
    """The shipped sample with ``key = value`` lines replaced by ``settings`` and ``extra`` TOML appended,
    written to ``directory/name``."""
    text = SAMPLE_TOML
    for key, value in (settings or {}).items():
        lines = [line for line in text.splitlines() if line.startswith(f"{key} =")]
        assert lines, f"no {key} in the sample"
        text = text.replace(lines[0], f"{key} = {json.dumps(value)}", 1)
    path = directory / name
    path.write_text(text + "\n" + extra)
    return path


@pytest.fixture(scope="session")
def config_writer():
    """:func:`write_config`, for fixtures that cannot use tmp_path."""
    return write_config


@pytest.fixture
def config_file(tmp_path):
    """``config_file(extra="", settings={}, name=...)``: :func:`write_config` into tmp_path."""
    def write(extra: str = "", settings: dict | None = None, name: str = "riskcore.toml") -> pathlib.Path:
        return write_config(tmp_path, extra, settings, name)
    return write


@pytest.fixture
def build_server():
    """``build_server(config=None, engine=None, port=0, state_path=None, **options)``: an in-process server,
    not yet started, on 127.0.0.1 (in-memory state unless ``state_path``; ``options`` go to RiskServer);
    all are stopped afterwards."""
    servers: list[InProcessServer] = []

    def build(config: RiskConfig | None = None, engine=None, port: int = 0, state_path=None,
              **options) -> InProcessServer:
        server = InProcessServer(for_tests(config or load_config(None), port=port, state_path=state_path), engine,
                                 **options)
        servers.append(server)
        return server

    yield build
    for server in reversed(servers):
        server.close()


@pytest.fixture
def serve(build_server):
    """``serve(config=None, engine=None, port=0)``: a started in-process server."""
    def start(config: RiskConfig | None = None, engine=None, port: int = 0) -> InProcessServer:
        return build_server(config, engine, port).start()

    return start


@pytest.fixture
def server(serve) -> InProcessServer:
    """A fresh server on the shipped sample configuration."""
    return serve()


@pytest.fixture
def stub(server) -> risk_pb2_grpc.RiskEngineStub:
    return server.stub()


def _spawner(children: Children):
    def start(config: pathlib.Path | None = None, args=(), command=("-m", "riskcore_services.risk")) -> ChildServer:
        return children.add(ChildServer(children.directory, config, args, command)).start()

    return start


@pytest.fixture
def spawn(tmp_path):
    """Start child-process servers: ``spawn(config_path=None, args=(), command=...)``; all are killed afterwards."""
    with Children(tmp_path) as children:
        yield _spawner(children)


@pytest.fixture(scope="module")
def spawn_for_module(tmp_path_factory):
    """``spawn`` for module-scoped scenarios; returns (spawn, directory)."""
    with Children(tmp_path_factory.mktemp("servers")) as children:
        yield _spawner(children), children.directory


@dataclasses.dataclass(frozen=True)
class Certificates:
    """PEM files (and their bytes) for a test PKI."""

    directory: pathlib.Path
    ca: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes
    rogue_ca: bytes
    rogue_client_cert: bytes
    rogue_client_key: bytes


def _make_certificates(directory: pathlib.Path) -> Certificates:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def key_pem(key) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool, extensions=()):
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def authority(common_name: str):
        key = ec.generate_private_key(ec.SECP256R1())
        return key, certificate(common_name, key, common_name, key, ca=True)

    ca_key, ca = authority("riskcore test CA")
    rogue_key, rogue_ca = authority("someone else's CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("localhost", server_key, "riskcore test CA", ca_key, ca=False, extensions=[
        x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = certificate("trader-1", client_key, "riskcore test CA", ca_key, ca=False,
                              extensions=[x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])])
    rogue_client_key = ec.generate_private_key(ec.SECP256R1())
    rogue_client_cert = certificate("intruder", rogue_client_key, "someone else's CA", rogue_key, ca=False,
                                    extensions=[x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])])
    certs = Certificates(directory, ca, server_cert, key_pem(server_key), client_cert, key_pem(client_key),
                         rogue_ca, rogue_client_cert, key_pem(rogue_client_key))
    for file, data in (("ca.pem", certs.ca), ("server.pem", certs.server_cert), ("server.key", certs.server_key),
                       ("client.pem", certs.client_cert), ("client.key", certs.client_key)):
        (directory / file).write_bytes(data)
    return certs


@pytest.fixture
def certificates(tmp_path) -> Certificates:
    """A CA, a server certificate for localhost/127.0.0.1 and client certificates, as files in tmp_path."""
    return _make_certificates(tmp_path)


class BreachWatcher:
    """Reads a WatchBreaches stream on a thread; proves the subscription is live before a test relies on it."""

    def __init__(self, stub, metadata=(), admin_metadata=None):
        self.stub = stub
        self.metadata = tuple(metadata)
        self.admin_metadata = self.metadata if admin_metadata is None else tuple(admin_metadata)
        self.call = stub.WatchBreaches(risk_pb2.WatchRequest(), timeout=60, metadata=self.metadata)
        self.events: queue.Queue = queue.Queue()
        self.errors: list[grpc.RpcError] = []
        self._thread = threading.Thread(target=self._read, name="breach-watcher", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self.call:
                self.events.put(event)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.errors.append(error)

    def subscribed(self) -> "BreachWatcher":
        """Publish harmless state changes (EURUSD set ACTIVE) until one arrives, then drop them."""
        probe = risk_pb2.TradingStateRequest(symbol="EURUSD", state=risk_pb2.ACTIVE)
        for _ in range(50):
            self.stub.SetTradingState(probe, timeout=DEADLINE, metadata=self.admin_metadata)
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            assert (event.reason, event.symbol) == ("STATE_CHANGE", "EURUSD"), event
            self.drain()
            return self
        raise AssertionError(f"WatchBreaches delivered nothing ({self.errors})")

    def drain(self) -> None:
        """Drop the events delivered so far (probes)."""
        while True:
            try:
                self.events.get(timeout=0.2)
            except queue.Empty:
                return

    def next(self, timeout: float = DEADLINE) -> risk_pb2.Breach:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no breach event within {timeout} s ({self.errors})") from None

    def close(self) -> None:
        self.call.cancel()
        self._thread.join(DEADLINE)


@pytest.fixture
def watch_breaches():
    """``watch_breaches(stub, metadata=(), admin_metadata=None)``: a live WatchBreaches subscription,
    cancelled afterwards (the liveness probes are admin calls made with ``admin_metadata``)."""
    watchers: list[BreachWatcher] = []

    def watch(stub, metadata=(), admin_metadata=None) -> BreachWatcher:
        watcher = BreachWatcher(stub, metadata, admin_metadata)
        watchers.append(watcher)
        return watcher.subscribed()

    yield watch
    for watcher in watchers:
        watcher.close()


@pytest.fixture
def ingest():
    """``ingest(config, **options)``: a started in-process ingestion server (the ingest and control tests);
    all are closed afterwards."""
    made: list[IngestProcess] = []

    def start(config, **options) -> IngestProcess:
        process = IngestProcess(config, **options)
        made.append(process)
        return process.start()

    yield start
    for process in reversed(made):
        process.close()


@pytest.fixture
def nats_url(tmp_path):
    """A nats-server with JetStream on 127.0.0.1 (a free port, storage in tmp_path); killed at teardown."""
    with Children(tmp_path) as children:
        yield children.add(NatsServer(tmp_path)).start().wait_ready(10.0).url
