"""The monitor as ``riskcore serve monitor``."""
from __future__ import annotations

from riskcore_services.common.runner import ServiceEntry


ENTRY = ServiceEntry(
    name="monitor", help="the monitor: alert rules over the services' events, WatchAlerts and webhooks (gRPC, "
                         "default :50054; HTTP ops, default :8084)",
    package="riskcore_services.monitor", server="MonitorServer")
PORTS = (50054, 8084)
