"""Fan-out of breach and state-change events to WatchBreaches subscribers.

Each subscriber has a bounded queue; a subscriber too slow to keep up loses
its oldest events (counted), never blocks the engine.
"""
import asyncio
from typing import Callable

from services.proto import risk_pb2

QUEUE_SIZE = 10_000


class BreachHub:
    """Publishes :class:`risk_pb2.Breach` messages to every subscriber."""

    def __init__(self, on_drop: Callable[[], None] = lambda: None):
        self._queues: set[asyncio.Queue] = set()
        self._on_drop = on_drop

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._queues.discard(queue)

    def publish(self, breach: risk_pb2.Breach) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
                self._on_drop()
            queue.put_nowait(breach)
