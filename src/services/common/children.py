"""Child processes, and how to reach a server: what ``riskcore up`` runs its stack with.

A child writes its output to a log file in the folder it runs in, every wait
is bounded and names what it waited for (with the end of the child's log),
and whoever starts a child stops it. grpc is only imported to open a channel,
so a parent process can choose grpcio's I/O for its children before anything
imports it. The test and benchmark harness (``riskcore_services.testing``)
builds its servers on these.
"""
from __future__ import annotations

import json
import os
import pathlib
import signal as signals
import subprocess
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, TypeVar

if TYPE_CHECKING:
    from typing import Self

    import grpc

__all__ = ["HOST", "HTTP_TIMEOUT", "LOG_TAIL", "START_TIMEOUT", "STOP_TIMEOUT", "ChildExited", "ChildProcess",
           "Endpoints", "http_get", "log_events", "wait_until"]

HOST = "127.0.0.1"
# Seconds for one HTTP request, for a server or nats-server to come up (a large recovery included),
# and for a child to exit once told to.
HTTP_TIMEOUT = 5.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Characters of a child's log quoted when it fails.
LOG_TAIL = 4000

_T = TypeVar("_T")


class ChildExited(RuntimeError):
    """A child process exited while it was expected to run; the message ends with its log."""



def http_get(url: str, timeout: float = HTTP_TIMEOUT) -> tuple[int, str]:
    """GET ``url``; return (status, body) for any HTTP status (OSError when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def wait_until(predicate: Callable[[], _T | None], timeout: float, what: str, interval: float = 0.02) -> _T:
    """Poll ``predicate`` until it returns something true and return that; TimeoutError naming ``what``."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)



def log_events(text: str, event: str | None = None) -> list[dict[str, Any]]:
    """The JSON log lines of a process's output (others, such as tracebacks, are skipped); only those
    whose ``event`` is ``event`` when given."""
    found = []
    for line in text.splitlines():
        # The substring test first: a server's log can be long, and most lines are other events.
        if line.startswith("{") and (event is None or f'"{event}"' in line):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if event is None or record.get("event") == event:
                found.append(record)
    return found


class ChildProcess:
    """A child process with its output in a log file in ``directory`` (its working directory).

    Described here, run by :meth:`start`, which may run it again once it has
    exited (each run gets a log file of its own: ``name.log``, ``name-2.log``...).
    ``env`` defaults to this process's environment; ``PYTHONUNBUFFERED=1`` is
    added so the log is current. ``log_output=False`` sends the output nowhere;
    ``popen`` goes to :class:`subprocess.Popen` (``stdout=subprocess.PIPE`` to
    read it instead).
    """

    def __init__(self, name: str, argv: Sequence[str], directory: pathlib.Path,
                 env: dict[str, str] | None = None, *, log_output: bool = True, **popen: Any):
        self.name = name
        self.argv = list(argv)
        self.directory = directory
        self.env = env
        self.log_output = log_output
        self.log_path: pathlib.Path | None = None
        self.started = 0.0              # time.perf_counter() at the last start
        self._popen = popen
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Run the process (again, if it has exited)."""
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.process.pid})")
        self.log_path = self._new_log_path()
        env = {**(os.environ if self.env is None else self.env), "PYTHONUNBUFFERED": "1"}
        popen = dict(self._popen)
        self.started = time.perf_counter()
        with open(self.log_path if self.log_output else os.devnull, "wb") as log:
            self._process = subprocess.Popen(self.argv, stdout=popen.pop("stdout", log),
                                             stderr=popen.pop("stderr", log), cwd=self.directory,
                                             env=env, **popen)
        return self

    def _new_log_path(self) -> pathlib.Path:
        path, run = self.directory / f"{self.name}.log", 1
        while path.exists():
            run += 1
            path = self.directory / f"{self.name}-{run}.log"
        return path

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running (or last) process; RuntimeError before :meth:`start`."""
        if self._process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._process

    def output(self, tail: int | None = None) -> str:
        """What the last run wrote so far (its last ``tail`` characters)."""
        if self.log_path is None:
            return ""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text if tail is None else text[-tail:]

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines of the last run (whose ``event`` is ``event``, when given)."""
        return log_events(self.output(), event)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def check_running(self) -> None:
        """Raise :class:`ChildExited`, with the end of the log, unless the process runs."""
        if not self.running():
            raise ChildExited(f"{self.name} exited with {self.process.returncode}:\n{self.output(LOG_TAIL)}")

    def wait_log(self, event: str, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """The latest log line whose ``event`` is ``event``, once there is one (ChildExited if it exits first)."""
        def logged() -> dict[str, Any] | None:
            self.check_running()
            found = self.events(event)
            return found[-1] if found else None
        return wait_until(logged, timeout, f"{self.name} to log {event!r}")

    def signal(self, sig: int = signals.SIGTERM) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """The exit status; TimeoutError, with the end of the log, if it still runs after ``timeout``."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name} still running after {timeout} s:\n{self.output(LOG_TAIL)}") from None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; return the exit status."""
        if self.running():
            self.process.send_signal(signals.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return None if self._process is None else self._process.returncode

    def kill(self) -> None:
        """SIGKILL (no handler runs, nothing is flushed) and reap it."""
        if self.running():
            self.process.kill()
        if self._process is not None:
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass  # unkillable (a stuck disk): leave it rather than hang the run

    def close(self) -> None:
        """Kill what still runs (teardown)."""
        self.kill()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far, all its threads (from /proc)."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        # Counted from after the command name: utime and stime are the file's 14th and 15th fields.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Endpoints:
    """What a test or benchmark reaches a server by: its gRPC ``port`` and its HTTP ``http_port``
    (``/health``, ``/ready``, ``/metrics``) on 127.0.0.1, and the gRPC channels opened to it."""

    port: int
    http_port: int

    def __init__(self) -> None:
        self._channels: list[grpc.Channel] = []

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    def http(self, path: str, timeout: float = HTTP_TIMEOUT) -> tuple[int, str]:
        """GET ``path`` from the HTTP side: (status, body); OSError while nothing listens."""
        return http_get(f"http://{HOST}:{self.http_port}{path}", timeout)

    def ready_status(self) -> int | None:
        """``/ready``'s status, or None while nothing listens."""
        try:
            return self.http("/ready", timeout=1.0)[0]
        except OSError:
            return None

    def channel(self, credentials: grpc.ChannelCredentials | None = None, target: str | None = None,
                options: Iterable[tuple[str, Any]] = ()) -> grpc.Channel:
        """A channel to the server (closed by :meth:`close_channels`)."""
        import grpc  # here, not at the top: see the module's notes

        target = target or self.target
        channel = (grpc.insecure_channel(target, options=list(options)) if credentials is None
                   else grpc.secure_channel(target, credentials, options=list(options)))
        self._channels.append(channel)
        return channel

    def close_channels(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels.clear()
