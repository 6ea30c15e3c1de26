"""Alert delivery to HTTP webhooks, in the Alertmanager v2 API's payload (``POST /api/v2/alerts``).

Each endpoint has its own bounded queue and sender task: a slow or dead
receiver fills only its own queue (the oldest alerts are dropped, counted),
retries with exponential backoff and jitter, and after repeated failures its
circuit breaker opens and batches are dropped (counted) at once until the
reset time lets one through. Nothing here can block the event loop's other
work or another receiver. Alerts queued while a POST is in flight go out
together in the next one (the group Alertmanager then routes).

Alertmanager forgets a firing alert that is not sent again before its
``endsAt``; firing alerts are therefore re-sent every ``resend_seconds`` with
``endsAt`` four resend intervals ahead, as Prometheus does.
"""
from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass
from typing import Annotated, Callable

import aiohttp
import orjson
import pybreaker
from msgspec import Meta
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from riskcore_services.common.logging import get_logger
from riskcore_services.monitor.metrics import MonitorMetrics
from riskcore_services.proto import monitor_pb2

log = get_logger("monitor")

MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """``[[monitor.webhooks]]``: one receiver."""

    name: Annotated[str, Meta(pattern=r"^[\w.-]+$", max_length=64)]
    url: Annotated[str, Meta(pattern=r"^https?://\S+$", max_length=2048)]
    queue: Annotated[int, Meta(ge=1, le=1_000_000)] = 10_000
    timeout: Annotated[float, Meta(gt=0, le=60)] = 2.0
    attempts: Annotated[int, Meta(ge=1, le=100)] = 4
    backoff_initial: Annotated[float, Meta(gt=0, le=60)] = 0.05
    backoff_max: Annotated[float, Meta(gt=0, le=600)] = 2.0
    breaker_failures: Annotated[int, Meta(ge=1, le=1000)] = 5
    breaker_reset: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    resend_seconds: Annotated[float, Meta(gt=0, le=3600)] = 60.0


def _rfc3339(unix_nano: int) -> str:
    return datetime.datetime.fromtimestamp(unix_nano / 1e9, datetime.timezone.utc).isoformat()


def alertmanager_alert(alert: monitor_pb2.Alert, ends_in_ns: int, now_ns: int) -> dict:
    """One alert as Alertmanager's ``postableAlert``: a resolved alert ends when it resolved, a
    firing one ``ends_in_ns`` from now unless sent again."""
    ends = alert.ends_at_unix_nano if alert.status == monitor_pb2.ALERT_STATUS_RESOLVED else now_ns + ends_in_ns
    return {"labels": dict(alert.labels),
            "annotations": {"summary": alert.summary, "value": repr(alert.value), "key": alert.key},
            "startsAt": _rfc3339(alert.starts_at_unix_nano), "endsAt": _rfc3339(ends)}


class Webhook:
    """One receiver's queue, sender task, retries and circuit breaker."""

    def __init__(self, spec: WebhookSpec, metrics: MonitorMetrics, firing: Callable[[], list[monitor_pb2.Alert]],
                 time_ns: Callable[[], int]):
        self.spec = spec
        self._queue: asyncio.Queue[monitor_pb2.Alert] = asyncio.Queue(spec.queue)
        self._firing = firing
        self._time_ns = time_ns
        self.breaker = pybreaker.CircuitBreaker(fail_max=spec.breaker_failures, reset_timeout=spec.breaker_reset)
        self._sent = metrics.notifications.labels(spec.name, "sent")
        self._failed = metrics.notifications.labels(spec.name, "failed")
        self._dropped = metrics.notifications.labels(spec.name, "dropped")
        self._depth = metrics.webhook_queue.labels(spec.name)

    def offer(self, alert: monitor_pb2.Alert) -> None:
        """Queue ``alert`` for the receiver; when its queue is full the oldest one is dropped."""
        if self._queue.full():
            self._queue.get_nowait()
            self._dropped.inc()
        self._queue.put_nowait(alert)
        self._depth.set(self._queue.qsize())

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Send queued alerts until cancelled; re-send the firing ones every ``resend_seconds``."""
        resend = self.spec.resend_seconds
        loop = asyncio.get_running_loop()
        next_resend = loop.time() + resend
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(), max(0.0, next_resend - loop.time()))
                batch = [first]
            except asyncio.TimeoutError:
                batch = []
            while batch and not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            self._depth.set(self._queue.qsize())
            if loop.time() >= next_resend:
                batch.extend(self._firing())
                next_resend = loop.time() + resend
            if batch:
                await self._deliver(session, batch)

    async def _deliver(self, session: aiohttp.ClientSession, batch: list[monitor_pb2.Alert]) -> None:
        now = self._time_ns()
        ends_in = int(4 * self.spec.resend_seconds * 1e9)
        body = orjson.dumps([alertmanager_alert(alert, ends_in, now) for alert in batch])
        spec = self.spec
        retrying = AsyncRetrying(retry=retry_if_exception_type((aiohttp.ClientError, asyncio.TimeoutError)),
                                 wait=wait_exponential_jitter(initial=spec.backoff_initial, max=spec.backoff_max,
                                                              jitter=spec.backoff_initial),
                                 stop=stop_after_attempt(spec.attempts), reraise=True)
        try:
            async for attempt in retrying:
                with attempt, self.breaker.calling():
                    async with session.post(spec.url, data=body, headers={"Content-Type": "application/json"},
                                            timeout=aiohttp.ClientTimeout(total=spec.timeout)) as response:
                        if response.status >= 500:
                            raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
                        if response.status >= 400:
                            # The receiver refuses this payload: sending it again would not help.
                            log.error("webhook refused alerts", receiver=spec.name, status=response.status,
                                      body=(await response.text())[:500], alerts=len(batch))
                            self._failed.inc(len(batch))
                            return
            self._sent.inc(len(batch))
        except pybreaker.CircuitBreakerError:
            self._dropped.inc(len(batch))
            log.warning("webhook breaker open: alerts dropped", receiver=spec.name, alerts=len(batch))
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            self._failed.inc(len(batch))
            log.warning("webhook delivery failed", receiver=spec.name, alerts=len(batch), error=repr(error))
