"""One place for what every gRPC call needs around its handler.

Each handler is wrapped once: a request id bound into the log context,
authentication and the admin role, the deadline, exceptions mapped to status
codes (ValueError -> INVALID_ARGUMENT, KeyError -> NOT_FOUND, anything else ->
INTERNAL with the traceback logged), the request metrics and one log line.

What runs per call is kept to a minimum, for it sits in every call's latency:
everything that depends only on the method (its metric series, whether its
successful calls are logged, its checks) is worked out once, when the method
is declared at startup. A call allocates one record, :class:`_Call`, which
is also its access line: the event loop fills in the status and the end time
and queues the record; the log writer's thread renders it (request id,
token, code, duration, timestamp) as JSON and writes it (see
:mod:`riskcore_services.common.logging`).
"""
import asyncio
import functools
import inspect
import itertools
import os
import threading
import time
from typing import Callable

import grpc
import structlog
from google.protobuf import message_factory
from google.protobuf.message import Message

from riskcore_services.common.auth import Identity, TokenAuth
from riskcore_services.common.errors import bounded_message, status_of
from riskcore_services.common.logging import LogWriter, _call, get_logger, iso_utc, writer
from riskcore_services.common.metrics import GrpcMetrics, MethodSeries

log = get_logger("grpc")

_OK = grpc.StatusCode.OK
_INTERNAL = grpc.StatusCode.INTERNAL
_clock_ns = time.perf_counter_ns
_bind_call = _call.set          # riskcore_services.common.logging.bind_call without its Python frame
# Guards working out a call's request id, which the event loop (a line logged during the call) and
# the writer thread (its access line) may both ask for first.
_id_lock = threading.Lock()


class CallHandling:
    """Decorators for aio servicer methods.

    Parameters
    ----------
    auth : TokenAuth
    metrics : GrpcMetrics
    log_requests : str
        Which successful calls get a log line (streams: one per stream):
        ``"all"``, ``"changes"`` (methods declared with ``changes=True``) or
        ``"errors"`` (none). Failed calls always get one.
    is_ready : callable returning bool
        While it returns False (recovering, shutting down) calls get UNAVAILABLE.
    log_writer : LogWriter, optional
        Where access lines are queued; the process's writer when omitted.

    Notes
    -----
    Per call, on the event loop: one :class:`_Call` record, the checks, the
    handler, two metric updates through series bound at startup, and (when
    the call is logged) a put on the writer's queue. The access line's JSON
    is rendered and written on the writer's thread.
    """

    def __init__(self, auth: TokenAuth, metrics: GrpcMetrics, log_requests: str = "all",
                 is_ready: Callable[[], bool] = lambda: True, log_writer: LogWriter | None = None):
        if log_requests not in ("all", "changes", "errors"):
            raise ValueError(f"log_requests must be all, changes or errors, got {log_requests!r}")
        self.auth = auth
        self.metrics = metrics
        self.log_requests = log_requests
        self.is_ready = is_ready
        self.writer = writer() if log_writer is None else log_writer
        # Request ids: a random per-process prefix and a counter, unique and cheap.
        self._ids = map(f"{os.urandom(6).hex()}-{{:x}}".format, itertools.count(1))

    def _logs_success(self, changes: bool) -> bool:
        return self.log_requests == "all" or (self.log_requests == "changes" and changes)

    def rpc(self, method: str, admin: bool = False, always: bool = False, changes: bool = False,
            stream_errors: bool = False):
        """Wrap ``handler(self, request, call)`` as the servicer method ``method``.

        ``request`` is the parsed request, or for client streams an async
        iterator of them; ``call.identity`` is the caller. A unary-response
        handler returns its response; a streaming one writes each response
        with ``await call.context.write(...)`` (no generator between grpc and
        the handler: each layer shows in a stream message's latency).
        ``handler`` is a coroutine function, or a plain function for calls that
        never wait. ``always`` lets the call through while the service is not
        ready (operator calls); ``changes`` says the method changes state (see
        ``log_requests``). A client-stream handler declared with
        ``stream_errors`` gets a message that did not parse as a
        :class:`MalformedRequest` item, to answer in-stream; otherwise such a
        message ends the call with INVALID_ARGUMENT.
        """
        site = _Method(self, method, admin, always, stream_errors, self._logs_success(changes))

        def decorate(handler):
            waits = inspect.iscoroutinefunction(handler)

            @functools.wraps(handler)
            async def wrapper(servicer, request, context):
                call = _Call(site, context)
                try:
                    response = handler(servicer, call.begin(request), call)
                    if waits:
                        response = await response
                except BaseException as error:
                    await call.finish(error)
                    raise
                call.end(_OK, None)
                return response

            return wrapper

        return decorate


