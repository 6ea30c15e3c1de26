"""Prometheus metrics shared by the gRPC front-ends.

Names follow the Prometheus guide: ``riskcore_`` prefix, base units,
``_total`` counters, bounded labels only (method and status code, never an
order id). Each service owns a private ``CollectorRegistry``.
"""
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

# Microsecond-scale buckets: the client library's defaults start at 5 ms,
# far above what a risk check costs.
FAST_BUCKETS = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1, 1.0)


def new_registry() -> CollectorRegistry:
    """Return a registry with the process, platform and GC collectors."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class GrpcMetrics:
    """Requests by method and status code, and their latency."""

    def __init__(self, registry: CollectorRegistry, methods: list[str], version: str):
        self.requests = Counter("riskcore_grpc_requests", "gRPC requests handled, by method and status code",
                                ["method", "code"], registry=registry)
        self.duration = Histogram("riskcore_grpc_request_duration_seconds",
                                  "Server-side time to handle a gRPC request", ["method"],
                                  buckets=FAST_BUCKETS, registry=registry)
        self.build_info = Gauge("riskcore_build_info", "Build information", ["version"], registry=registry)
        self.build_info.labels(version).set(1)
        for method in methods:
            self.requests.labels(method, "OK")
            self.duration.labels(method)
