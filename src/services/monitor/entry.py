"""The monitor as ``riskcore serve monitor``."""
from __future__ import annotations

import argparse

from riskcore_services.common.runner import ServiceEntry


def _build(config, args: argparse.Namespace):
    from riskcore_services.monitor.server import MonitorServer

    return MonitorServer(config)


ENTRY = ServiceEntry(
    name="monitor", help="the monitor: alert rules over the services' events, WatchAlerts and webhooks (gRPC, "
                         "default :50054; HTTP ops, default :8084)",
    package="riskcore_services.monitor", build=_build)
PORTS = (50054, 8084)
