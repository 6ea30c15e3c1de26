"""Child processes of the service and durability benchmarks: servers, clients, nats-server.

Everything runs on 127.0.0.1 on ports picked here. Every child is registered
with a :class:`Children` scope that kills whatever is still running when the
scope ends (``finally``), and every wait is bounded, so a broken server fails
its case instead of hanging the run. The servers, nats-server and the scope
are the harness the tests share (:mod:`riskcore_services.testing`); the echo
server and the client processes are the benchmarks' own.
"""
from __future__ import annotations

import json
import os
import pathlib
import queue
import subprocess
import sys
import threading
import time
from typing import Callable

from riskcore_services import testing
from riskcore_services.common.grpc_io import LEGACY_IO_EXPERIMENTS
from riskcore_services.testing import START_TIMEOUT, STOP_TIMEOUT, ChildProcess, NatsServer, ServerProcess

# Children run in the run's scratch folder; they import ``benchmarks`` from this checkout.
REPO = pathlib.Path(__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    """This process's environment, with the repository on ``PYTHONPATH`` (children run ``benchmarks.*``)."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def grpc_env(legacy_io: bool) -> dict[str, str]:
    """:func:`child_env` with ``GRPC_EXPERIMENTS`` set to :data:`LEGACY_IO_EXPERIMENTS` or to ""
    (grpcio's defaults, which the server then keeps instead of applying its own default)."""
    env = child_env()
    env["GRPC_EXPERIMENTS"] = LEGACY_IO_EXPERIMENTS if legacy_io else ""
    return env


class Children(testing.Children):
    """A scope owning child processes: ``with Children(directory) as kids:``; all are killed at its end.

    Each factory starts its child.
    """

    def risk_server(self, name: str, config: pathlib.Path, env: dict[str, str], log_output: bool = True
                    ) -> ServerProcess:
        """``python -m riskcore_services.risk --config C --port P --http-port H``; ``wait_ready()`` sets its
        ``ready_seconds``."""
        return self.add(ServerProcess(name, self.directory, config, env=env, log_output=log_output)).start()

    def echo_server(self, name: str, env: dict[str, str], response_hex: str | None = None) -> "EchoServerProcess":
        return self.add(EchoServerProcess(name, self.directory, env, response_hex)).start()

    def nats_server(self, name: str = "nats-server") -> NatsServer:
        return self.add(NatsServer(self.directory, name)).start()

    def client(self, spec: dict, env: dict[str, str], module: str = "benchmarks.service_client") -> "ClientProcess":
        return self.add(ClientProcess(spec, self.directory, env, module)).start()


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


class EchoServerProcess(ChildProcess):
    """``python -m benchmarks.echo_server`` on a free port."""

    def __init__(self, name: str, directory: pathlib.Path, env: dict[str, str], response_hex: str | None):
        argv = [sys.executable, "-m", "benchmarks.echo_server", "--port", "0"]
        if response_hex is not None:
            argv += ["--response", response_hex]
        super().__init__(name, argv, directory, env, stdout=subprocess.PIPE)
        self.port = 0

    def start(self) -> "EchoServerProcess":
        super().start()
        self._reader = _LineReader(self.process.stdout)
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        try:
            line = self._reader.next(timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name} did not start in {timeout} s:\n{self.output(4000)}") from None
        if not line or not line.startswith("listening "):
            raise RuntimeError(f"{self.name} did not start ({line!r}):\n{self.output(4000)}")
        self.port = int(line.split()[1])


class ClientProcess(ChildProcess):
    """``python -m MODULE SPEC`` (``benchmarks.service_client`` unless told): ready, released, result (see
    that module)."""

    def __init__(self, spec: dict, directory: pathlib.Path, env: dict[str, str],
                 module: str = "benchmarks.service_client"):
        spec = {**spec, "directory": str(directory)}
        super().__init__(spec["name"], [sys.executable, "-m", module, json.dumps(spec)],
                         directory, env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def start(self) -> "ClientProcess":
        super().start()
        self._reader = _LineReader(self.process.stdout)
        return self

    def message(self, key: str, timeout: float) -> dict:
        end = time.perf_counter() + timeout
        while True:
            try:
                line = self._reader.next(max(0.0, end - time.perf_counter()))
            except queue.Empty:
                raise TimeoutError(f"client {self.name}: no {key} after {timeout} s:\n{self.output(4000)}") from None
            if line is None:
                self.process.wait(STOP_TIMEOUT)
                raise RuntimeError(f"client {self.name} exited with {self.process.returncode} before its {key}:\n"
                                   f"{self.output(4000)}")
            if line.startswith("{"):
                message = json.loads(line)
                if key in message:
                    return message

    def wait_ready(self, timeout: float) -> dict:
        return self.message("ready", timeout)

    def release(self) -> None:
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()

    def result(self, timeout: float) -> dict:
        result = self.message("result", timeout)["result"]
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
