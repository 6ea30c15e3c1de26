"""The monitor's subscriptions to the other services' event streams.

Each source is watched by one task that keeps a ``WatchEvents`` stream open,
hands every event to the alert book as it arrives, and reconnects with
exponential backoff and jitter. The monitor reports on the sources too: a
``service_ready`` event goes inactive once a stream is open (the source
answered, so it is ready: calls to a service that is not ready are refused)
and active when the stream cannot be opened or breaks.
"""
from __future__ import annotations

import asyncio
import pathlib
import random
from dataclasses import dataclass
from typing import Annotated, Callable, Optional

import grpc
from msgspec import Meta

from riskcore_services.common.logging import get_logger
from riskcore_services.proto import monitor_pb2, monitor_pb2_grpc

log = get_logger("monitor")

Publish = Callable[..., None]


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """``[[monitor.sources]]``: a service whose events the monitor watches."""

    name: Annotated[str, Meta(pattern=r"^[\w.-]+$", max_length=64)]
    target: Annotated[str, Meta(pattern=r"^[^\s:]+:\d{1,5}$", max_length=256)]
    token_file: Optional[pathlib.Path] = None   # a bearer token, when the source has [[auth.tokens]]


class SourceWatch:
    """Keeps one source's event stream open and feeds its events to ``on_event``."""

    def __init__(self, spec: SourceSpec, kinds: list[str], on_event: Callable[[monitor_pb2.Event], None],
                 publish: Publish, set_up: Callable[[bool], None], backoff_initial: float, backoff_max: float):
        self.spec = spec
        self._kinds = kinds
        self._on_event = on_event
        self._publish = publish
        self._set_up = set_up
        self._backoff = (backoff_initial, backoff_max)
        token = spec.token_file.read_text().strip() if spec.token_file is not None else ""
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    async def run(self) -> None:
        """Watch until cancelled."""
        failures = 0
        async with grpc.aio.insecure_channel(self.spec.target) as channel:
            stub = monitor_pb2_grpc.EventsStub(channel)
            while True:
                call = stub.WatchEvents(monitor_pb2.EventsRequest(kinds=self._kinds), metadata=self._metadata)
                try:
                    await call.initial_metadata()   # sent by the source once subscribed
                    failures = 0
                    self._connected(True, "")
                    async for event in call:
                        self._on_event(event)
                    reason = "stream ended"
                except grpc.aio.AioRpcError as error:
                    reason = f"{error.code().name}: {error.details()}"
                finally:
                    call.cancel()
                self._connected(False, reason)
                failures += 1
                initial, largest = self._backoff
                delay = min(largest, initial * 2 ** min(failures - 1, 30))
                await asyncio.sleep(delay * (0.5 + random.random() / 2))

    def _connected(self, up: bool, reason: str) -> None:
        self._set_up(up)
        if up:
            log.info("source events connected", source=self.spec.name, target=self.spec.target)
        else:
            log.warning("source events unavailable", source=self.spec.name, target=self.spec.target,
                        reason=reason)
        self._publish("service_ready", {"service": self.spec.name}, active=not up,
                      detail="receiving events" if up else reason)
