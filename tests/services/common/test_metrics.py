"""The request path's lock-free metrics expose exactly what prometheus_client's own would."""
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from riskcore_services.common import logging as logs
from riskcore_services.common.logging import LogWriter
from riskcore_services.common.metrics import FAST_BUCKETS, GrpcMetrics, LoopCounter, LoopHistogram

LABELS = ("method", "code")
label_values = st.tuples(st.sampled_from(["Check", "Submit"]), st.sampled_from(["OK", "INTERNAL"]))
# Include values exactly on the bucket bounds: a bound's own value belongs to its bucket (le).
seconds = st.one_of(st.sampled_from(FAST_BUCKETS), st.floats(0, 5, allow_nan=False))


def samples(registry: CollectorRegistry) -> dict:
    """Every sample of the exposition except the ``_created`` timestamps prometheus_client adds."""
    found = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


# Whole nanoseconds, on and around every bucket bound.
nanoseconds = st.one_of(st.sampled_from([round(b * 1e9) + d for b in FAST_BUCKETS for d in (-1, 0, 1)]),
                        st.integers(0, 5 * 10**9))
# The request path observes nanoseconds, other callers seconds; one histogram may get both.
observation = st.one_of(st.tuples(label_values, st.just("s"), seconds),
                        st.tuples(label_values, st.just("ns"), nanoseconds))


@given(st.lists(observation, max_size=60))
def test_loop_histogram_matches_prometheus_client_observing_seconds_or_nanoseconds(observations):
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("demo_seconds", "demo", LABELS, ours)
    reference = Histogram("demo_seconds", "demo", LABELS, buckets=FAST_BUCKETS, registry=theirs)
    for values, unit, value in observations:
        if unit == "s":
            loop.labels(*values).observe(value)
        else:
            loop.labels(*values).observe_ns(value)
        reference.labels(*values).observe(value if unit == "s" else value / 1e9)

    assert samples(ours) == pytest.approx(samples(theirs))


@given(st.lists(st.tuples(label_values, st.integers(0, 10**6)), max_size=60))
def test_loop_counter_matches_prometheus_client(increments):
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopCounter("demo_events", "demo", LABELS, ours)
    reference = Counter("demo_events", "demo", LABELS, registry=theirs)
    for values, amount in increments:
        loop.labels(*values).inc(amount)
        reference.labels(*values).inc(amount)

    assert samples(ours) == samples(theirs)


def test_wrong_number_of_label_values_is_refused():
    counter = LoopCounter("demo_events", "demo", LABELS, CollectorRegistry())
    with pytest.raises(ValueError, match="expected labels"):
        counter.labels("Check")


def test_a_name_registered_twice_is_refused():
    registry = CollectorRegistry()
    LoopCounter("demo_events", "demo", LABELS, registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Counter("demo_events", "demo", LABELS, registry=registry)


def test_grpc_metrics_bind_each_methods_series_once_at_startup():
    metrics = GrpcMetrics(CollectorRegistry(), ["Check", "Submit"], "1.0")
    check = metrics.method("Check")

    assert metrics.method("Check") is check
    assert check.ok is metrics.requests.labels("Check", "OK")
    assert check.duration is metrics.duration.labels("Check")
    assert check.failed("INTERNAL") is check.failed("INTERNAL") is metrics.requests.labels("Check", "INTERNAL")


def test_grpc_metrics_export_every_declared_method_before_its_first_call():
    registry = CollectorRegistry()
    GrpcMetrics(registry, ["Check", "Submit"], "1.0")

    found = samples(registry)
    assert found[("riskcore_grpc_requests_total", (("code", "OK"), ("method", "Check")))] == 0
    assert found[("riskcore_grpc_request_duration_seconds_count", (("method", "Submit"),))] == 0


def test_log_lines_the_writer_dropped_are_exported_as_a_counter(monkeypatch):
    class Refusing(io.BytesIO):
        def write(self, data):
            raise OSError("stdout is gone")

    writer = LogWriter()
    monkeypatch.setattr(logs, "_writer", writer)
    registry = CollectorRegistry()
    GrpcMetrics(registry, ["Check"], "1.0")
    try:
        assert samples(registry)[("riskcore_log_lines_dropped_total", ())] == 0
        for _ in range(3):
            writer.submit((Refusing(), b"{}"))
        assert writer.flush(5.0)
    finally:
        writer.close()

    assert samples(registry)[("riskcore_log_lines_dropped_total", ())] == 3
