"""The alerting component: the alert book and every delivery of its alerts.

Hosted by the monitor service (events from every source, over gRPC) and, for
its own events, by the risk engine (fed in-process: one network hop from the
breach to a ``WatchAlerts`` subscriber). Delivery of every FIRING and
RESOLVED, in this order and without waiting on anything: the ``WatchAlerts``
subscribers' bounded queues, each webhook's bounded queue (its sender task
posts it), and the log.
"""
from __future__ import annotations

import time
from typing import Callable, Coroutine, Sequence

import aiohttp
from prometheus_client import CollectorRegistry

from riskcore_services.common.calls import CallHandling
from riskcore_services.common.fanout import FanOut
from riskcore_services.common.logging import get_logger
from riskcore_services.monitor.alerts import FIRING, AlertBook
from riskcore_services.monitor.metrics import MonitorMetrics
from riskcore_services.monitor.rules import Rule, RuleSet
from riskcore_services.monitor.webhooks import Webhook, WebhookSpec
from riskcore_services.proto import monitor_pb2, monitor_pb2_grpc

log = get_logger("monitor")

ALERTS_SERVICE = monitor_pb2.DESCRIPTOR.services_by_name["Alerts"]


class Alerting:
    """Evaluates ``rules`` on each event handed to :meth:`on_event` and delivers the alerts."""

    def __init__(self, rules: tuple[Rule, ...], webhooks: Sequence[WebhookSpec], registry: CollectorRegistry,
                 log_alerts: bool, time_ns: Callable[[], int] = time.time_ns):
        self.metrics = MonitorMetrics(registry)
        self.watchers: FanOut[monitor_pb2.Alert] = FanOut(on_drop=self.metrics.watchers_dropped.inc)
        self.book = AlertBook(RuleSet(rules), self.deliver, time_ns)
        self.webhooks = [Webhook(spec, self.metrics, self.book.firing, time_ns) for spec in webhooks]
        self._log_alerts = log_alerts
        self._session: aiohttp.ClientSession | None = None
        for severity in ("critical", "warning", "info"):
            self.metrics.firing.labels(severity).set(0)

    def start(self, spawn: Callable[[Coroutine], object]) -> None:
        """Start the webhooks' sender tasks (on the running loop)."""
        if self.webhooks:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=4))
            for webhook in self.webhooks:
                spawn(webhook.run(self._session))

    async def close(self) -> None:
        """Cancel the rules' timers and close the webhooks' connections (the sender tasks are cancelled)."""
        self.book.close()
        if self._session is not None:
            await self._session.close()

    def on_event(self, event: monitor_pb2.Event) -> None:
        """One event: count it and evaluate the rules on it."""
        self.metrics.events.labels(event.source, event.kind).inc()
        self.book.on_event(event)

    def deliver(self, alert: monitor_pb2.Alert) -> None:
        firing = alert.status == FIRING
        self.metrics.alerts.labels(alert.rule, alert.severity, "firing" if firing else "resolved").inc()
        self.metrics.firing.labels(alert.severity).inc(1 if firing else -1)
        self.watchers.publish(alert)
        for webhook in self.webhooks:
            webhook.offer(alert)
        if self._log_alerts:
            (log.warning if firing else log.info)(
                "alert firing" if firing else "alert resolved", alert=alert.key, severity=alert.severity,
                summary=alert.summary, value=alert.value)

    def servicer(self, calls: CallHandling) -> monitor_pb2_grpc.AlertsServicer:
        """The ``Alerts`` servicer: the alerts firing now, then every change as it happens."""
        book, watchers = self.book, self.watchers

        class AlertsServicer(monitor_pb2_grpc.AlertsServicer):
            @calls.rpc("ListAlerts")
            def ListAlerts(self, request, call):
                return monitor_pb2.ListAlertsResponse(alerts=book.firing())

            @calls.rpc("WatchAlerts")
            async def WatchAlerts(self, request, call):
                # Subscribe before taking the replay, so nothing falls between the two.
                queue = watchers.subscribe()
                try:
                    await call.context.send_initial_metadata(())   # the caller knows it is subscribed
                    for alert in book.firing():
                        alert.replay = True
                        await call.context.write(alert)
                    while True:
                        await call.context.write(await queue.get())
                finally:
                    watchers.unsubscribe(queue)

        return AlertsServicer()