class _Method:
    """What a call needs to know of its method, worked out once when the method is declared."""

    __slots__ = ("handling", "method", "admin", "always", "stream_errors", "logs_success", "series", "ok",
                 "observe_ns", "is_ready", "authenticate", "submit")

    def __init__(self, handling: CallHandling, method: str, admin: bool, always: bool, stream_errors: bool,
                 logs_success: bool):
        self.handling, self.method, self.admin, self.always = handling, method, admin, always
        self.stream_errors, self.logs_success = stream_errors, logs_success
        self.series: MethodSeries = handling.metrics.method(method)
        # Bound once: each is one attribute load per call instead of a chain of them.
        self.ok, self.observe_ns = self.series.ok, self.series.duration.observe_ns
        self.is_ready, self.authenticate = handling.is_ready, handling.auth.authenticate
        self.submit = handling.writer.submit


class _Call:
    """One call: the checks before its handler, its status, metrics and its access line after.

    Handlers get it as ``call`` and read ``call.identity``. It is also the
    call's log tag (see :func:`riskcore_services.common.logging.bind_call`)
    and, once the call has ended, its access line, queued unrendered: the
    writer thread renders it from :meth:`log_fields`. The request id is worked out at the
    first line that needs it, which for most calls is the access line, on
    the writer's thread. Called explicitly rather than as an async context
    manager: it sits on every call, and each extra coroutine shows in the
    latency. The log tag needs no clearing: grpc runs every call in a task
    of its own.
    """

    __slots__ = ("site", "context", "started", "ended", "metadata", "identity", "code", "error", "_request_id")
    metadata: tuple[tuple[str, str], ...] | None
    identity: Identity | None
    error: str | None
    _request_id: str | None

    def __init__(self, site: _Method, context):
        self.site, self.context = site, context
        self.metadata = self.identity = self._request_id = None
        self.started = _clock_ns()

    @property
    def method(self) -> str:
        return self.site.method

    @property
    def request_id(self) -> str:
        """The caller's ``x-request-id``, or else a fresh id."""
        found = self._request_id
        if found is None:
            with _id_lock:
                found = self._request_id
                if found is None:
                    for key, value in self.metadata or ():
                        if key == "x-request-id" and value:
                            found = value
                            break
                    else:
                        found = next(self.site.handling._ids)
                    self._request_id = found
        return found

    def begin(self, request):
        """Check the call may proceed (deadline, readiness, credentials, a request that parsed); tag the
        task's log lines with it. Return the request (a client stream's messages are checked as they come,
        unless the method takes ``stream_errors``: then a message that did not parse is passed on as a
        MalformedRequest)."""
        site, context = self.site, self.context
        self.metadata = metadata = context.invocation_metadata()
        _bind_call(self)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise _Expired()
        if not site.always and not site.is_ready():
            raise _NotReady()
        self.identity = site.authenticate(metadata, site.admin)
        if isinstance(request, Message):
            return request
        if type(request) is MalformedRequest:
            raise ValueError(request.error)
        if site.stream_errors:
            return request
        return _checked_stream(request)      # a client stream: each message is checked as it comes

    def end(self, code: grpc.StatusCode, error: BaseException | None) -> None:
        """Count and time the call; queue its access line, unless successful calls of its method are quiet.

        The counters are updated at once, on the loop (their scrapes are too);
        the line is rendered and written by the log writer's thread. The
        queued record lets go of the call's grpc objects first: they belong
        to the event loop, and must be neither kept alive by the queue nor
        freed by another thread. For the same reason a failure is reduced to
        text here (a traceback's frames hold the call's objects); failures
        are rare, and an INTERNAL one is a bug.
        """
        self.ended = ended = _clock_ns()
        site = self.site
        site.observe_ns(ended - self.started)
        if code is _OK:
            site.ok.inc()
            if not site.logs_success:
                return
        else:
            site.series.failed(code.name).inc()
        self.code, self.context = code, None
        self.error = None if error is None else _describe(code, error)
        site.submit(self)

    def log_fields(self) -> tuple[str, str, dict]:
        """The call's access line as ``(level, event, fields)``, for the log writer's thread to render.

        The timestamp is the instant the call ended (now, less the time the
        line waited in the queue). A call that failed INTERNAL is an error
        line with its traceback; any other is an info line.
        """
        ended, code, error, identity = self.ended, self.code, self.error, self.identity
        fields = {"component": "grpc", "request_id": self.request_id, "method": self.site.method,
                  "token": None if identity is None else identity.name, "code": code.name,
                  "duration_us": round((ended - self.started) / 1e3, 1),
                  "timestamp": iso_utc(time.time_ns() - (_clock_ns() - ended))}
        if code is _INTERNAL:
            if error is not None:
                fields["exception"] = error
            return "error", "call failed", fields
        fields["error"] = error
        return "info", "call", fields

    async def finish(self, error: BaseException) -> None:
        """Record the call's status; a failure that is not already a status becomes an abort (which raises)."""
        code, failure, context = _OK, None, self.context
        try:
            if isinstance(error, asyncio.CancelledError):
                code = grpc.StatusCode.CANCELLED
            elif isinstance(error, grpc.aio.AbortError):
                code = context.code() or grpc.StatusCode.UNKNOWN
            elif isinstance(error, _Expired):
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                await context.abort(code, "deadline expired before the call was processed")
            elif isinstance(error, _NotReady):
                code = grpc.StatusCode.UNAVAILABLE
                await context.abort(code, "not ready: recovering state or shutting down")
            elif isinstance(error, Exception):  # every failure becomes a status
                code, message = status_of(error)
                failure = error
                await context.abort(code, message)
        finally:
            self.end(code, failure)


