"""The lifecycle state machine on a manual clock: every legal and illegal move, backoff delays, the breaker."""
from __future__ import annotations

import pytest

from riskcore_services.common.errors import FailedPrecondition
from riskcore_services.control.lifecycle import TABLE, BackoffPolicy, Lifecycle, State, Trigger


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def machine(policy=BackoffPolicy(initial=1.0, factor=2.0, maximum=5.0, jitter=0.5, breaker=4, window=60.0),
            random=lambda: 0.0) -> tuple[Lifecycle, Clock]:
    clock = Clock()
    return Lifecycle("s", policy, clock, random), clock


# A path of triggers from REGISTERED to each state.
PATHS = {
    State.REGISTERED: [],
    State.STARTING: [Trigger.START],
    State.RUNNING: [Trigger.START, Trigger.READY],
    State.PAUSED: [Trigger.START, Trigger.READY, Trigger.PAUSE],
    State.STOPPING: [Trigger.START, Trigger.READY, Trigger.STOP],
    State.STOPPED: [Trigger.START, Trigger.READY, Trigger.STOP, Trigger.EXITED],
    State.FAILED: [Trigger.START, Trigger.FAIL],
    State.BACKOFF: [Trigger.START, Trigger.FAIL, Trigger.BACKOFF],
}


def at(state: State) -> Lifecycle:
    life, _ = machine()
    for trigger in PATHS[state]:
        life.fire(trigger)
    assert life.state is state
    return life


@pytest.mark.parametrize("state,trigger", [(s, t) for s in PATHS for t in Trigger])
def test_every_trigger_in_every_state_moves_by_the_table_or_is_refused_naming_the_state(state, trigger):
    life = at(state)
    target = TABLE.get((state, trigger))
    if target is None:
        with pytest.raises(FailedPrecondition, match=f"is {state.name}: cannot {trigger.value}"):
            life.fire(trigger)
        assert life.state is state
    else:
        assert life.fire(trigger) is target


def test_faulted_refuses_everything_but_reset_and_reset_closes_the_breaker():
    life, _ = machine(BackoffPolicy(breaker=1))
    life.fire(Trigger.START)
    assert life.fail("boom") is State.FAULTED
    for trigger in set(Trigger) - {Trigger.RESET}:
        with pytest.raises(FailedPrecondition, match="is FAULTED"):
            life.fire(trigger)
    assert life.reset() is State.STOPPED
    assert life.recent_failures() == 0 and life.last_error == ""
    assert life.fire(Trigger.START) is State.STARTING


def test_reset_outside_faulted_is_refused():
    with pytest.raises(FailedPrecondition, match="is RUNNING"):
        at(State.RUNNING).reset()


def test_backoff_doubles_per_failure_in_the_window_up_to_the_maximum():
    life, clock = machine(BackoffPolicy(initial=1.0, factor=2.0, maximum=5.0, jitter=0.0, breaker=10, window=60))
    delays = []
    life.fire(Trigger.START)
    for _ in range(5):
        assert life.fail("exit 1") is State.BACKOFF
        delays.append(life.delay)
        clock.now += life.delay
        life.fire(Trigger.RETRY)
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert life.restarts == 5 and life.last_error == "exit 1"


def test_jitter_shortens_the_delay_by_up_to_its_fraction():
    life, _ = machine(random=lambda: 0.999999)
    life.fire(Trigger.START)
    life.fail("x")
    assert 0.5 <= life.delay < 0.500001          # 1.0 * (1 - 0.5 * ~1)
    life2, _ = machine(random=lambda: 0.0)
    life2.fire(Trigger.START)
    life2.fail("x")
    assert life2.delay == 1.0


def test_failures_older_than_the_window_no_longer_count_for_backoff_or_breaker():
    life, clock = machine()
    life.fire(Trigger.START)
    for _ in range(3):
        life.fail("x")
        life.fire(Trigger.RETRY)
    clock.now += 61
    assert life.recent_failures() == 0
    assert life.fail("x") is State.BACKOFF and life.delay == 1.0


def test_the_breakers_nth_failure_in_the_window_faults():
    life, clock = machine()
    life.fire(Trigger.START)
    states = []
    for _ in range(4):
        states.append(life.fail("crash"))
        if life.state is State.BACKOFF:
            clock.now += 1
            life.fire(Trigger.RETRY)
    assert states == [State.BACKOFF, State.BACKOFF, State.BACKOFF, State.FAULTED]
    assert life.restarts == 3


def test_an_invalid_policy_is_refused():
    with pytest.raises(ValueError):
        BackoffPolicy(initial=0)
    with pytest.raises(ValueError):
        BackoffPolicy(jitter=1.0)
