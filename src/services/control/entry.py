"""The control plane as ``riskcore serve control``."""
from __future__ import annotations

import argparse

from riskcore_services.common.runner import ServiceEntry


def _load(path):
    from riskcore_services.control.config import load_config

    return load_config(path)


def _build(config, args: argparse.Namespace):
    from riskcore_services.control.server import ControlServer

    return ControlServer(config)


ENTRY = ServiceEntry(
    name="control", help="the control plane: supervised strategy processes, lifecycle, kill switch (gRPC, "
                         "default :50052; HTTP ops, default :8082)",
    package="riskcore_services.control", load_config=_load, build=_build)
PORTS = (50052, 8082)
