"""The monitor's metrics (prefix ``riskcore_monitor_``): events in, alerts out, per receiver."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from riskcore_services.common.metrics import LoopCounter


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.events = LoopCounter("riskcore_monitor_events", "Events received, by source and kind",
                                  ("source", "kind"), registry)
        self.alerts = LoopCounter("riskcore_monitor_alerts", "Alert transitions, by rule, severity and status",
                                  ("rule", "severity", "status"), registry)
        self.firing = Gauge("riskcore_monitor_alerts_firing", "Alerts firing now, by severity", ["severity"],
                            registry=registry)
        self.notifications = LoopCounter("riskcore_monitor_notifications",
                                         "Alerts handed to each webhook receiver, by outcome "
                                         "(sent, failed after retries, dropped: queue full or breaker open)",
                                         ("receiver", "outcome"), registry)
        self.webhook_queue = Gauge("riskcore_monitor_webhook_queue", "Alerts waiting for each webhook receiver",
                                   ["receiver"], registry=registry)
        self.source_up = Gauge("riskcore_monitor_source_up",
                               "1 while the monitor receives a source service's events, else 0", ["source"],
                               registry=registry)
        self.watchers_dropped = LoopCounter("riskcore_monitor_watch_dropped",
                                            "Alerts dropped for slow WatchAlerts subscribers", (), registry).labels()
