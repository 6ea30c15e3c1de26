"""A service's event stream (``Events.WatchEvents``): what the alert rules are evaluated on.

Every service has one :class:`EventStream`; its code reports what happened
(``publish``), the monitor service subscribes over gRPC, and an alerting
component in the same process (the risk engine's own rules) listens
in-process. Publishing costs one attribute test while nobody listens, so the
risk path pays for events only when someone is, and then a bounded queue per
subscriber (a slow one loses its oldest events, counted) keeps it from ever
waiting.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry

from riskcore_services.common.calls import CallHandling
from riskcore_services.common.fanout import FanOut
from riskcore_services.common.logging import get_logger
from riskcore_services.common.metrics import LoopCounter
from riskcore_services.proto import monitor_pb2, monitor_pb2_grpc

log = get_logger("events")

EVENTS_SERVICE = monitor_pb2.DESCRIPTOR.services_by_name["Events"]


class EventStream:
    """The events of one service (``source``: risk, control, ingest, monitor)."""

    def __init__(self, source: str, registry: CollectorRegistry):
        self.source = source
        dropped = LoopCounter("riskcore_events_dropped", "Events dropped for slow WatchEvents subscribers",
                              (), registry).labels()
        self._published = LoopCounter("riskcore_events", "Events published, by kind", ("kind",), registry)
        self._listener_failures = LoopCounter("riskcore_events_listener_failures",
                                              "Events an in-process listener failed on (logged)", (),
                                              registry).labels()
        self._fanout: FanOut[monitor_pb2.Event] = FanOut(on_drop=dropped.inc)
        self._listeners: list[Callable[[monitor_pb2.Event], None]] = []
        # The events that describe the service's conditions now (set by the service), sent to each new
        # subscriber first: a monitor that reconnects learns what changed while it was away.
        self.conditions: Callable[[], Iterable[monitor_pb2.Event]] = tuple

    def event(self, kind: str, labels: Mapping[str, str], *, value: float = 0.0, limit: float = 0.0,
              active: bool = True, detail: str = "", time_ns: int | None = None) -> monitor_pb2.Event:
        return monitor_pb2.Event(time_unix_nano=time.time_ns() if time_ns is None else time_ns,
                                 source=self.source, kind=kind, labels=labels, value=value, limit=limit,
                                 active=active, detail=detail)

    def listen(self, listener: Callable[[monitor_pb2.Event], None]) -> None:
        """Hand ``listener`` every event from now on, in-process and as it is published; first the
        conditions now, as a new subscriber gets them."""
        for event in self.conditions():
            listener(event)
        self._listeners.append(listener)

    @property
    def listening(self) -> bool:
        """Whether anyone listens (callers skip building costly events otherwise)."""
        return bool(self._listeners) or self._fanout.subscribers > 0

    def publish(self, kind: str, labels: Mapping[str, str], *, value: float = 0.0, limit: float = 0.0,
                active: bool = True, detail: str = "", time_ns: int | None = None) -> None:
        """Report one event to every subscriber (nothing happens while nobody listens)."""
        if self.listening:
            self.forward(self.event(kind, labels, value=value, limit=limit, active=active, detail=detail,
                                    time_ns=time_ns))

    def forward(self, event: monitor_pb2.Event) -> None:
        """Report an event already built."""
        self._published.labels(event.kind).inc()
        for listener in self._listeners:
            # A listener's failure is counted and logged, never raised into the code that
            # reported the event (often the risk path itself).
            try:
                listener(event)
            except Exception:
                self._listener_failures.inc()
                log.exception("event listener failed", kind=event.kind)
        self._fanout.publish(event)

    def servicer(self, calls: CallHandling) -> monitor_pb2_grpc.EventsServicer:
        """The ``Events`` servicer over this stream."""
        fanout = self._fanout
        stream = self

        class EventsServicer(monitor_pb2_grpc.EventsServicer):
            @calls.rpc("WatchEvents")
            async def WatchEvents(self, request, call):
                kinds = frozenset(request.kinds)
                queue = fanout.subscribe()
                try:
                    await call.context.send_initial_metadata(())   # the caller knows it is subscribed
                    for event in stream.conditions():
                        if not kinds or event.kind in kinds:
                            await call.context.write(event)
                    while True:
                        event = await queue.get()
                        if not kinds or event.kind in kinds:
                            await call.context.write(event)
                finally:
                    fanout.unsubscribe(queue)

        return EventsServicer()
