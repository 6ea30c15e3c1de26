"""Real risk servers for the service tests: in-process on a background loop, or child processes.

Every server binds 127.0.0.1 on a port the operating system picked; every
call carries a deadline and every server and child process is stopped by the
fixture that made it, so a broken service fails a test instead of hanging the
suite.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import importlib.resources
import ipaddress
import json
import os
import pathlib
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from riskcore_services.common.logging import configure_logging
from riskcore_services.proto import risk_pb2, risk_pb2_grpc
from riskcore_services.risk.config import RiskConfig, load_config
from riskcore_services.risk.server import RiskServer

# Seconds allowed for any single RPC, HTTP request or server start/stop in these tests.
DEADLINE = 5.0
SAMPLE_TOML = importlib.resources.files("riskcore_services.risk").joinpath("sample.toml").read_text()


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (for child processes, which must be told a port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = DEADLINE) -> tuple[int, str]:
    """GET ``url``; return (status, body) for any HTTP status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Metrics:
    """One parsed scrape of ``/metrics``."""

    def __init__(self, text: str):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels) -> float:
        """The value of the sample named ``sample`` with exactly these labels (0 when absent)."""
        for family in self.families.values():
            for s in family.samples:
                if s.name == sample and s.labels == labels:
                    return s.value
        return 0.0

    def samples(self, sample: str) -> list:
        return [s for f in self.families.values() for s in f.samples if s.name == sample]


class _Endpoints:
    """What in-process and child-process servers share: addresses, channels, HTTP."""

    port: int
    http_port: int

    def _init_endpoints(self) -> None:
        self._channels: list[grpc.Channel] = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def http(self, path: str, timeout: float = DEADLINE) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.http_port}{path}", timeout)

    def metrics(self) -> Metrics:
        status, text = self.http("/metrics")
        assert status == 200, text
        return Metrics(text)

    def metrics_when(self, settled) -> Metrics:
        """Scrape until ``settled(metrics)`` holds (a failed call is counted just after its status is sent)."""
        end = time.monotonic() + DEADLINE
        metrics = self.metrics()
        while not settled(metrics) and time.monotonic() < end:
            time.sleep(0.01)
            metrics = self.metrics()
        return metrics

    def channel(self, credentials: grpc.ChannelCredentials | None = None, target: str | None = None,
                options=()) -> grpc.Channel:
        target = target or self.target
        channel = (grpc.insecure_channel(target, options=list(options)) if credentials is None
                   else grpc.secure_channel(target, credentials, options=list(options)))
        self._channels.append(channel)
        return channel

    def stub(self, **kwargs) -> risk_pb2_grpc.RiskEngineStub:
        return risk_pb2_grpc.RiskEngineStub(self.channel(**kwargs))

    def _close_channels(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels.clear()


class InProcessServer(_Endpoints):
    """A :class:`RiskServer` running on its own asyncio loop in a daemon thread."""

    def __init__(self, config: RiskConfig, engine=None, **options):
        self._init_endpoints()
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
        self._close_channels()
        try:
            self.stop()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(DEADLINE)


class ChildServer(_Endpoints):
    """``python -m riskcore_services.risk`` in a child process, on ports picked by the test."""

    def __init__(self, directory: pathlib.Path, config: pathlib.Path | None = None, args=(),
                 command=("-m", "riskcore_services.risk")):
        self._init_endpoints()
        self.port, self.http_port = free_port(), free_port()
        while self.http_port == self.port:
            self.http_port = free_port()
        self.log_path = directory / f"server-{self.port}.log"
        argv = [sys.executable, *command, "--port", str(self.port), "--http-port", str(self.http_port), *args]
        if config is not None:
            argv += ["--config", str(config)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=directory,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> "ChildServer":
        """Poll ``/ready`` until it answers 200; fail with the server's output if it never does."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if self.http("/ready", timeout=1.0)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output()}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        return self.process.wait(timeout)

    def close(self) -> None:
        self._close_channels()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(DEADLINE)


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


def _spawner(directory: pathlib.Path):
    children: list[ChildServer] = []

    def start(config: pathlib.Path | None = None, args=(), command=("-m", "riskcore_services.risk")) -> ChildServer:
        child = ChildServer(directory, config, args, command)
        children.append(child)
        return child

    return start, children


@pytest.fixture
def spawn(tmp_path):
    """Start child-process servers: ``spawn(config_path=None, args=())``; all are killed afterwards."""
    start, children = _spawner(tmp_path)
    yield start
    for child in children:
        child.close()


@pytest.fixture(scope="module")
def spawn_for_module(tmp_path_factory):
    """``spawn`` for module-scoped scenarios; returns (spawn, directory)."""
    directory = tmp_path_factory.mktemp("servers")
    start, children = _spawner(directory)
    yield start, directory
    for child in children:
        child.close()


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