def _describe(code: grpc.StatusCode, error: BaseException) -> str:
    """A failure as its access line shows it: the traceback as structlog formats it for INTERNAL, else the message."""
    if code is _INTERNAL:
        return structlog.processors.format_exc_info(None, "error", {"exc_info": error})["exception"]
    return bounded_message(str(error))


class MalformedRequest:
    """Stands for a request whose bytes did not parse; the handler answers INVALID_ARGUMENT."""

    __slots__ = ("error",)

    def __init__(self, error: str):
        self.error = error


def _tolerant(parse):
    def deserialize(data: bytes):
        try:
            return parse(data)
        except Exception as error:  # noqa: BLE001 - DecodeError and friends
            return MalformedRequest(f"malformed request message: {error}")

    return deserialize


async def _checked_stream(requests):
    async for request in requests:
        if type(request) is MalformedRequest:
            raise ValueError(request.error)
        yield request


def add_servicer(server, service_descriptor, servicer) -> None:
    """Register ``servicer`` like the generated ``add_*_to_server``, except that a
    request that fails to parse reaches the handler (and becomes INVALID_ARGUMENT)
    instead of failing inside grpc with UNKNOWN."""
    kinds = {(False, False): grpc.unary_unary_rpc_method_handler,
             (False, True): grpc.unary_stream_rpc_method_handler,
             (True, False): grpc.stream_unary_rpc_method_handler,
             (True, True): grpc.stream_stream_rpc_method_handler}
    handlers = {}
    for method in service_descriptor.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        make = kinds[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(getattr(servicer, method.name),
                                     request_deserializer=_tolerant(request_type.FromString),
                                     response_serializer=response_type.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_descriptor.full_name, handlers),))
    # Registered methods skip grpc's per-call lookup through the generic handlers.
    server.add_registered_method_handlers(service_descriptor.full_name, handlers)


class _Expired(Exception):
    """The call's deadline passed before its handler started."""


class _NotReady(Exception):
    """The service is not ready to take calls."""
