"""The exceptions a service raises, and the one table that maps them to gRPC status codes.

Each also subclasses the builtin a Python caller would expect (an invalid
argument is a ValueError, a missing thing a KeyError), so the kernel's own
errors (``InvalidInputError(RiskError, ValueError)``, ``UnknownAccountError(...,
KeyError)``) map through the same table without the services naming them.
"""
from __future__ import annotations

import grpc


class ServiceError(Exception):
    """Base of the errors a call can end with; ``code`` is the gRPC status it is answered with."""

    code = grpc.StatusCode.INTERNAL


class InvalidArgument(ServiceError, ValueError):
    """A request field is malformed or out of its domain; the message names the field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError, KeyError):
    """The call names something the service does not know."""

    code = grpc.StatusCode.NOT_FOUND

    def __str__(self) -> str:       # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "not found"


class FailedPrecondition(ServiceError, RuntimeError):
    """The call does not apply to the service's current state (an illegal transition, a halted book)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ServiceError, RuntimeError):
    """The service cannot take the call now (recovering, fenced, stopping); clients retry."""

    code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(ServiceError):
    """No valid credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServiceError):
    """Valid credentials, but the caller's role or account scope does not allow the call."""

    code = grpc.StatusCode.PERMISSION_DENIED


class PortInUse(RuntimeError):
    """A port a server must listen on is taken; the message names it and the option that changes it."""


# Characters of a status message at most: a message quoting what a client sent is cut here (a status
# travels in HTTP/2 trailers, whose size is bounded, and an access line should stay readable).
MAX_MESSAGE = 512
# Characters of an id or name quoted in a message; longer values are cut (they may be megabytes).
SHOWN = 40


def shown(value: str) -> str:
    """``repr(value)`` for a message or log line, cut to a few dozen characters."""
    if len(value) <= SHOWN:
        return repr(value)
    return f"{value[:SHOWN]!r}... ({len(value.encode())} bytes)"


def bounded_message(message: str) -> str:
    """``message``, cut to :data:`MAX_MESSAGE` characters."""
    if len(message) <= MAX_MESSAGE:
        return message
    return f"{message[:MAX_MESSAGE]}... ({len(message)} characters)"


# Checked in order: the first matching type gives the status. Anything else is INTERNAL (logged
# with its traceback, answered with "internal error").
STATUS_OF: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (ServiceError, grpc.StatusCode.INTERNAL),       # its own ``code``
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
    (KeyError, grpc.StatusCode.NOT_FOUND),
)


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status and the message a call that raised ``exc`` is answered with."""
    for kind, code in STATUS_OF:
        if isinstance(exc, kind):
            if isinstance(exc, ServiceError):
                return exc.code, bounded_message(str(exc))
            if isinstance(exc, KeyError):
                return code, bounded_message(str(exc.args[0])) if exc.args else "not found"
            return code, bounded_message(str(exc))
    return grpc.StatusCode.INTERNAL, "internal error"
