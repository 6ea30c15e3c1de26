"""The monitor as ``riskcore serve monitor``."""
from __future__ import annotations

import argparse

from riskcore_services.common.runner import ServiceEntry


def _load(path):
    from riskcore_services.monitor.config import load_config

    return load_config(path)


def _build(config, args: argparse.Namespace):
    from riskcore_services.monitor.server import MonitorServer

    return MonitorServer(config)


ENTRY = ServiceEntry(
    name="monitor", help="the monitor: alert rules over the services' events, WatchAlerts and webhooks (gRPC, "
                         "default :50054; HTTP ops, default :8084)",
    package="riskcore_services.monitor", load_config=_load, build=_build)
PORTS = (50054, 8084)
