"""Alert benchmarks: from the event that crosses a limit to the alert in a subscriber's hands.

``python -m benchmarks --suite alerts [--quick]`` runs them. A risk engine
evaluating the rule itself (``[alerts] rules_file``), a monitor with the same
rule, and a second risk engine without alerting run as child processes
(``riskcore_services.risk`` and ``riskcore_services.monitor``, state in
memory); this process drives them, starts a ``WatchAlerts`` subscriber process
on the risk engine, later one on the monitor (:mod:`benchmarks.alert_watcher`,
on the services' default I/O) and runs the webhook receiver (an HTTP/1.1 keep-alive server on a thread). The monitor
also has a receiver that never answers, as a dead Alertmanager would be.

- **Delivery latency**: an order that takes the ``alerts`` account's gross
  notional over the rule's 30% fires an alert; the fill that closes it again
  resolves it. Each step waits for its receipts before the next, so every
  figure is one alert's trip, not a queue. The risk engine's own
  ``WatchAlerts`` is measured first, with the monitor not yet running; then
  the monitor's ``WatchAlerts`` and webhook, on as many alerts again. Latency runs from the event's own
  stamp (``Event.time_unix_nano``: the risk engine's clock, once the call that
  crossed has been applied) to receipt, on the machine's one wall clock; a
  further row counts from the moment the crossing call was sent.
- **Check-path cost**: ``CheckPosition`` latency (accepted, and rejected:
  rejections feed the rejection-rate events) on the engine with alerting (its
  rules in-process, the monitor subscribed to its events) and on the engine
  without, call by call in turn, both engines pinned to the same CPU.
"""
from __future__ import annotations

import http.server
import json
import os
import pathlib
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from benchmarks.processes import Children, grpc_env
from benchmarks.results import MS, Row, Target, Timing, expect
from benchmarks.service import bench_config
from riskcore_services.proto import monitor_pb2, risk_pb2, risk_pb2_grpc
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
    checks: int          # CheckPosition calls per engine and kind


FULL = AlertScale(alerts=10_000, checks=10_000)
QUICK = AlertScale(alerts=200, checks=200)


class Receipts:
    """Receipt times (``time.time_ns``) of the webhook's alerts, by arrival order, with a wait for the n-th."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self._arrived = threading.Condition()

    def add(self, received_ns: int) -> None:
        with self._arrived:
            self.times.append(received_ns)
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


class Watcher:
    """A :mod:`benchmarks.alert_watcher` process on one server: receipt time, status and event stamp per alert."""

    def __init__(self, kids: Children, name: str, server: ServerProcess, env: dict[str, str]) -> None:
        self.process = kids.client({"name": name, "target": server.target}, env, "benchmarks.alert_watcher")
        self.process.wait_ready(WAIT)
        self.times: list[int] = []
        self.statuses: list[int] = []
        self.events: list[int] = []

    def next_alert(self) -> None:
        received, status, event_ns = self.process.message("alert", WAIT)["alert"]
        self.times.append(received)
        self.statuses.append(status)
        self.events.append(event_ns)

    def latencies(self) -> list[int]:
        """Each alert's receipt less its event stamp, in ns."""
        return [received - event for received, event in zip(self.times, self.events)]


def pin(server: ServerProcess, cpu: int) -> None:
    """Every thread of ``server`` on ``cpu``: two servers compared this way get the same place on the machine."""
    for thread in os.listdir(f"/proc/{server.process.pid}/task"):
        os.sched_setaffinity(int(thread), {cpu})


