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
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for alert in self._call:
                self.alerts.put(alert)
        except grpc.RpcError:
            pass

    def next_alert(self, rule: str, status: int | None = None, timeout: float = ALERT_TIMEOUT) -> monitor_pb2.Alert:
        """The next alert of ``rule`` (and ``status``), skipping others."""
        while True:
            alert = self.alerts.get(timeout=timeout)
            if alert.rule == rule and (status is None or alert.status == status):
                return alert

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
