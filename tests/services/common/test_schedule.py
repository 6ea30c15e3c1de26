"""The day roller: roll instants across daylight-saving changes, and a real risk
server rolling its trading day on a manual wall clock (no real seconds slept)."""
import asyncio
import datetime
import zoneinfo

import pytest

from riskcore_services.common.schedule import DayRoller, ManualTime
from riskcore_services.proto import risk_pb2
from riskcore_services.risk.config import load_config
from riskcore_services.risk import records
from riskcore_services.testing import sqlite_rows
from conftest import DEADLINE, write_config

UTC = datetime.timezone.utc


def roller(roll_time: str, zone: str = "America/New_York") -> DayRoller:
    return DayRoller(datetime.time.fromisoformat(roll_time), zone)


# ------------------------------------------------------------ roll instants

@pytest.mark.parametrize("now, last", [
    # Spring forward (Sunday 2025-03-09): 17:00 EST is 22:00 UTC, 17:00 EDT is 21:00 UTC.
    (datetime.datetime(2025, 3, 9, 20, 59, tzinfo=UTC), datetime.datetime(2025, 3, 8, 22, 0, tzinfo=UTC)),
    (datetime.datetime(2025, 3, 9, 21, 0, tzinfo=UTC), datetime.datetime(2025, 3, 9, 21, 0, tzinfo=UTC)),
    (datetime.datetime(2025, 3, 9, 7, 30, tzinfo=UTC), datetime.datetime(2025, 3, 8, 22, 0, tzinfo=UTC)),
    # Fall back (Sunday 2025-11-02): 17:00 EDT is 21:00 UTC, 17:00 EST is 22:00 UTC.
    (datetime.datetime(2025, 11, 2, 21, 30, tzinfo=UTC), datetime.datetime(2025, 11, 1, 21, 0, tzinfo=UTC)),
    (datetime.datetime(2025, 11, 2, 22, 0, tzinfo=UTC), datetime.datetime(2025, 11, 2, 22, 0, tzinfo=UTC)),
    (datetime.datetime(2025, 11, 3, 3, 0, tzinfo=UTC), datetime.datetime(2025, 11, 2, 22, 0, tzinfo=UTC)),
])
def test_last_roll_at_17_00_new_york_is_the_most_recent_one_across_dst_changes(now, last):
    assert roller("17:00").last(now) == last


@pytest.mark.parametrize("last, hours", [
    (datetime.datetime(2025, 3, 7, 22, 0, tzinfo=UTC), 24),   # Friday to Saturday
    (datetime.datetime(2025, 3, 8, 22, 0, tzinfo=UTC), 23),   # into the spring-forward day
    (datetime.datetime(2025, 11, 1, 21, 0, tzinfo=UTC), 25),  # into the fall-back day
    (datetime.datetime(2025, 11, 2, 22, 0, tzinfo=UTC), 24),
])
def test_next_roll_at_17_00_new_york_is_23_or_25_hours_away_on_dst_change_days(last, hours):
    following = roller("17:00").next(last + datetime.timedelta(minutes=1))
    assert following - last == datetime.timedelta(hours=hours)
    assert following.astimezone(zoneinfo.ZoneInfo("America/New_York")).time() == datetime.time(17, 0)


def _expected_last_roll(roll_time: str, now: datetime.datetime, zone: str = "America/New_York"):
    """The latest instant <= now at which the local clock reads roll_time (Python's fold=0 reading)."""
    tz = zoneinfo.ZoneInfo(zone)
    local_day = now.astimezone(tz).date()
    instants = [datetime.datetime.combine(local_day - datetime.timedelta(days=back),
                                          datetime.time.fromisoformat(roll_time), tzinfo=tz).astimezone(UTC)
                for back in range(3)]
    return max(i for i in instants if i <= now)


def test_last_and_next_roll_are_right_at_every_minute_of_both_dst_change_weekends():
    for roll_time in ("17:00", "00:00", "03:00", "23:30"):
        days = roller(roll_time)
        for start in (datetime.datetime(2025, 3, 8, 12, 0, tzinfo=UTC),
                      datetime.datetime(2025, 11, 1, 12, 0, tzinfo=UTC)):
            for minute in range(2 * 24 * 60):
                now = start + datetime.timedelta(minutes=minute)
                assert days.last(now) == _expected_last_roll(roll_time, now), (roll_time, now)
                assert days.next(now) > now, (roll_time, now)