class AlertSuite:
    def __init__(self, scale: AlertScale, directory: pathlib.Path) -> None:
        self.scale = scale
        self.directory = directory
        self.timing = Timing(0.0)

    def cases(self) -> list[tuple[str, Callable[[], Iterator[Row]]]]:
        return [("alerts: delivery latency and check-path cost", self.run)]

    def _monitor_config(self, risk: ServerProcess, receiver_url: str, dead_url: str) -> None:
        path = self.directory / "monitor.toml"
        path.write_text(f"""[logging]\nlevel = "warning"\n[monitor]\nlog_alerts = false\nreconnect_initial = 0.05
[[monitor.sources]]\nname = "risk"\ntarget = "{risk.target}"
[[monitor.webhooks]]\nname = "receiver"\nurl = "{receiver_url}"
[[monitor.webhooks]]\nname = "dead"\nurl = "{dead_url}"\ntimeout = 0.5\nbreaker_failures = 3
{RULE}""")

    def run(self) -> Iterator[Row]:
        import socket

        env = grpc_env(legacy_io=True)   # the services' own default (GRPC_EXPERIMENTS unset)
        hooks = Receipts()
        receiver = start_receiver(hooks)
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        dead.listen(64)
        try:
            with Children(self.directory) as kids:
                plain = bench_config(self.directory, "plain.toml")
                plain.write_text(plain.read_text() + ALERTS_ACCOUNT)
                alerting = self.directory / "risk.toml"
                alerting.write_text(plain.read_text() + '\n[alerts]\nrules_file = "monitor.toml"\n')
                risk = kids.add(ServerProcess("risk", self.directory, alerting, env=env))
                self._monitor_config(risk, f"http://127.0.0.1:{receiver.server_address[1]}/api/v2/alerts",
                                     f"http://127.0.0.1:{dead.getsockname()[1]}/api/v2/alerts")
                risk.start().wait_ready()
                without = kids.risk_server("plain", plain, env).wait_ready()
                stub = risk_pb2_grpc.RiskEngineStub(risk.channel())
                # Each path alone, so that its figures are its own and not five processes' turns on 2 cores.
                direct = Watcher(kids, "watch-risk", risk, env)
                sent = self.crossings(stub, direct, None, 0)
                direct.process.stop()
                yield from self.direct_rows(direct, sent)
                monitor = kids.add(ServerProcess("monitor", self.directory, self.directory / "monitor.toml", env=env,
                                                 command=("-m", "riskcore_services.monitor"))).start().wait_ready()
                relayed = Watcher(kids, "watch-monitor", monitor, env)
                self.crossings(stub, relayed, hooks, self.scale.alerts)
                yield from self.relayed_rows(relayed, hooks)
                for server in (risk, without):
                    pin(server, os.cpu_count() - 1)
                yield from self.check_cost(stub, risk_pb2_grpc.RiskEngineStub(without.channel()))
        finally:
            receiver.shutdown()
            dead.close()

    def crossings(self, stub, watcher: Watcher, hooks: Receipts | None, first: int) -> list[int]:
        """``scale.alerts`` alerts, each received before the next; the times the crossing calls were sent."""
        sent: list[int] = []
        for step in range(self.scale.alerts):
            cid = f"a{first + step}"
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
            watcher.next_alert()
            if hooks is not None:
                hooks.wait_for(step + 1)
        expected = [monitor_pb2.ALERT_STATUS_FIRING, monitor_pb2.ALERT_STATUS_RESOLVED] * (self.scale.alerts // 2)
        expect(watcher.statuses == expected, "alerts out of step with the crossings")
        return sent

    def direct_rows(self, direct: Watcher, sent: list[int]) -> Iterator[Row]:
        yield self.timing.row("WatchAlerts: event -> subscriber", direct.latencies(), targets=STREAM_TARGETS,
                              note=f"{self.scale.alerts:,} alerts (FIRING on an order crossing 30% gross, RESOLVED "
                                   f"on the closing fill); from the risk engine's event stamp to a WatchAlerts on "
                                   f"the risk engine, which evaluates the rule itself")
        yield self.timing.row("WatchAlerts: crossing call sent -> subscriber",
                              [r - s for r, s in zip(direct.times, sent)],
                              note="includes the crossing call's own trip to the risk engine")

    def relayed_rows(self, relayed: Watcher, hooks: Receipts) -> Iterator[Row]:
        yield self.timing.row("WatchAlerts via the monitor: event -> subscriber", relayed.latencies(),
                              note=f"{self.scale.alerts:,} more alerts, the monitor running: two hops (its "
                                   f"WatchEvents on the risk engine, then its WatchAlerts)")
        yield self.timing.row("webhook: event -> receiver", [r - e for r, e in zip(hooks.times, relayed.events)],
                              targets=WEBHOOK_TARGETS,
                              note="sent by the monitor: Alertmanager v2 payload over HTTP/1.1 keep-alive; "
                                   "a dead receiver configured too")

    def check_cost(self, alerting, without) -> Iterator[Row]:
        accepted = risk_pb2.PositionRequest(account="bench", symbol="AAPL", side=risk_pb2.BUY, quantity=1)
        rejected = risk_pb2.PositionRequest(account="bench", symbol="AAPL", side=risk_pb2.BUY, quantity=1_000_000)
        for stub in (alerting, without):
            for request in (accepted, rejected) * 50:   # warm up
                stub.CheckPosition(request, timeout=WAIT)
        for kind, request in (("accepted", accepted), ("rejected", rejected)):
            samples: dict[bool, list[int]] = {True: [], False: []}
            # Call by call, each engine first in turn: whatever the machine does meanwhile, both pay for it.
            for call in range(self.scale.checks):
                for on in ((True, False) if call % 2 == 0 else (False, True)):
                    start = time.perf_counter_ns()
                    answer = (alerting if on else without).CheckPosition(request, timeout=WAIT)
                    samples[on].append(time.perf_counter_ns() - start)
                    expect(answer.accepted == (kind == "accepted"), f"a {kind} check was answered otherwise")
            with_row = self.timing.row(f"CheckPosition {kind}, alerting on", samples[True])
            without_row = self.timing.row(f"CheckPosition {kind}, alerting off", samples[False])
            yield with_row
            yield without_row
            ratio = with_row.median_ns / without_row.median_ns
            yield Row(f"CheckPosition {kind}: alerting on / off", value=ratio, value_text=f"{ratio:.3f}x",
                      targets=[OVERHEAD_TARGET],
                      note="p50 ratio, calls alternating between an engine with its rules in-process and the "
                           "monitor subscribed, and one without, both pinned to the same CPU")
