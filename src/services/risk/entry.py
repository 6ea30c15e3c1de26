"""The risk engine as ``riskcore serve risk``."""
from __future__ import annotations

import argparse

from riskcore_services.common.runner import ServiceEntry


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--apply-config", action="store_true",
                        help="after recovering the journal, journal the file's limits, position limits and "
                             "trading states where they differ from the recovered state (every difference "
                             "is logged at start either way)")


def _start_errors() -> tuple[type[BaseException], ...]:
    from riskcore_services.common.journal import JournalError

    return (JournalError,)


ENTRY = ServiceEntry(
    name="risk", help="the firm-wide risk engine (gRPC, default :50051; HTTP ops, default :8080)",
    package="riskcore_services.risk", server="RiskServer", add_options=_options,
    server_options=lambda args: {"apply_config": args.apply_config},
    start_errors=_start_errors)
PORTS = (50051, 8080)
