"""The market data ingestion service as ``riskcore serve ingest``."""
from __future__ import annotations

from riskcore_services.common.runner import ServiceEntry


def _start_errors() -> tuple[type[BaseException], ...]:
    from riskcore_services.ingest.server import FeedError

    return (FeedError,)


ENTRY = ServiceEntry(
    name="ingest", help="market data ingestion: ITCH 5.0 book, quotes and marks (gRPC, default :50053; "
                        "HTTP ops, default :8083)",
    package="riskcore_services.ingest", server="IngestServer", start_errors=_start_errors)
PORTS = (50053, 8083)
