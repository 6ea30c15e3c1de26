"""The control plane as ``riskcore serve control``."""
from __future__ import annotations

from riskcore_services.common.runner import ServiceEntry


ENTRY = ServiceEntry(
    name="control", help="the control plane: supervised strategy processes, lifecycle, kill switch (gRPC, "
                         "default :50052; HTTP ops, default :8082)",
    package="riskcore_services.control", server="ControlServer")
PORTS = (50052, 8082)
