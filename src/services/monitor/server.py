"""The monitor service: subscribes to the sources' events and hands them to its alerting component."""
from __future__ import annotations

import time
from typing import Callable

from riskcore_services.common.server import Server
from riskcore_services.monitor.alerting import ALERTS_SERVICE, Alerting
from riskcore_services.monitor.config import MonitorConfig
from riskcore_services.monitor.sources import SourceWatch


class MonitorServer(Server):
    """The monitor, started and stopped on the running event loop.

    ``time_ns`` stamps the alerts (tests may pass their own clock).
    """

    event_source = "monitor"

    def __init__(self, config: MonitorConfig, time_ns: Callable[[], int] = time.time_ns):
        super().__init__(config, [ALERTS_SERVICE], "monitor")
        self.config: MonitorConfig = config
        self.time_ns = time_ns
        self.alerting = Alerting(config.rules, config.webhooks, self.registry, config.log_alerts, time_ns)

    def servicers(self):
        return [(ALERTS_SERVICE, self.alerting.servicer(self.calls))]

    def started(self) -> dict:
        return dict(sources=[s.name for s in self.config.sources], rules=len(self.config.rules),
                    webhooks=[w.name for w in self.config.webhooks])

    async def recover(self) -> None:
        self.alerting.start(self.spawn)
        kinds = self.alerting.book.rules.kinds()
        for spec in self.config.sources:
            up = self.alerting.metrics.source_up.labels(spec.name)
            up.set(0)
            watch = SourceWatch(spec, kinds, self.alerting.on_event, self.report, up.set,
                                self.config.reconnect_initial, self.config.reconnect_max)
            self.spawn(watch.run())
        await self.serve()

    async def flush(self) -> None:
        await self.alerting.close()

    def report(self, kind: str, labels: dict[str, str], **fields) -> None:
        """An event of the monitor's own (a source's readiness): evaluated and published like any."""
        event = self.event_stream.event(kind, labels, time_ns=self.time_ns(), **fields)
        self.alerting.on_event(event)
        self.event_stream.forward(event)
