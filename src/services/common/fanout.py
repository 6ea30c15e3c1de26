"""Fan-out of events to stream subscribers (WatchBreaches, WatchAlerts, Subscribe, WatchEvents).

Each subscriber has a bounded queue; a subscriber too slow to keep up loses
its oldest events (counted by ``on_drop``), never blocks the publisher, which
is often the risk path itself.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Generic, TypeVar

QUEUE_SIZE = 10_000

Event = TypeVar("Event")


class FanOut(Generic[Event]):
    """Publishes each event to every subscriber's bounded queue."""

    def __init__(self, on_drop: Callable[[], None] = lambda: None, queue_size: int = QUEUE_SIZE):
        self._queues: set[asyncio.Queue[Event]] = set()
        self._on_drop = on_drop
        self._queue_size = queue_size

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._queues.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, event: Event) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
                self._on_drop()
            queue.put_nowait(event)