def test_a_roll_time_inside_the_spring_forward_gap_is_never_reported_as_already_past():
    # 02:30 does not exist in New York on 2025-03-09; at 03:15 EDT (07:15 UTC) the day's 02:30 roll,
    # whatever instant it maps to, cannot be the last roll *and* lie in the future.
    now = datetime.datetime(2025, 3, 9, 7, 15, tzinfo=UTC)
    assert roller("02:30").last(now) <= now


def test_a_roll_time_inside_the_repeated_fall_back_hour_finds_todays_roll_and_sleeps_until_a_later_one():
    # 01:30 happens twice in New York on 2025-11-02: 05:30 UTC (EDT) and 06:30 UTC (EST).
    # At 06:15 UTC (01:15 EST) the first one has passed.
    days = roller("01:30")
    now = datetime.datetime(2025, 11, 2, 6, 15, tzinfo=UTC)
    assert days.last(now) == datetime.datetime(2025, 11, 2, 5, 30, tzinfo=UTC)
    assert days.next(now) > now


# ------------------------------------------------------ a server on a manual clock

DAY = datetime.datetime(2026, 6, 10, tzinfo=UTC)


@pytest.fixture
def rolling(tmp_path, build_server):
    """``rolling(clock)``: a started in-process risk server rolling at 17:00 UTC on ``clock``,
    its journal in tmp_path (the same journal for every server the test starts)."""
    config = load_config(write_config(tmp_path, settings={"roll_time": "17:00", "roll_timezone": "UTC"}))

    def start(clock: ManualTime):
        server = build_server(config, state_path=tmp_path / "journal.db", time_ns=clock, sleep=clock.sleep).start()
        settle(server)      # the roller's first look at the clock, as it starts serving
        return server
    return start


def rolls(server) -> int:
    """Start-of-day rolls in the server's journal file since its last snapshot (a graceful stop
    snapshots and drops the records, so this counts the rolls since the last start)."""
    rows = sqlite_rows(server.config.state.path, "SELECT seq, kind, payload FROM journal")
    return sum(records.decode(seq, kind, payload).HasField("roll_day") for seq, kind, payload in rows)


def pnl(server, account: str = "momentum") -> tuple[int, int]:
    """(realized, daily) P&L of an account in micro-units."""
    (row,) = [r for r in server.stub().GetExposure(risk_pb2.ExposureRequest(account=account),
                                                  timeout=DEADLINE).accounts if r.account == account]
    return round(row.realized_pnl * 1e6), round(row.daily_pnl * 1e6)


def round_trip(server, tag: str, loss_per_share: float) -> None:
    """Buy 100 AAPL at 190.00 and sell them lower: realized P&L falls by 100 x loss_per_share."""
    for side, price in ((risk_pb2.BUY, 190.00), (risk_pb2.SELL, 190.00 - loss_per_share)):
        assert server.stub().ReportFill(risk_pb2.Fill(exec_id=f"{tag}-{side}", quantity=100, price=price,
                                                      account="momentum", symbol="AAPL", side=side),
                                        timeout=DEADLINE).applied


def settle(server) -> None:
    """Let the server's loop run what the last clock move woke (the roll), then wait for its journal write."""
    async def woken_work_done():
        for _ in range(5):
            await asyncio.sleep(0)
        await server.server.service.durable()
    server.run(woken_work_done())


def test_a_server_rolls_at_its_roll_time_and_not_again_after_a_restart(rolling):
    clock = ManualTime(DAY.replace(hour=16))
    server = rolling(clock)
    assert rolls(server) == 1       # never rolled: it catches up on yesterday's 17:00 as it starts
    round_trip(server, "a", 1.00)
    server.run_on_loop(clock.advance, 3599.0)     # 16:59:59
    settle(server)
    assert (rolls(server), pnl(server)) == (1, (-100_000_000, -100_000_000))
    server.run_on_loop(clock.advance, 1.0)        # 17:00:00
    settle(server)
    assert (rolls(server), pnl(server)) == (2, (-100_000_000, 0))     # the daily baseline moved, not realized
    round_trip(server, "b", 0.50)
    server.stop()

    again = rolling(clock)
    assert (rolls(again), pnl(again)) == (0, (-150_000_000, -50_000_000))


def test_a_server_down_across_its_roll_time_rolls_when_it_comes_back(rolling):
    clock = ManualTime(DAY.replace(hour=16))
    server = rolling(clock)
    round_trip(server, "a", 1.00)
    server.stop()
    clock.advance(2 * 3600.0)                     # 18:00: the roll happened while it was down
    again = rolling(clock)
    assert (rolls(again), pnl(again)) == (1, (-100_000_000, 0))
