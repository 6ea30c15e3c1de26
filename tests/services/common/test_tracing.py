"""OpenTelemetry tracing, on by configuration: spans reach a real OTLP/gRPC receiver run by the test."""
import concurrent.futures
import signal
import threading
import time

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from riskcore_services.proto import risk_pb2

DEADLINE = 5.0  # seconds for every call


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace collector that keeps (resource attributes, span) pairs."""

    def __init__(self):
        self.spans: list[tuple[dict, trace_pb2.Span]] = []
        self._lock = threading.Lock()

    def Export(self, request, context):
        with self._lock:
            for resource_spans in request.resource_spans:
                resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend((resource, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def named(self, suffix: str) -> list[tuple[dict, trace_pb2.Span]]:
        with self._lock:
            return [(r, s) for r, s in self.spans if s.name.endswith(suffix)]


@pytest.fixture(scope="module")
def receiver():
    collector = Receiver()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    collector.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield collector
    server.stop(0).wait(DEADLINE)


@pytest.fixture(scope="module")
def traced_calls(receiver, spawn_for_module, config_writer):
    """A child server exporting to ``receiver``: three calls, then SIGTERM (which flushes the spans)."""
    spawn, directory = spawn_for_module
    child = spawn(config_writer(
        directory, f'[tracing]\nendpoint = "127.0.0.1:{receiver.port}"\nservice_name = "risk-under-test"\n'))
    stub = child.wait_ready().stub()
    stub.CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY, quantity=10), timeout=DEADLINE)
    stub.SubmitOrder(risk_pb2.OrderRequest(client_order_id="t-1", symbol="AAPL", side=risk_pb2.BUY, quantity=10),
                     timeout=DEADLINE)
    with pytest.raises(grpc.RpcError):
        stub.SubmitOrder(risk_pb2.OrderRequest(client_order_id="t-2", symbol="AAPL", side=risk_pb2.BUY, quantity=0),
                         timeout=DEADLINE)
    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.output()
    end = time.monotonic() + DEADLINE
    while len(receiver.named("SubmitOrder")) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    return receiver


def test_tracing_exports_a_server_span_per_risk_engine_call(traced_calls):
    checks = traced_calls.named("/riskcore.v1.RiskEngine/CheckPosition")
    submits = traced_calls.named("/riskcore.v1.RiskEngine/SubmitOrder")

    assert len(checks) == 1 and len(submits) == 2, [s.name for _, s in traced_calls.spans]
    for _, span in checks + submits:
        assert span.kind == trace_pb2.Span.SPAN_KIND_SERVER
        assert span.end_time_unix_nano >= span.start_time_unix_nano > 0


def test_tracing_names_the_configured_service(traced_calls):
    resources = {resource.get("service.name") for resource, _ in traced_calls.spans}

    assert resources == {"risk-under-test"}


def test_tracing_records_each_calls_grpc_status_code(traced_calls):
    def status_code(span) -> int:
        return next(kv.value.int_value for kv in span.attributes if kv.key == "rpc.grpc.status_code")

    codes = sorted(status_code(span) for _, span in traced_calls.named("/riskcore.v1.RiskEngine/SubmitOrder"))

    assert codes == [grpc.StatusCode.OK.value[0], grpc.StatusCode.INVALID_ARGUMENT.value[0]]
