"""What every client of our services does around a call: a deadline, retries, a circuit breaker.

Every call carries a deadline. Idempotent calls are retried on UNAVAILABLE
with exponential backoff and jitter. A circuit breaker opens after repeated
outages (UNAVAILABLE, DEADLINE_EXCEEDED) and then fails fast until its reset
time lets a trial call through. A service's client subclasses
:class:`ServiceClient` with its stub and its calls.
"""
from __future__ import annotations

from typing import Any, Optional

import grpc
import pybreaker
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

# CANCELLED reaches a client only from the server side (it never cancels its
# own calls): a server shutting down cancels calls it had not started.
_OUTAGE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


class ServiceUnavailable(ConnectionError):
    """The service could not be reached (or the breaker is open)."""


def is_outage(error: BaseException) -> bool:
    return isinstance(error, grpc.RpcError) and error.code() in _OUTAGE


def _is_unavailable(error: BaseException) -> bool:
    return isinstance(error, grpc.RpcError) and error.code() in _RETRYABLE


class ServiceClient:
    """Synchronous client with deadlines, retries and a circuit breaker.

    Parameters
    ----------
    target : str
        ``host:port`` of the service.
    stub : callable
        The generated stub class (``risk_pb2_grpc.RiskEngineStub``).
    token : str, optional
        Bearer token sent with every call.
    root_certificates, private_key, certificate_chain : bytes, optional
        TLS trust roots, and the client key/certificate for mutual TLS.
    deadline : float
        Seconds allowed for each attempt of each call.
    retry_attempts, retry_initial, retry_max : int, float, float
        Attempts for idempotent calls on UNAVAILABLE, and the backoff's first and largest wait.
    breaker_failures, breaker_reset : int, float
        Consecutive outages that open the breaker; seconds before it lets a trial call through.
    """

    def __init__(self, target: str, stub: Any, *, token: Optional[str] = None,
                 root_certificates: Optional[bytes] = None, private_key: Optional[bytes] = None,
                 certificate_chain: Optional[bytes] = None, deadline: float = 1.0, retry_attempts: int = 4,
                 retry_initial: float = 0.05, retry_max: float = 1.0, breaker_failures: int = 5,
                 breaker_reset: float = 5.0, server_name: Optional[str] = None):
        options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        if root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = stub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.deadline = deadline
        self.breaker = pybreaker.CircuitBreaker(fail_max=breaker_failures, reset_timeout=breaker_reset,
                                                exclude=[lambda error: not is_outage(error)])
        self._retrying = Retrying(retry=retry_if_exception(_is_unavailable),
                                  wait=wait_exponential_jitter(multiplier=retry_initial, max=retry_max,
                                                               jitter=retry_initial),
                                  stop=stop_after_attempt(retry_attempts), reraise=True)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, request, idempotent: bool = True, timeout: Optional[float] = None):
        """Call ``method``; ServiceUnavailable on an outage or an open breaker.

        ``timeout`` (seconds) narrows the deadline of each attempt, for a call made on behalf of
        another call with less time left (never widens it).
        """
        rpc = getattr(self._stub, method)
        deadline = self.deadline if timeout is None else min(self.deadline, max(timeout, 0.0))

        def attempt():
            return self.breaker.call(rpc, request, timeout=deadline, metadata=self._metadata)

        try:
            return self._retrying(attempt) if idempotent else attempt()
        except pybreaker.CircuitBreakerError as error:
            raise ServiceUnavailable(f"{method}: circuit breaker open ({error})") from None
        except grpc.RpcError as error:
            if is_outage(error):
                raise ServiceUnavailable(f"{method}: {error.code().name}: {error.details()}") from error
            raise
