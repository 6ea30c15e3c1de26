"""Fixtures of the monitor's tests: a real risk engine and monitor in child processes, and a
``WatchAlerts`` reader."""
from __future__ import annotations

import pathlib
import queue
import threading
from typing import Iterator

import grpc
import pytest

from riskcore_services.proto import monitor_pb2, monitor_pb2_grpc
from riskcore_services.testing import Children, ServerProcess

ALERT_TIMEOUT = 15.0
FIRING, RESOLVED = monitor_pb2.ALERT_STATUS_FIRING, monitor_pb2.ALERT_STATUS_RESOLVED

KILL_SWITCH_RULE = """
[[monitor.rules]]
name = "KillSwitchEngaged"
kind = "trading_state"
match = { account = "FIRM" }
states = ["HALTED"]
severity = "critical"
summary = "the firm is HALTED ({detail})"
"""


def monitor_config(directory: pathlib.Path, sources: dict[str, str], rules: str, extra: str = "") -> pathlib.Path:
    """A monitor configuration watching ``sources`` (name -> host:port) with ``rules`` (TOML)."""
    text = "[monitor]\nreconnect_initial = 0.05\nreconnect_max = 0.5\n"
    for name, target in sources.items():
        text += f'\n[[monitor.sources]]\nname = "{name}"\ntarget = "{target}"\n'
    path = directory / "monitor.toml"
    path.write_text(text + "\n" + rules + "\n" + extra)
    return path


def start_monitor(children: Children, config: pathlib.Path) -> ServerProcess:
    return children.add(ServerProcess("monitor", children.directory, config,
                                      command=("-m", "riskcore_services.monitor"))).start().wait_ready()


class AlertReader:
    """A WatchAlerts stream read on a thread: ``next_alert(rule)`` returns the next alert of ``rule``."""

    def __init__(self, channel: grpc.Channel):
        self._call = monitor_pb2_grpc.AlertsStub(channel).WatchAlerts(monitor_pb2.WatchAlertsRequest())
        self._call.initial_metadata()   # subscribed
        self.alerts: queue.Queue[monitor_pb2.Alert] = queue.Queue()
        self.skipped: list[monitor_pb2.Alert] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for alert in self._call:
                self.alerts.put(alert)
        except grpc.RpcError:
            pass

    def next_alert(self, rule: str, status: int | None = None, timeout: float = ALERT_TIMEOUT) -> monitor_pb2.Alert:
        """The first alert of ``rule`` (and ``status``) not taken yet; others stay for later calls."""
        def wanted(alert: monitor_pb2.Alert) -> bool:
            return alert.rule == rule and (status is None or alert.status == status)

        for index, alert in enumerate(self.skipped):
            if wanted(alert):
                return self.skipped.pop(index)
        while True:
            alert = self.alerts.get(timeout=timeout)
            if wanted(alert):
                return alert
            self.skipped.append(alert)

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(5)


@pytest.fixture
def watch_alerts() -> Iterator:
    readers: list[AlertReader] = []

    def open_reader(server: ServerProcess) -> AlertReader:
        reader = AlertReader(server.channel())
        readers.append(reader)
        return reader

    yield open_reader
    for reader in readers:
        reader.close()


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records every JSON body POSTed to it."""

    def __init__(self) -> None:
        import http.server
        import json

        bodies: queue.Queue[list] = queue.Queue()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                bodies.put(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.bodies = bodies
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/v2/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def next_alert(self, alertname: str, resolved: bool, timeout: float = ALERT_TIMEOUT) -> dict:
        """The next posted alert named ``alertname`` that is resolved (``endsAt`` past) or firing."""
        import datetime

        while True:
            for alert in self.bodies.get(timeout=timeout):
                ends = datetime.datetime.fromisoformat(alert["endsAt"])
                past = ends <= datetime.datetime.now(datetime.timezone.utc)
                if alert["labels"]["alertname"] == alertname and past == resolved:
                    return alert

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class DeadReceiver:
    """A port that takes connections and never answers (a hung receiver)."""

    def __init__(self) -> None:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(1024)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/api/v2/alerts"

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def receivers() -> Iterator:
    made: list = []

    def make(kind=WebhookReceiver):
        made.append(kind())
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def webhook(name: str, url: str, **settings) -> str:
    text = f'\n[[monitor.webhooks]]\nname = "{name}"\nurl = "{url}"\n'
    return text + "".join(f"{key} = {value}\n" for key, value in settings.items())
