"""One place for what every gRPC call needs around its handler.

Each handler is wrapped once: a request id bound into the log context,
authentication and the admin role, the deadline, exceptions mapped to status
codes (ValueError -> INVALID_ARGUMENT, KeyError -> NOT_FOUND, anything else ->
INTERNAL with the traceback logged), the request metrics and one log line.
"""
import asyncio
import contextlib
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

    def _begin(self, method: str, context, admin: bool, always: bool = False) -> CallContext:
        metadata = context.invocation_metadata()
        request_id = next((v for k, v in metadata or () if k == "x-request-id"), None) or next(self._ids)
        structlog.contextvars.bind_contextvars(request_id=request_id, method=method)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise _Expired()
        if not always and not self.is_ready():
            raise _NotReady()
        return CallContext(self.auth.authenticate(metadata, admin))

    def _end(self, method: str, code: grpc.StatusCode, started: int, exc: BaseException | None) -> None:
        elapsed = (time.perf_counter_ns() - started) / 1e9
        self._observe(method, code, elapsed)
        if code is grpc.StatusCode.INTERNAL:
            log.error("call failed", code=code.name, duration_us=round(elapsed * 1e6, 1), exc_info=exc)
        elif self.log_requests or code is not grpc.StatusCode.OK:
            log.info("call", code=code.name, duration_us=round(elapsed * 1e6, 1),
                     error=None if exc is None else str(exc))

    @contextlib.asynccontextmanager
    async def _call(self, method: str, context, admin: bool, always: bool = False):
        started = time.perf_counter_ns()
        code, exc = grpc.StatusCode.OK, None
        try:
            yield self._begin(method, context, admin, always)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except _Expired:
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            await context.abort(code, "deadline expired before the call was processed")
        except _NotReady:
            code = grpc.StatusCode.UNAVAILABLE
            await context.abort(code, "not ready: recovering state or shutting down")
        except Exception as error:  # noqa: BLE001 - every failure becomes a status
            code, message = _status_of(error)
            exc = error
            await context.abort(code, message)
        finally:
            self._end(method, code, started, exc)
            structlog.contextvars.clear_contextvars()

    def unary(self, method: str, admin: bool = False, always: bool = False):
        """Wrap ``async def handler(self, request, call: CallContext)`` (unary response).

        ``always`` lets the call through while the service is not ready (operator calls).
        """

        def decorate(handler):
            @functools.wraps(handler)
            async def wrapper(servicer, request, context):
                async with self._call(method, context, admin, always) as call:
                    return await handler(servicer, _checked(request), call)

            return wrapper

        return decorate

    def stream(self, method: str, admin: bool = False):
        """Wrap ``async def handler(self, request, context, call)``, an async generator of responses."""

        def decorate(handler):
            @functools.wraps(handler)
            async def wrapper(servicer, request, context):
                async with self._call(method, context, admin) as call:
                    requests = _checked_stream(request) if hasattr(request, "__aiter__") else _checked(request)
                    async for item in handler(servicer, requests, context, call):
                        yield item

            return wrapper

        return decorate


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
