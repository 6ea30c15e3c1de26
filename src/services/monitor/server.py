"""The monitor service: subscribes to the sources' events, evaluates the rules, delivers the alerts.

Delivery of every FIRING and RESOLVED, in this order and without waiting on
anything: the ``WatchAlerts`` subscribers' bounded queues, each webhook's
bounded queue (its sender task posts it), and the log.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

import aiohttp

from riskcore_services.common.fanout import FanOut
from riskcore_services.common.logging import get_logger
from riskcore_services.common.server import Server
from riskcore_services.monitor.alerts import FIRING, AlertBook
from riskcore_services.monitor.config import MonitorConfig
from riskcore_services.monitor.metrics import MonitorMetrics
from riskcore_services.monitor.servicer import ALERTS_SERVICE, make_servicer
from riskcore_services.monitor.sources import SourceWatch
from riskcore_services.monitor.webhooks import Webhook
from riskcore_services.proto import monitor_pb2

log = get_logger("monitor")


class MonitorServer(Server):
    """The monitor, started and stopped on the running event loop.

    ``time_ns`` stamps the alerts (tests may pass their own clock).
    """

    event_source = "monitor"

    def __init__(self, config: MonitorConfig, time_ns: Callable[[], int] = time.time_ns):
        super().__init__(config, [ALERTS_SERVICE], "monitor")
        self.config: MonitorConfig = config
        self.time_ns = time_ns
        self.metrics = MonitorMetrics(self.registry)
        self.watchers: FanOut[monitor_pb2.Alert] = FanOut(on_drop=self.metrics.watchers_dropped.inc)
        self.book = AlertBook(config.rule_set(), self.deliver, time_ns)
        self.webhooks = [Webhook(spec, self.metrics, self.book.firing, time_ns) for spec in config.webhooks]
        self._session: aiohttp.ClientSession | None = None
        for severity in ("critical", "warning", "info"):
            self.metrics.firing.labels(severity).set(0)

    def servicers(self):
        return [(ALERTS_SERVICE, make_servicer(self, self.calls))]

    def started(self) -> dict:
        return dict(sources=[s.name for s in self.config.sources], rules=len(self.config.rules),
                    webhooks=[w.name for w in self.config.webhooks])

    async def recover(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=4))
        for webhook in self.webhooks:
            self.spawn(webhook.run(self._session))
        kinds = self.book.rules.kinds()
        for spec in self.config.sources:
            up = self.metrics.source_up.labels(spec.name)
            up.set(0)
            watch = SourceWatch(spec, kinds, self.receive, self.report, up.set, self.config.reconnect_initial,
                                self.config.reconnect_max)
            self.spawn(watch.run())
        await self.serve()

    async def flush(self) -> None:
        self.book.close()
        if self._session is not None:
            # Give queued alerts a moment to leave (the sender tasks are already cancelled).
            await self._session.close()

    def receive(self, event: monitor_pb2.Event) -> None:
        """One event from a source: count it and evaluate the rules on it."""
        self.metrics.events.labels(event.source, event.kind).inc()
        self.book.on_event(event)

    def report(self, kind: str, labels: dict[str, str], **fields) -> None:
        """An event of the monitor's own (a source's readiness): evaluated and published like any."""
        event = self.event_stream.event(kind, labels, time_ns=self.time_ns(), **fields)
        self.receive(event)
        self.event_stream.forward(event)

    def deliver(self, alert: monitor_pb2.Alert) -> None:
        firing = alert.status == FIRING
        self.metrics.alerts.labels(alert.rule, alert.severity, "firing" if firing else "resolved").inc()
        self.metrics.firing.labels(alert.severity).inc(1 if firing else -1)
        self.watchers.publish(alert)
        for webhook in self.webhooks:
            webhook.offer(alert)
        if self.config.log_alerts:
            (log.warning if firing else log.info)(
                "alert firing" if firing else "alert resolved", alert=alert.key, severity=alert.severity,
                summary=alert.summary, value=alert.value)
