"""A service's event stream: subscribers over gRPC (tested with each service) and in-process listeners."""
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from riskcore_services.common.events import EventStream
from riskcore_services.common.metrics import new_registry
from riskcore_services.testing import Metrics


def test_nothing_is_reported_while_nobody_listens_and_a_listener_gets_the_conditions_first():
    stream = EventStream("risk", new_registry())
    stream.conditions = lambda: [stream.event("trading_state", {"account": "FIRM", "state": "HALTED"})]
    heard = []
    stream.publish("breach", {"account": "a"})
    assert not stream.listening
    stream.listen(heard.append)
    stream.publish("breach", {"account": "b"})
    assert stream.listening
    assert [(e.kind, e.labels["account"]) for e in heard] == [("trading_state", "FIRM"), ("breach", "b")]


def test_a_failing_listener_is_counted_and_logged_and_the_publisher_and_other_listeners_go_on():
    registry = new_registry()
    stream = EventStream("risk", registry)
    heard = []

    def broken(event):
        raise KeyError(event.kind)

    stream.listen(broken)
    stream.listen(heard.append)
    with capture_logs() as logs:
        stream.publish("breach", {"account": "a"})
        stream.publish("breach", {"account": "b"})
    assert [e.labels["account"] for e in heard] == ["a", "b"]
    assert Metrics(generate_latest(registry).decode()).value("riskcore_events_listener_failures_total") == 2
    failures = [line for line in logs if line["event"] == "event listener failed"]
    assert len(failures) == 2 and failures[0]["kind"] == "breach" and failures[0]["log_level"] == "error"
