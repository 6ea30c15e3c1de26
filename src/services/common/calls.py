"""One place for what every gRPC call needs around its handler.

Each handler is wrapped once: a request id bound into the log context,
authentication and the admin role, the deadline, exceptions mapped to status
codes (ValueError -> INVALID_ARGUMENT, KeyError -> NOT_FOUND, anything else ->
INTERNAL with the traceback logged), the request metrics and one log line.
"""
import asyncio
import functools
import inspect
import itertools
import os
import time
from typing import Callable

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message

from riskcore_services.common.auth import TokenAuth
from riskcore_services.common.errors import status_of
from riskcore_services.common.logging import bind_call, get_logger
from riskcore_services.common.metrics import GrpcMetrics

log = get_logger("grpc")


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
    """

    def __init__(self, auth: TokenAuth, metrics: GrpcMetrics, log_requests: str = "all",
                 is_ready: Callable[[], bool] = lambda: True):
        if log_requests not in ("all", "changes", "errors"):
            raise ValueError(f"log_requests must be all, changes or errors, got {log_requests!r}")
        self.auth = auth
        self.metrics = metrics
        self.log_requests = log_requests
        self._quiet: set[str] = set()    # methods whose successful calls are not logged
        self.is_ready = is_ready
        # Request ids: a random per-process prefix and a counter, unique and cheap.
        self._ids = map(f"{os.urandom(6).hex()}-{{:x}}".format, itertools.count(1))
        self._series: dict = {}          # (method, code) -> (request count, duration histogram)

    def _end(self, method: str, code: grpc.StatusCode, started: int, exc: BaseException | None) -> None:
        """Count and time the call; log it once its answer is on its way.

        The log line waits for the event loop's next turn (with the call's log
        context, which ``call_soon`` copies), so it is written while the answer
        travels back instead of delaying it; it still comes before anything the
        loop reads afterwards. The counters are updated at once: deferring
        them costs an extra turn of the loop, more than they cost.
        """
        seconds = (time.perf_counter_ns() - started) / 1e9
        series = self._series.get((method, code))
        if series is None:
            series = self._series[method, code] = (self.metrics.requests.labels(method, code.name),
                                                   self.metrics.duration.labels(method))
        series[0].inc()
        series[1].observe(seconds)
        if code is not grpc.StatusCode.OK or method not in self._quiet:
            asyncio.get_running_loop().call_soon(self._log, code, seconds, exc)

    @staticmethod
    def _log(code: grpc.StatusCode, seconds: float, exc: BaseException | None) -> None:
        if code is grpc.StatusCode.INTERNAL:
            log.error("call failed", code=code.name, duration_us=round(seconds * 1e6, 1), exc_info=exc)
        else:
            log.info("call", code=code.name, duration_us=round(seconds * 1e6, 1),
                     error=None if exc is None else str(exc))

    def _declare(self, method: str, changes: bool) -> None:
        if self.log_requests == "errors" or (self.log_requests == "changes" and not changes):
            self._quiet.add(method)

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
        self._declare(method, changes)

        def decorate(handler):
            waits = inspect.iscoroutinefunction(handler)

            @functools.wraps(handler)
            async def wrapper(servicer, request, context):
                call = _Call(self, method, context, admin, always)
                try:
                    response = handler(servicer, call.begin(request, stream_errors), call)
                    if waits:
                        response = await response
                except BaseException as error:
                    await call.finish(error)
                    raise
                self._end(method, grpc.StatusCode.OK, call.started, None)
                return response

            return wrapper

        return decorate


class _Call:
    """One call: the checks before its handler, its status, metrics and log line after.

    Handlers get it as ``call`` and read ``call.identity``. It is also the
    call's log tag (see :func:`riskcore_services.common.logging.bind_call`): the
    request id is worked out at the first line the call logs, which for most
    calls comes after the answer is sent. Called explicitly rather than as an
    async context manager: it sits on every call, and each extra coroutine
    shows in the latency. The log tag needs no clearing: grpc runs every call
    in a task of its own.
    """

    __slots__ = ("handling", "method", "context", "admin", "always", "started", "metadata", "identity",
                 "_request_id")

    def __init__(self, handling: CallHandling, method: str, context, admin: bool, always: bool = False):
        self.handling, self.method, self.context, self.admin, self.always = handling, method, context, admin, always
        self.started = time.perf_counter_ns()
        self.metadata = self.identity = self._request_id = None

    @property
    def request_id(self) -> str:
        """The caller's ``x-request-id``, or else a fresh id."""
        if self._request_id is None:
            given = next((value for key, value in self.metadata or () if key == "x-request-id"), None)
            self._request_id = given or next(self.handling._ids)
        return self._request_id

    def begin(self, request, stream_errors: bool = False):
        """Check the call may proceed (deadline, readiness, credentials, a request that parsed); tag the
        task's log lines with it. Return the request (a client stream's messages are checked as they come,
        unless ``stream_errors``: then a message that did not parse is passed on as a MalformedRequest)."""
        handling, context = self.handling, self.context
        self.metadata = context.invocation_metadata()
        bind_call(self)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise _Expired()
        if not self.always and not handling.is_ready():
            raise _NotReady()
        self.identity = handling.auth.authenticate(self.metadata, self.admin)
        if isinstance(request, Message):
            return request
        if type(request) is MalformedRequest:
            raise ValueError(request.error)
        if stream_errors:
            return request
        return _checked_stream(request)      # a client stream: each message is checked as it comes

    async def finish(self, error: BaseException) -> None:
        """Record the call's status; a failure that is not already a status becomes an abort (which raises)."""
        code, failure, context = grpc.StatusCode.OK, None, self.context
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
            self.handling._end(self.method, code, self.started, failure)


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
