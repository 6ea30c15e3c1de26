"""Prometheus metrics shared by the gRPC front-ends.

Names follow the Prometheus guide: ``riskcore_`` prefix, base units,
``_total`` counters, bounded labels only (method and status code, never an
order id). Each service owns a private ``CollectorRegistry``.

The request path's series are bound once per method at startup
(:class:`MethodSeries`): a call updates its method's counter and histogram
directly, with no label lookup. ``riskcore_log_lines_dropped_total`` counts
the access lines the log writer could not queue or write (see
:mod:`riskcore_services.common.logging`).
"""
import math
from bisect import bisect_left
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from riskcore_services.common.logging import lines_dropped

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


def _ns_bound(seconds: float) -> int:
    """The largest whole number of nanoseconds ``n`` with ``n / 1e9 <= seconds``.

    So that ``observe_ns(n)`` lands in the bucket ``observe(n / 1e9)`` would,
    floating-point rounding included.
    """
    n = math.floor(seconds * 1e9)
    while (n + 1) / 1e9 <= seconds:
        n += 1
    while n / 1e9 > seconds:
        n -= 1
    return n


class _Distribution:
    __slots__ = ("bounds", "bounds_ns", "counts", "sum", "sum_ns")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.bounds_ns = tuple(_ns_bound(b) if math.isfinite(b) else math.inf for b in bounds)
        self.counts = [0] * (len(bounds) + 1)    # the last one is +Inf
        self.sum = 0.0
        self.sum_ns = 0                           # observations in whole nanoseconds, kept exact

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_ns(self, value: int) -> None:
        """Observe ``value`` nanoseconds (integer work only: no float per observation)."""
        self.counts[bisect_left(self.bounds_ns, value)] += 1
        self.sum_ns += value

    @property
    def total_seconds(self) -> float:
        return self.sum + self.sum_ns / 1e9


_S = TypeVar("_S", "_Count", "_Distribution")


class _LoopMetric(Collector, Generic[_S]):
    """A labelled metric of the request path, updated and scraped on the event loop's thread.

    prometheus_client's metrics take a lock on every update. Cold between two
    calls, those updates cost several microseconds of each call's latency;
    these need no lock because one thread does both the updates and the
    scrapes (``/metrics`` is served on the same loop). Not for other threads.
    """

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], registry: CollectorRegistry):
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._series: dict[tuple[str, ...], _S] = {}
        registry.register(self)

    def _new_series(self) -> _S:
        raise NotImplementedError

    def _family(self):
        raise NotImplementedError

    def labels(self, *values: str) -> _S:
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            series = self._series[values] = self._new_series()
        return series

    def describe(self):
        return [self._family()]


class LoopCounter(_LoopMetric[_Count]):
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


class LoopHistogram(_LoopMetric[_Distribution]):
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
            family.add_metric(values, buckets, series.total_seconds)
        yield family


class MethodSeries:
    """One method's request counters and duration histogram, bound once at startup.

    The call path updates ``ok`` and ``duration`` directly: no label lookup
    per call. Failures, rare, find their code's counter in a dict.
    """

    __slots__ = ("method", "ok", "duration", "_requests", "_failed")

    def __init__(self, requests: LoopCounter, duration: LoopHistogram, method: str):
        self.method = method
        self.ok: _Count = requests.labels(method, "OK")
        self.duration: _Distribution = duration.labels(method)
        self._requests = requests
        self._failed: dict[str, _Count] = {}

    def failed(self, code: str) -> _Count:
        """The counter of calls that ended with status ``code`` (a name such as ``INTERNAL``)."""
        count = self._failed.get(code)
        if count is None:
            count = self._failed[code] = self._requests.labels(self.method, code)
        return count


class _DroppedLines(Collector):
    """``riskcore_log_lines_dropped_total``: read from the process's log writer at each scrape."""

    def __init__(self, registry: CollectorRegistry):
        registry.register(self)

    @staticmethod
    def _family(value=None) -> CounterMetricFamily:
        return CounterMetricFamily("riskcore_log_lines_dropped",
                                   "Log lines dropped because the log writer's queue was full or stdout failed",
                                   value=value)

    def describe(self):
        return [self._family()]

    def collect(self):
        yield self._family(lines_dropped())


class GrpcMetrics:
    """Requests by method and status code, their latency, and the log lines dropped."""

    def __init__(self, registry: CollectorRegistry, methods: list[str], version: str):
        self.requests = LoopCounter("riskcore_grpc_requests", "gRPC requests handled, by method and status code",
                                    ("method", "code"), registry)
        self.duration = LoopHistogram("riskcore_grpc_request_duration_seconds",
                                      "Server-side time to handle a gRPC request", ("method",), registry)
        self.build_info = Gauge("riskcore_build_info", "Build information", ["version"], registry=registry)
        self.build_info.labels(version).set(1)
        _DroppedLines(registry)
        self._methods = {method: MethodSeries(self.requests, self.duration, method) for method in methods}

    def method(self, name: str) -> MethodSeries:
        """The series of ``name``, bound when the method was declared (at startup)."""
        series = self._methods.get(name)
        if series is None:
            series = self._methods[name] = MethodSeries(self.requests, self.duration, name)
        return series
