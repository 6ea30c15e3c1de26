"""The bounded fan-out hub behind every server stream."""
import asyncio

from riskcore_services.common.fanout import FanOut


def test_every_subscriber_gets_every_event_in_order():
    async def run():
        hub: FanOut[int] = FanOut()
        first, second = hub.subscribe(), hub.subscribe()
        for event in range(5):
            hub.publish(event)
        return [[q.get_nowait() for _ in range(q.qsize())] for q in (first, second)]
    assert asyncio.run(run()) == [[0, 1, 2, 3, 4]] * 2


def test_a_full_subscriber_loses_its_oldest_events_counted_and_the_others_lose_none():
    async def run():
        drops = []
        hub: FanOut[int] = FanOut(on_drop=lambda: drops.append(1), queue_size=3)
        slow, fast = hub.subscribe(), hub.subscribe()
        got = []
        for event in range(6):
            hub.publish(event)
            got.append(fast.get_nowait())
        return [slow.get_nowait() for _ in range(slow.qsize())], got, len(drops)
    assert asyncio.run(run()) == ([3, 4, 5], [0, 1, 2, 3, 4, 5], 3)


def test_an_unsubscribed_queue_gets_nothing_more():
    async def run():
        hub: FanOut[str] = FanOut()
        queue = hub.subscribe()
        hub.publish("a")
        hub.unsubscribe(queue)
        hub.publish("b")
        return queue.qsize(), hub.subscribers
    assert asyncio.run(run()) == (1, 0)
