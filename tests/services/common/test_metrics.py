"""The request path's lock-free metrics expose exactly what prometheus_client's own would."""
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from riskcore_services.common.metrics import FAST_BUCKETS, LoopCounter, LoopHistogram

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


@given(st.lists(st.tuples(label_values, seconds), max_size=60))
def test_loop_histogram_matches_prometheus_client(observations):
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("demo_seconds", "demo", LABELS, ours)
    reference = Histogram("demo_seconds", "demo", LABELS, buckets=FAST_BUCKETS, registry=theirs)
    for values, value in observations:
        loop.labels(*values).observe(value)
        reference.labels(*values).observe(value)

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
