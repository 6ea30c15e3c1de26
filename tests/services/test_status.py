"""``riskcore status``: every section down, naming its address (no traceback); the alerts a monitor lists.

``riskcore status --once`` against a running stack is in ``test_up.py``, beside the stack it reads.
"""
from __future__ import annotations

import concurrent.futures
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest

from riskcore_services.proto import monitor_pb2, monitor_pb2_grpc
from riskcore_services.testing import free_ports, wait_until

FIRING = monitor_pb2.Alert(
    key="hard_breach|account=momentum", rule="hard_breach", status=monitor_pb2.ALERT_STATUS_FIRING,
    severity="critical", labels={"alertname": "hard_breach", "severity": "critical", "account": "momentum"},
    summary="momentum breached MAX_GROSS_NOTIONAL", value=41_000_000.0,
    starts_at_unix_nano=time.time_ns() - 90 * 10**9)


class ListedAlerts(monitor_pb2_grpc.AlertsServicer):
    """A monitor's ListAlerts answer, for the view to render (the monitor itself is tested with its service)."""

    def ListAlerts(self, request, context):
        return monitor_pb2.ListAlertsResponse(alerts=[FIRING])


@pytest.fixture
def monitor():
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    monitor_pb2_grpc.add_AlertsServicer_to_server(ListedAlerts(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def status_once(*targets: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "riskcore_services.cli", "status", "--once", "--interval", "0.1",
                           *targets], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "160"})


def test_status_once_with_every_service_down_shows_each_as_down_and_exits_0():
    risk, control, ingest, monitor = (f"127.0.0.1:{port}" for port in free_ports(4))
    run = status_once("--risk", risk, "--control", control, "--ingest", ingest, "--monitor", monitor)

    assert run.returncode == 0
    assert run.stderr == ""
    assert run.stdout.count(f"risk engine down ({risk}): UNAVAILABLE") == 2     # accounts and positions
    assert f"control plane down ({control}): UNAVAILABLE" in run.stdout
    assert f"ingestion down ({ingest}): UNAVAILABLE" in run.stdout
    assert f"monitor not running ({monitor}): UNAVAILABLE" in run.stdout


def test_status_refuses_an_interval_that_is_not_a_positive_number_of_seconds():
    run = subprocess.run([sys.executable, "-m", "riskcore_services.cli", "status", "--interval", "0"],
                         capture_output=True, text=True, timeout=60)

    assert run.returncode == 2
    assert "--interval: must be in (0, 3600], got 0" in run.stderr


def test_status_lists_the_alerts_the_monitor_says_are_firing(monitor):
    risk, control, ingest = (f"127.0.0.1:{port}" for port in free_ports(3))
    run = status_once("--risk", risk, "--control", control, "--ingest", ingest, "--monitor", monitor)

    assert run.returncode == 0, run.stderr
    row = next(line for line in run.stdout.splitlines() if "hard_breach" in line)
    found = re.search(r"│ critical\s+│ hard_breach\s+│ account=momentum\s+│ momentum breached MAX_GROSS_NOTIONAL\s+│ "
                      r"41,000,000\s+│ (\d+) s", row)
    assert found, row
    assert int(found.group(1)) >= 90          # it started 90 s before the test


def test_the_live_view_on_a_terminal_refreshes_until_ctrl_c_then_exits_0():
    risk, control, ingest, monitor = (f"127.0.0.1:{port}" for port in free_ports(4))
    terminal, child_end = pty.openpty()
    view = subprocess.Popen([sys.executable, "-m", "riskcore_services.cli", "status", "--interval", "0.1", "--risk",
                             risk, "--control", control, "--ingest", ingest, "--monitor", monitor],
                            stdin=child_end, stdout=child_end, stderr=child_end)
    os.close(child_end)
    screen = bytearray()

    def read_terminal() -> None:   # a terminal nobody reads fills up and blocks the view
        try:
            while chunk := os.read(terminal, 65536):
                screen.extend(chunk)
        except OSError:            # the view exited: the terminal's other end is closed
            pass

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        wait_until(lambda: screen.count(b"riskcore status at") >= 3, 30, "three refreshes of the view")
        view.send_signal(signal.SIGINT)
        assert view.wait(30) == 0
    finally:
        view.kill()
        view.wait(30)
        reader.join(30)
        os.close(terminal)
    assert b"Traceback" not in screen
