"""The injectable clocks: a manual clock for tests and replay, the system clock for production."""
import time

import pytest

from riskcore import Clock, Instrument, Limits, ManualClock, RiskEngine, SystemClock

T0 = 1_700_000_000 * 10**9


def test_manual_clock_starts_at_the_time_it_is_given():
    assert ManualClock(T0).now_ns() == T0
    assert ManualClock().now_ns() == 0


def test_manual_clock_advances_by_seconds_rounded_to_whole_nanoseconds():
    clock = ManualClock(T0)
    clock.advance(0.25)
    assert clock.now_ns() == T0 + 250_000_000
    clock.advance(1e-9)
    assert clock.now_ns() == T0 + 250_000_001
    clock.advance(0)
    assert clock.now_ns() == T0 + 250_000_001
    clock.advance(3)
    assert clock.now_ns() == T0 + 3_250_000_001


def test_manual_clock_refuses_to_advance_backwards_and_keeps_its_time():
    clock = ManualClock(T0)
    with pytest.raises(ValueError):
        clock.advance(-1e-9)
    assert clock.now_ns() == T0


def test_manual_clock_can_be_set_forward_but_not_back():
    clock = ManualClock(T0)
    clock.set(T0 + 5)
    assert clock.now_ns() == T0 + 5
    clock.set(T0 + 5)
    assert clock.now_ns() == T0 + 5
    with pytest.raises(ValueError):
        clock.set(T0 + 4)
    assert clock.now_ns() == T0 + 5


def test_system_clock_reads_the_wall_clock_in_nanoseconds():
    before = time.time_ns()
    now = SystemClock().now_ns()
    after = time.time_ns()
    assert before <= now <= after


def test_both_clocks_are_clocks():
    assert isinstance(ManualClock(), Clock) and isinstance(SystemClock(), Clock)


def test_engine_reads_the_clock_it_was_given():
    clock = ManualClock(T0)
    engine = RiskEngine(clock=clock)
    assert engine.clock is clock
    engine.add_instrument(Instrument("X", reference_price=1.0))
    engine.add_account("a")
    engine.set_limits("a", Limits(fill_throttle=(0, 1.0)))
    clock.advance(2.0)
    engine.book_fill("a", "X", "BUY", 1, 1.0)
    (event,) = engine.drain_events()
    assert event.time == T0 + 2 * 10**9
