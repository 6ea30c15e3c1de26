"""OpenTelemetry tracing of gRPC calls, exported over OTLP; off unless configured."""
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def tracing_interceptors(service_name: str, endpoint: str, insecure: bool = True):
    """Return (server interceptors, provider) that trace every call to ``endpoint``.

    Call ``provider.shutdown()`` at exit to flush the last spans.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=insecure)))
    trace.set_tracer_provider(provider)
    return [aio_server_interceptor(tracer_provider=provider)], provider
