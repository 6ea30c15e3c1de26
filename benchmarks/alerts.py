"""Alert benchmarks: from the event that crosses a limit to the alert in a subscriber's hands.

``python -m benchmarks --suite alerts [--quick]`` runs them. A risk engine and
a monitor run as child processes (``riskcore_services.risk`` and
``riskcore_services.monitor``, state in memory); this process drives them,
holds a ``WatchAlerts`` stream (read on a thread) and runs the webhook
receiver (an HTTP/1.1 keep-alive server on a thread). The monitor also has a
receiver that never answers, as a dead Alertmanager would be.

- **Delivery latency**: an order that takes the ``alerts`` account's gross
  notional over the rule's 30% fires an alert; the fill that closes it again
  resolves it. Each step waits for both receipts before the next, so every
  figure is one alert's trip, not a queue. Latency runs from the event's own
  stamp (``Event.time_unix_nano``: the risk engine's clock, once the call that
  crossed has been applied) to receipt, on the machine's one wall clock; a
  second row counts from the moment the crossing call was sent.
- **Check-path cost**: ``CheckPosition`` latency (accepted, and rejected:
  rejections feed the rejection-rate events) with the monitor subscribed to the
  engine's events and without it, in alternating rounds on the same server.
"""
from __future__ import annotations

import http.server
import json
import pathlib
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import grpc

from benchmarks.processes import Children, grpc_env
from benchmarks.results import MS, Row, Target, Timing, expect
from benchmarks.service import bench_config
from riskcore_services.proto import monitor_pb2, monitor_pb2_grpc, risk_pb2, risk_pb2_grpc
from riskcore_services.testing import ServerProcess

ALERTS_ACCOUNT = """
[[accounts]]
name = "alerts"
parent = "FIRM"
[accounts.limits]
max_gross_notional = 100_000.0
"""

RULE = """
[[monitor.rules]]
name = "GrossHigh"
kind = "utilisation"
match = { account = "alerts", limit = "max_gross_notional" }
above = 0.3
summary = "{account}: {limit} at {value:.0%}"
"""

STREAM_TARGETS = [Target("p99<=1ms", "p99_ns", 1 * MS)]
WEBHOOK_TARGETS = [Target("p99<=5ms", "p99_ns", 5 * MS)]
OVERHEAD_TARGET = Target("<=1.05x", "value", 1.05)
WAIT = 10.0


@dataclass(frozen=True)
class AlertScale:
    alerts: int          # FIRING + RESOLVED transitions timed
    checks: int          # CheckPosition calls per round and kind
    rounds: int          # alternating with/without rounds


FULL = AlertScale(alerts=10_000, checks=2_000, rounds=4)
QUICK = AlertScale(alerts=200, checks=200, rounds=2)


class Receipts:
    """Receipt times (``time.time_ns``) of alerts, by arrival order, with a wait for the n-th."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self.alerts: list[monitor_pb2.Alert] = []
        self._arrived = threading.Condition()

    def add(self, received_ns: int, alert: monitor_pb2.Alert | None = None) -> None:
        with self._arrived:
            self.times.append(received_ns)
            if alert is not None:
                self.alerts.append(alert)
            self._arrived.notify_all()

    def wait_for(self, count: int) -> None:
        with self._arrived:
            expect(self._arrived.wait_for(lambda: len(self.times) >= count, WAIT),
                   f"alert {count} not received within {WAIT} s")


def start_receiver(receipts: Receipts) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"   # keep-alive: the monitor's sender reuses its connection

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            now = time.time_ns()
            for _ in json.loads(body):
                receipts.add(now)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def watch(channel: grpc.Channel, receipts: Receipts) -> grpc.Future:
    call = monitor_pb2_grpc.AlertsStub(channel).WatchAlerts(monitor_pb2.WatchAlertsRequest())
    call.initial_metadata()

    def read() -> None:
        try:
            for alert in call:
                receipts.add(time.time_ns(), alert)
        except grpc.RpcError:
            pass

    threading.Thread(target=read, daemon=True).start()
    return call


class AlertSuite:
    def __init__(self, scale: AlertScale, directory: pathlib.Path) -> None:
        self.scale = scale
        self.directory = directory
        self.timing = Timing(0.0)

    def cases(self) -> list[tuple[str, Callable[[], Iterator[Row]]]]:
        return [("alerts: delivery latency and check-path cost", self.run)]

    def _monitor_config(self, risk: ServerProcess, receiver_url: str, dead_url: str) -> pathlib.Path:
        path = self.directory / "monitor.toml"
        path.write_text(f"""[logging]\nlevel = "warning"\n[monitor]\nlog_alerts = false\nreconnect_initial = 0.05
