"""One place for what every gRPC call needs around its handler.

Each handler is wrapped once: a request id bound into the log context,
authentication and the admin role, the deadline, exceptions mapped to status
codes (ValueError -> INVALID_ARGUMENT, KeyError -> NOT_FOUND, anything else ->
INTERNAL with the traceback logged), the request metrics and one log line.
"""
import asyncio
import functools
import itertools
import os
import time
from typing import Callable

import grpc
import structlog
from google.protobuf import message_factory

from services.common.auth import AuthError, TokenAuth
from services.common.logging import get_logger
from services.common.metrics import GrpcMetrics

log = get_logger("grpc")


class Unavailable(RuntimeError):
    """The service cannot take the call now (answered with UNAVAILABLE, which clients retry)."""


class FailedPrecondition(RuntimeError):
    """The call does not apply to this service's state (FAILED_PRECONDITION)."""


def _status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, AuthError):
        return exc.code, str(exc)
    if isinstance(exc, Unavailable):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, FailedPrecondition):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, KeyError):
        return grpc.StatusCode.NOT_FOUND, str(exc.args[0]) if exc.args else "not found"
    return grpc.StatusCode.INTERNAL, "internal error"


class CallContext:
    """What a handler learns about its call: who made it."""

    __slots__ = ("identity",)

    def __init__(self, identity):
        self.identity = identity


class CallHandling:
    """Decorators for aio servicer methods.

    Parameters
    ----------
    auth : TokenAuth
    metrics : GrpcMetrics
    log_requests : bool
        Log one line per call (streams: one per stream).
    is_ready : callable returning bool
        While it returns False (recovering, shutting down) calls get UNAVAILABLE.
    """

    def __init__(self, auth: TokenAuth, metrics: GrpcMetrics, log_requests: bool = True,
                 is_ready: Callable[[], bool] = lambda: True):
        self.auth = auth
        self.metrics = metrics
        self.log_requests = log_requests
        self.is_ready = is_ready
        # Request ids: a random per-process prefix and a counter, unique and cheap.
        self._ids = map(f"{os.urandom(6).hex()}-{{:x}}".format, itertools.count(1))
        self._children: dict = {}

    def _observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        children = self._children.get((method, code))
        if children is None:
            children = (self.metrics.requests.labels(method, code.name), self.metrics.duration.labels(method))
            self._children[(method, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def _end(self, method: str, code: grpc.StatusCode, started: int, exc: BaseException | None) -> None:
        elapsed = (time.perf_counter_ns() - started) / 1e9
        self._observe(method, code, elapsed)
        if code is grpc.StatusCode.INTERNAL:
            log.error("call failed", code=code.name, duration_us=round(elapsed * 1e6, 1), exc_info=exc)
        elif self.log_requests or code is not grpc.StatusCode.OK:
            log.info("call", code=code.name, duration_us=round(elapsed * 1e6, 1),
                     error=None if exc is None else str(exc))

    def unary(self, method: str, admin: bool = False, always: bool = False):
        """Wrap ``async def handler(self, request, call: CallContext)`` (unary response).

        ``always`` lets the call through while the service is not ready (operator calls).
        """

        def decorate(handler):
            @functools.wraps(handler)
            async def wrapper(servicer, request, context):
                async with _Call(self, method, context, admin, always) as call:
                    return await handler(servicer, _checked(request), call)

            return wrapper

        return decorate

    def stream(self, method: str, admin: bool = False):
        """Wrap ``async def handler(self, request, context, call)``, an async generator of responses."""

        def decorate(handler):
            @functools.wraps(handler)
            async def wrapper(servicer, request, context):
                async with _Call(self, method, context, admin) as call:
                    requests = _checked_stream(request) if hasattr(request, "__aiter__") else _checked(request)
                    async for item in handler(servicer, requests, context, call):
                        yield item

            return wrapper

        return decorate


class _Call:
    """The span of one call: the checks before the handler, the status, metrics and log line after.

    A plain class rather than ``contextlib.asynccontextmanager``: it sits on
    every call, and a generator-based manager costs several times more.
    Bound log context needs no clearing: grpc runs every call in its own task.
    """

    __slots__ = ("handling", "method", "context", "admin", "always", "started")

    def __init__(self, handling: CallHandling, method: str, context, admin: bool, always: bool = False):
        self.handling, self.method, self.context, self.admin, self.always = handling, method, context, admin, always
        self.started = time.perf_counter_ns()

    async def __aenter__(self) -> CallContext:
        try:
            return self._begin()
        except BaseException as error:
            await self._finish(error)
            raise

    async def __aexit__(self, exc_type, error, traceback) -> bool:
        await self._finish(error)
        return False

    def _begin(self) -> CallContext:
        handling, context = self.handling, self.context
        metadata = context.invocation_metadata()
        request_id = None
        for key, value in metadata or ():
            if key == "x-request-id":
                request_id = value
                break
        structlog.contextvars.bind_contextvars(request_id=request_id or next(handling._ids), method=self.method)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise _Expired()
        if not self.always and not handling.is_ready():
            raise _NotReady()
        return CallContext(handling.auth.authenticate(metadata, self.admin))

    async def _finish(self, error: BaseException | None) -> None:
        """Record the call's status; a failure that is not already a status becomes an abort (which raises)."""
        code, failure, context = grpc.StatusCode.OK, None, self.context
        try:
            if error is None:
                return
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
                code, message = _status_of(error)
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


def _checked(request):
    if isinstance(request, MalformedRequest):
        raise ValueError(request.error)
    return request


async def _checked_stream(requests):
    async for request in requests:
        yield _checked(request)


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
