"""The control plane as ``riskcore serve control``."""
from __future__ import annotations

import argparse

from riskcore_services.common.runner import ServiceEntry


def _build(config, args: argparse.Namespace):
    from riskcore_services.control.server import ControlServer

    return ControlServer(config)


ENTRY = ServiceEntry(
    name="control", help="the control plane: supervised strategy processes, lifecycle, kill switch (gRPC, "
                         "default :50052; HTTP ops, default :8082)",
    package="riskcore_services.control", build=_build)
PORTS = (50052, 8082)
