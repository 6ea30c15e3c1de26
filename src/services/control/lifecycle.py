"""A strategy's lifecycle as a pure state machine: states, legal moves, backoff and the circuit breaker.

No I/O: the supervisor feeds it what happened (a start was asked, the child
said it is ready, the process exited) and does what it answers. The clock and
the random source are injected, so tests drive both.

    REGISTERED -> STARTING -> RUNNING <-> PAUSED -> STOPPING -> STOPPED
                      \\          |          |
                       +-------> FAILED -> BACKOFF -> STARTING ...
                                   \\-> FAULTED (breaker open) -> Reset -> STOPPED

After a control-plane restart a strategy is registered again from the
journal, then ADOPTed (RUNNING: its process is still alive), left FAULTED, or
started as usual.

The names are NautilusTrader's where they mean the same thing (STARTING,
RUNNING, STOPPING, STOPPED, FAULTED); PAUSED, FAILED and BACKOFF are ours.
A refused move raises :class:`FailedPrecondition` naming the current state
(NautilusTrader only logs it; a gRPC caller must hear it).
"""
from __future__ import annotations

import collections
import enum
import random as _random
import time
from dataclasses import dataclass
from typing import Callable

from riskcore_services.common.errors import FailedPrecondition

__all__ = ["BackoffPolicy", "Lifecycle", "State", "Trigger"]


class State(enum.Enum):
    REGISTERED = 1
    STARTING = 2
    RUNNING = 3
    PAUSED = 4
    STOPPING = 5
    STOPPED = 6
    FAILED = 7
    BACKOFF = 8
    FAULTED = 9

    @property
    def has_process(self) -> bool:
        """A child process may be alive in this state."""
        return self in (State.STARTING, State.RUNNING, State.PAUSED, State.STOPPING)


class Trigger(enum.Enum):
    START = "start"
    READY = "ready"            # the child ran on_start and said so
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    EXITED = "exited"          # the process ended after a stop was asked
    FAIL = "fail"
    BACKOFF = "backoff"
    RETRY = "retry"
    RESET = "reset"
    ADOPT = "adopt"                      # after a control-plane restart: its process is still alive
    STAY_FAULTED = "stay faulted"        # after a control-plane restart: it was FAULTED before


S, T = State, Trigger
_ALIVE = (S.STARTING, S.RUNNING, S.PAUSED)
TABLE: dict[tuple[State, Trigger], State] = {
    (S.REGISTERED, T.START): S.STARTING,
    (S.STOPPED, T.START): S.STARTING,
    (S.STARTING, T.READY): S.RUNNING,
    (S.RUNNING, T.PAUSE): S.PAUSED,
    (S.PAUSED, T.RESUME): S.RUNNING,
    **{(state, T.STOP): S.STOPPING for state in _ALIVE},
    # No process to stop: straight to STOPPED.
    (S.FAILED, T.STOP): S.STOPPED,
    (S.BACKOFF, T.STOP): S.STOPPED,
    (S.STOPPING, T.EXITED): S.STOPPED,
    **{(state, T.FAIL): S.FAILED for state in _ALIVE},
    (S.FAILED, T.BACKOFF): S.BACKOFF,
    (S.BACKOFF, T.RETRY): S.STARTING,
    (S.FAULTED, T.RESET): S.STOPPED,
    (S.REGISTERED, T.ADOPT): S.RUNNING,
    (S.REGISTERED, T.STAY_FAULTED): S.FAULTED,
}


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Restart delays and the breaker.

    The n-th failure inside ``window`` seconds waits ``initial * factor**(n-1)``
    (at most ``maximum``) less up to ``jitter`` of it, chosen at random so that
    strategies failing together do not restart together; the ``breaker``-th
    failure inside the window opens the breaker (FAULTED) instead.
    """

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2
    breaker: int = 5
    window: float = 60.0

    def __post_init__(self) -> None:
        if not (self.initial > 0 and self.factor >= 1 and self.maximum >= self.initial and 0 <= self.jitter < 1
                and self.breaker >= 1 and self.window > 0):
            raise ValueError(f"invalid backoff policy {self}")


class Lifecycle:
    """One strategy's state, failures and restarts.

    Parameters
    ----------
    name : str
        The strategy, for messages.
    policy : BackoffPolicy
    clock : callable, optional
        Monotonic seconds (``time.monotonic``).
    random : callable, optional
        Uniform in [0, 1) (``random.random``), for the jitter.
    """

    def __init__(self, name: str, policy: BackoffPolicy = BackoffPolicy(), clock: Callable[[], float] = time.monotonic,
                 random: Callable[[], float] = _random.random):
        self.name = name
        self.policy = policy
        self.clock = clock
        self.random = random
        self.state = State.REGISTERED
        self.restarts = 0
        self.last_error = ""
        self.delay = 0.0               # the current BACKOFF's wait
        self.since = clock()           # when the current state was entered
        self._failures: collections.deque[float] = collections.deque()

    def fire(self, trigger: Trigger) -> State:
        """Move on ``trigger``; FailedPrecondition naming the current state when it does not apply."""
        target = TABLE.get((self.state, trigger))
        if target is None:
            raise FailedPrecondition(f"strategy {self.name!r} is {self.state.name}: cannot {trigger.value}")
        if trigger is Trigger.RETRY:
            self.restarts += 1
        self.state = target
        self.since = self.clock()
        return target

    def allows(self, trigger: Trigger) -> bool:
        return (self.state, trigger) in TABLE

    def recent_failures(self) -> int:
        """Failures inside the breaker's window, as of now."""
        horizon = self.clock() - self.policy.window
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()
        return len(self._failures)

    def fail(self, error: str) -> State:
        """The process died or went silent: FAILED, then BACKOFF with a delay (``self.delay``), or FAULTED
        when this failure is the breaker's N-th inside its window. Returns the state reached."""
        self.fire(Trigger.FAIL)
        self.last_error = error
        self._failures.append(self.clock())
        count = self.recent_failures()
        if count >= self.policy.breaker:
            self.state, self.since = State.FAULTED, self.clock()
            return self.state
        policy = self.policy
        base = min(policy.maximum, policy.initial * policy.factor ** (count - 1))
        self.delay = base * (1.0 - policy.jitter * self.random())
        return self.fire(Trigger.BACKOFF)

    def reset(self) -> State:
        """The operator's word after FAULTED: breaker closed, failures forgotten, STOPPED."""
        self.fire(Trigger.RESET)
        self._failures.clear()
        self.last_error = ""
        return self.state
