"""The start of a trading day: a local wall time, rolled once a day, caught up after downtime.

Time is injected (a ``time_ns`` function and a ``sleep``), so tests drive whole
days in milliseconds: with a :class:`ManualTime` the roller's sleep ends when
the test moves the clock past it. Instants are compared, never wall times, so
daylight-saving changes give 23- and 25-hour days and a roll time inside a gap
or a repeated hour is still found exactly once.
"""
from __future__ import annotations

import asyncio
import datetime
import time
import zoneinfo
from typing import Awaitable, Callable

UTC = datetime.timezone.utc
TimeNs = Callable[[], int]
Sleep = Callable[[float], Awaitable[None]]


class DayRoller:
    """Calls a roll at ``roll_time`` in ``timezone`` every day.

    Parameters
    ----------
    roll_time : datetime.time
        Local time of day the trading day starts.
    timezone : str
        IANA zone of ``roll_time`` (``zoneinfo``).
    time_ns, sleep : optional
        The clock (nanoseconds since the epoch) and how to wait.
    """

    def __init__(self, roll_time: datetime.time, timezone: str, time_ns: TimeNs = time.time_ns,
                 sleep: Sleep = asyncio.sleep):
        self.roll_time = roll_time
        self.zone = zoneinfo.ZoneInfo(timezone)
        self.time_ns = time_ns
        self.sleep = sleep

    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.time_ns() / 1e9, UTC)

    def instant(self, day: datetime.date) -> datetime.datetime:
        """The roll of local ``day`` as an instant in UTC (a wall time in a DST gap maps forward)."""
        return datetime.datetime.combine(day, self.roll_time, tzinfo=self.zone).astimezone(UTC)

    def last(self, now: datetime.datetime) -> datetime.datetime:
        """The most recent roll at or before ``now``."""
        today = now.astimezone(self.zone).date()
        return max(i for i in (self.instant(today - datetime.timedelta(days=back)) for back in range(3))
                   if i <= now)

    def next(self, now: datetime.datetime) -> datetime.datetime:
        """The first roll strictly after ``now``."""
        today = now.astimezone(self.zone).date()
        return min(i for i in (self.instant(today + datetime.timedelta(days=ahead)) for ahead in range(-1, 3))
                   if i > now)

    async def run(self, last_roll_ns: Callable[[], int], roll: Callable[[], Awaitable[None]]) -> None:
        """Roll whenever the last roll (``last_roll_ns``, from the durable state, on the same clock)
        is before the latest roll instant: at start for a roll missed while down, then at each roll time."""
        while True:
            now = self.now()
            if last_roll_ns() < self.last(now).timestamp() * 1e9:
                await roll()
            await self.sleep(max((self.next(now) - self.now()).total_seconds(), 0.001))


class ManualTime:
    """A clock for tests: a ``time_ns`` function moved by ``advance``, with a ``sleep`` that
    returns once the clock has passed its end."""

    def __init__(self, start: datetime.datetime):
        self.ns = round(start.timestamp() * 1e9)
        self._sleepers: list[tuple[int, asyncio.Future]] = []

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        """Move the clock forward and wake every sleep that has ended (call it on the sleepers' loop)."""
        self.ns += round(seconds * 1e9)
        for end, waiter in self._sleepers:
            if end <= self.ns and not waiter.done():
                waiter.set_result(None)
        self._sleepers = [(end, waiter) for end, waiter in self._sleepers if not waiter.done()]

    async def sleep(self, seconds: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.ns + round(seconds * 1e9), waiter))
        await waiter
