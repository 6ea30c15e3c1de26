"""Prometheus metrics shared by the gRPC front-ends.

Names follow the Prometheus guide: ``riskcore_`` prefix, base units,
``_total`` counters, bounded labels only (method and status code, never an
order id). Each service owns a private ``CollectorRegistry``.
"""
from bisect import bisect_left

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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


class _Count:
    __slots__ = ("value",)

    def __init__(self):
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class _Distribution:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)    # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class _LoopMetric(Collector):
    """A labelled metric of the request path, updated and scraped on the event loop's thread.

    prometheus_client's metrics take a lock on every update. Cold between two
    calls, those updates cost several microseconds of each call's latency;
    these need no lock because one thread does both the updates and the
    scrapes (``/metrics`` is served on the same loop). Not for other threads.
    """

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], registry: CollectorRegistry):
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._series: dict[tuple[str, ...], object] = {}
        registry.register(self)

    def labels(self, *values: str):
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            series = self._series[values] = self._new_series()
        return series

    def describe(self):
        return [self._family()]


class LoopCounter(_LoopMetric):
    """A counter (exported as ``<name>_total``); see :class:`_LoopMetric`."""

    def _new_series(self) -> _Count:
        return _Count()

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self):
        family = self._family()
        for values, series in self._series.items():
            family.add_metric(values, series.value)
        yield family


class LoopHistogram(_LoopMetric):
    """A histogram with fixed buckets; see :class:`_LoopMetric`."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], registry: CollectorRegistry,
                 buckets: tuple[float, ...] = FAST_BUCKETS):
        self.buckets = tuple(sorted(buckets))
        super().__init__(name, documentation, labelnames, registry)

    def _new_series(self) -> _Distribution:
        return _Distribution(self.buckets)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self):
        family = self._family()
        bounds = [floatToGoString(b) for b in self.buckets] + ["+Inf"]
        for values, series in self._series.items():
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, series.counts):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(values, buckets, series.sum)
        yield family


class GrpcMetrics:
    """Requests by method and status code, and their latency."""

    def __init__(self, registry: CollectorRegistry, methods: list[str], version: str):
        self.requests = LoopCounter("riskcore_grpc_requests", "gRPC requests handled, by method and status code",
                                    ("method", "code"), registry)
        self.duration = LoopHistogram("riskcore_grpc_request_duration_seconds",
                                      "Server-side time to handle a gRPC request", ("method",), registry)
        self.build_info = Gauge("riskcore_build_info", "Build information", ["version"], registry=registry)
        self.build_info.labels(version).set(1)
        for method in methods:
            self.requests.labels(method, "OK")
            self.duration.labels(method)