[[monitor.sources]]\nname = "risk"\ntarget = "{risk.target}"
[[monitor.webhooks]]\nname = "receiver"\nurl = "{receiver_url}"
[[monitor.webhooks]]\nname = "dead"\nurl = "{dead_url}"\ntimeout = 0.5\nbreaker_failures = 3
{RULE}""")
        return path

    def run(self) -> Iterator[Row]:
        import socket

        env = grpc_env(legacy_io=True)   # the services' own default (GRPC_EXPERIMENTS unset)
        stream, hooks = Receipts(), Receipts()
        receiver = start_receiver(hooks)
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        dead.listen(64)
        try:
            with Children(self.directory) as kids:
                risk_config = bench_config(self.directory, "risk.toml")
                risk_config.write_text(risk_config.read_text() + ALERTS_ACCOUNT)
                risk = kids.risk_server("risk", risk_config, env)
                risk.wait_ready()
                config = self._monitor_config(risk, f"http://127.0.0.1:{receiver.server_address[1]}/api/v2/alerts",
                                              f"http://127.0.0.1:{dead.getsockname()[1]}/api/v2/alerts")
                monitor = kids.add(ServerProcess("monitor", self.directory, config, env=env,
                                                 command=("-m", "riskcore_services.monitor"))).start().wait_ready()
                stub = risk_pb2_grpc.RiskEngineStub(risk.channel())
                watch(monitor.channel(), stream)
                yield from self.latency(stub, stream, hooks)
                yield from self.check_cost(stub, monitor)
        finally:
            receiver.shutdown()
            dead.close()

    def latency(self, stub, stream: Receipts, hooks: Receipts) -> Iterator[Row]:
        sent: list[int] = []
        for step in range(self.scale.alerts):
            cid = f"a{step}"
            side = risk_pb2.BUY if step % 2 == 0 else risk_pb2.SELL
            order = risk_pb2.OrderRequest(client_order_id=cid, account="alerts", symbol="AAPL", side=side,
                                          quantity=200, price=190.0)
            if side == risk_pb2.BUY:       # the order's working notional crosses 30%: FIRING
                sent.append(time.time_ns())
                expect(stub.SubmitOrder(order, timeout=WAIT).accepted, "the crossing order was rejected")
                stub.ReportFill(risk_pb2.Fill(client_order_id=cid, exec_id=cid, quantity=200, price=190.0),
                                timeout=WAIT)
            else:                          # the fill that closes the position: RESOLVED
                expect(stub.SubmitOrder(order, timeout=WAIT).accepted, "the closing order was rejected")
                sent.append(time.time_ns())
                stub.ReportFill(risk_pb2.Fill(client_order_id=cid, exec_id=cid, quantity=200, price=190.0),
                                timeout=WAIT)
            stream.wait_for(step + 1)
            hooks.wait_for(step + 1)
        expected = [monitor_pb2.ALERT_STATUS_FIRING, monitor_pb2.ALERT_STATUS_RESOLVED] * (self.scale.alerts // 2)
        expect([a.status for a in stream.alerts] == expected, "alerts out of step with the crossings")
        event_ns = [alert.event_time_unix_nano for alert in stream.alerts]
        n = self.scale.alerts
        yield self.timing.row("WatchAlerts: event -> subscriber", [r - e for r, e in zip(stream.times, event_ns)],
                              targets=STREAM_TARGETS,
                              note=f"{n:,} alerts (FIRING on an order crossing 30% gross, RESOLVED on the closing "
                                   f"fill); from the risk engine's event stamp")
        yield self.timing.row("webhook: event -> receiver", [r - e for r, e in zip(hooks.times, event_ns)],
                              targets=WEBHOOK_TARGETS,
                              note="Alertmanager v2 payload over HTTP/1.1 keep-alive; a dead receiver configured too")
        yield self.timing.row("WatchAlerts: crossing call sent -> subscriber",
                              [r - s for r, s in zip(stream.times, sent)],
                              note="includes the crossing call's own trip to the risk engine")

    def check_cost(self, stub, monitor: ServerProcess) -> Iterator[Row]:
        accepted = risk_pb2.PositionRequest(account="bench", symbol="AAPL", side=risk_pb2.BUY, quantity=1)
        rejected = risk_pb2.PositionRequest(account="bench", symbol="AAPL", side=risk_pb2.BUY, quantity=1_000_000)
        samples: dict[tuple[bool, str], list[int]] = {}
        for request in (accepted, rejected) * 50:   # warm up
            stub.CheckPosition(request, timeout=WAIT)
        for round_ in range(self.scale.rounds * 2):
            subscribed = round_ % 2 == 0
            if subscribed and not monitor.running:
                monitor.start().wait_ready()
                time.sleep(0.2)                       # its streams to the engine open
            elif not subscribed:
                expect(monitor.stop() == 0, f"the monitor did not stop cleanly:\n{monitor.output()}")
            for kind, request in (("accepted", accepted), ("rejected", rejected)):
                out = samples.setdefault((subscribed, kind), [])
                for _ in range(self.scale.checks):
                    start = time.perf_counter_ns()
                    answer = stub.CheckPosition(request, timeout=WAIT)
                    out.append(time.perf_counter_ns() - start)
                expect(answer.accepted == (kind == "accepted"), f"a {kind} check was answered otherwise")
        for kind in ("accepted", "rejected"):
            with_row = self.timing.row(f"CheckPosition {kind}, monitor subscribed", samples[(True, kind)])
            without = self.timing.row(f"CheckPosition {kind}, no subscriber", samples[(False, kind)])
            yield with_row
            yield without
            ratio = with_row.median_ns / without.median_ns
            yield Row(f"CheckPosition {kind}: subscribed / not", value=ratio, value_text=f"{ratio:.3f}x",
                      targets=[OVERHEAD_TARGET], note="p50 ratio, alternating rounds on one server")
