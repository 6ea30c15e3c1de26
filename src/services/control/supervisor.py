"""Strategy processes: start, watch, stop, restart, re-adopt, and the risk engine told at each step.

Each strategy runs as ``python -m riskcore_services.control.run <entry>`` in a
process group of its own (``start_new_session``), so a stop reaches whatever
it spawned and nothing outlives it. One task per process waits on two things
at once: the process's exit (``Process.wait``, the event loop's child
watcher; a pidfd for a re-adopted process: no polling) and its next heartbeat
on the heartbeat socket (:mod:`~riskcore_services.control.heartbeats`), with
the heartbeat timeout as the wait's limit. Silence past the timeout fails the
strategy and kills its group.

Desired state (:mod:`~riskcore_services.control.desired`) is recorded before
each operator call acts, and a new process's identity before it is let go (it
waits for its token on stdin), so a restarted control plane knows every
process it may find alive: :meth:`Supervisor.recover_strategies` re-adopts
those (same pid and start time), kills the ones that should not run, and
starts those that should run and have none. Nothing is ever started twice.

What a strategy may do is decided by :class:`~riskcore_services.control.lifecycle.Lifecycle`;
the supervisor does what it answers and tells the risk engine: an account is
made ACTIVE before its strategy starts (refused, fail closed, when the engine
cannot be reached), REDUCING or HALTED when paused, HALTED when stopped,
failed or faulted. The kill switch halts the firm first, then stops
everything.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random as _random
import shutil
import signal
import sys
import tempfile
import time
from typing import Any, Awaitable, Callable, Mapping, Optional

from riskcore_services.common.errors import FailedPrecondition, NotFound, Unavailable, shown
from riskcore_services.common.logging import get_logger
from riskcore_services.control.desired import DesiredState, Kind, Want
from riskcore_services.control.heartbeats import HeartbeatSocket
from riskcore_services.control.lifecycle import BackoffPolicy, Lifecycle, State, Trigger
from riskcore_services.control.processes import ProcessId, identify, wait_exit

log = get_logger("control.supervisor")

__all__ = ["Event", "RiskGate", "StrategySpec", "Supervisor", "Timings"]


@dataclasses.dataclass(frozen=True, slots=True)
class StrategySpec:
    """What a strategy is: its entry point, account and configuration (JSON-able)."""

    name: str
    entry: str                                   # package.module:Class
    account: str
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)   # added to the child's environment

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64:
            raise ValueError(f"name: expected 1 to 64 characters, got {shown(self.name)}")
        module, _, attribute = self.entry.partition(":")
        if not module or not attribute:
            raise ValueError(f"entry: expected package.module:Class, got {shown(self.entry)}")
        if not self.account:
            raise ValueError("account: required")
        try:
            json.dumps(dict(self.config))
        except (TypeError, ValueError) as error:
            raise ValueError(f"config: not JSON-able ({error})") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Timings:
    heartbeat_interval: float = 0.5     # the child's
    heartbeat_timeout: float = 5.0      # silence longer than this fails the strategy
    stop_grace: float = 5.0             # SIGTERM, then this long, then SIGKILL
    start_timeout: float = 30.0         # from the spawn to the child's "ready" (imports, on_start)

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_interval < self.heartbeat_timeout or self.stop_grace < 0:
            raise ValueError(f"invalid timings {self}")


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """A lifecycle transition, as WatchEvents streams it and the log records it."""

    strategy: str
    state: State
    previous: State
    reason: str
    pid: int
    restarts: int
    time: float                          # wall clock, seconds since the epoch


class RiskGate:
    """The risk engine's trading states, called off the event loop (the RiskClient is synchronous).

    Every failure to reach it is :class:`Unavailable`; a refusal (an unknown account, a token without the
    right) is :class:`FailedPrecondition`.
    """

    def __init__(self, client: Any, firm: str, pause_state: str = "REDUCING"):
        self.client = client
        self.firm = firm
        self.pause_state = pause_state

    async def set(self, account: str, state: str, timeout: Optional[float] = None) -> None:
        """Set ``account``'s trading state; ``timeout`` (seconds) narrows the client's deadline."""
        from riskcore_services.common.client import ServiceUnavailable

        import grpc

        try:
            await asyncio.to_thread(self.client.set_trading_state, state, account, "", timeout)
        except ServiceUnavailable as error:
            raise Unavailable(f"risk engine unreachable: cannot set {account!r} {state}: {error}") from None
        except grpc.RpcError as error:
            # An account the engine does not know, a token it refuses: nothing starts that it cannot limit.
            raise FailedPrecondition(f"risk engine refused {state} on account {account!r}: "
                                     f"{error.code().name}: {error.details()}") from None

    def close(self) -> None:
        self.client.close()


@dataclasses.dataclass(eq=False)
class _Managed:
    spec: StrategySpec
    life: Lifecycle
    pid: int = 0                       # of the process (the leader of its group); 0 when none
    task: Optional[asyncio.Task] = None
    beats: asyncio.Queue = dataclasses.field(default_factory=asyncio.Queue)   # words from the heartbeat socket
    retry: Optional[asyncio.TimerHandle] = None
    exited: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    started_at: float = 0.0
    last_beat: float = 0.0
    busy: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)   # one operator call at a time


class Supervisor:
    """The strategies of one control plane and their processes.

    Parameters
    ----------
    timings : Timings
    policy : BackoffPolicy
        Restart delays and breaker, per strategy.
    risk : RiskGate or None
        None only in tests that have no risk engine: no account states are set.
    on_event : callable
        Called with every :class:`Event` (on the event loop; must not block).
    clock, random : callable
        Injected into each strategy's lifecycle.
    risk_target : str
        ``host:port`` of the risk engine, for the strategies' own clients.
    risk_tokens : mapping of str to str
        The risk engine's bearer token for each account, scoped to it there: a strategy's client gets its
        account's. When any is given, a strategy whose account has none is refused at registration (its
        client would act with no scope, or not at all).
    market_data_target : str
        ``host:port`` of the market data service, for the strategies' quote feeds ("" for none).
    desired : DesiredState, optional
        Where desired state is recorded (journaled or not); an in-memory one by default.
    heartbeat_path : str, optional
        The heartbeat socket's path (the same across restarts to re-adopt); a private temporary one
        by default. Bound by :meth:`open`.
    """

    def __init__(self, timings: Timings, policy: BackoffPolicy, risk: Optional[RiskGate],
                 on_event: Callable[[Event], None] = lambda event: None,
                 clock: Callable[[], float] = time.monotonic, random: Callable[[], float] = _random.random,
                 risk_target: str = "", risk_tokens: Mapping[str, str] = {}, market_data_target: str = "",
                 desired: Optional[DesiredState] = None, heartbeat_path: Optional[str] = None):
        self.timings = timings
        self.desired = desired if desired is not None else DesiredState()
        self._scratch = tempfile.mkdtemp(prefix="riskcore-control-") if heartbeat_path is None else None
        self.heartbeats = HeartbeatSocket(heartbeat_path or os.path.join(self._scratch or "", "heartbeats"),
                                          self._deliver)
        self._by_pid: dict[int, _Managed] = {}
        self.risk_target = risk_target     # given to each strategy's risk client
        self.market_data_target = market_data_target   # and this to its quote feed
        self.risk_tokens = dict(risk_tokens)
        self.policy = policy
        self.risk = risk
        self.on_event = on_event
        self.clock = clock
        self.random = random
        self._strategies: dict[str, _Managed] = {}
        # Totals since start, kept across removals, for the metrics.
        self.restarts_total = 0
        self.breaker_trips_total = 0
        self.failures_total = {"exit": 0, "heartbeat": 0, "spawn": 0, "risk": 0}

    # ------------------------------------------------------------ reads

    def get(self, name: str) -> _Managed:
        try:
            return self._strategies[name]
        except KeyError:
            raise NotFound(f"no strategy {shown(name)}") from None

    def names(self) -> list[str]:
        return sorted(self._strategies)

    def info(self, name: str) -> dict[str, Any]:
        """State, pid, uptime, restarts, last error and heartbeat age of one strategy."""
        managed = self.get(name)
        alive = managed.life.state.has_process and managed.pid > 0
        now = self.clock()
        return dict(name=name, entry=managed.spec.entry, account=managed.spec.account, state=managed.life.state,
                    pid=managed.pid if alive else 0,
                    uptime=now - managed.started_at if alive else 0.0, restarts=managed.life.restarts,
                    last_error=managed.life.last_error,
                    heartbeat_age=now - managed.last_beat if alive else 0.0,
                    backoff=managed.life.delay if managed.life.state is State.BACKOFF else 0.0)

    # ------------------------------------------------------------ operator calls

    async def open(self) -> None:
        """Bind the heartbeat socket (before any strategy starts or is re-adopted)."""
        await self.heartbeats.open()

    async def register(self, spec: StrategySpec) -> None:
        if spec.name in self._strategies:
            raise FailedPrecondition(f"strategy {spec.name!r} is already registered "
                                     f"({self._strategies[spec.name].life.state.name})")
        if self.risk_tokens and spec.account not in self.risk_tokens:
            raise FailedPrecondition(f"strategy {spec.name!r}: account {spec.account!r} has no risk token "
                                     f"(control.account_tokens lists {', '.join(sorted(self.risk_tokens))})")
        await self.desired.record(Kind.REGISTER, name=spec.name, entry=spec.entry, account=spec.account,
                                  config=dict(spec.config))
        self._add(spec, "registered")

    def _add(self, spec: StrategySpec, reason: str) -> _Managed:
        managed = self._strategies[spec.name] = _Managed(spec, Lifecycle(spec.name, self.policy, self.clock,
                                                                         self.random))
        self._emit(managed, State.REGISTERED, reason)
        return managed

    async def remove(self, name: str) -> None:
        managed = self.get(name)
        if managed.life.state not in (State.REGISTERED, State.STOPPED, State.FAULTED):
            raise FailedPrecondition(f"strategy {name!r} is {managed.life.state.name}: cannot remove (stop it first)")
        await self.desired.record(Kind.REMOVE, name=name)
        del self._strategies[name]

    async def start(self, name: str, timeout: Optional[float] = None) -> None:
        """Make the account ACTIVE, then start the process. ``timeout``, here and below: the time left of
        the call this is done for, which bounds the risk engine's calls."""
        managed = self.get(name)
        async with managed.busy:
            if not managed.life.allows(Trigger.START):
                managed.life.fire(Trigger.START)          # raises, naming the state
            await self._set_risk(managed, "ACTIVE", timeout)       # fail closed: unreachable refuses the start
            await self.desired.record(Kind.WANT, name=name, want=Want.RUNNING.value)
            previous = managed.life.state
            managed.life.fire(Trigger.START)
            self._emit(managed, previous, "start")
            await self._spawn(managed)

    async def stop(self, name: str, reason: str = "stop", timeout: Optional[float] = None,
                   wanted: bool = True) -> None:
        """Halt the account, then SIGTERM, grace, SIGKILL; returns once STOPPED. ``wanted``: an operator's
        stop, recorded as desired (not so a restart's or the shutdown's)."""
        managed = self.get(name)
        async with managed.busy:
            if not managed.life.allows(Trigger.STOP):
                managed.life.fire(Trigger.STOP)          # raises, naming the state
            if wanted:
                await self.desired.record(Kind.WANT, name=name, want=Want.STOPPED.value)
            previous = self._begin_stop(managed, signal_now=False)
            self._emit(managed, previous, reason)
            await self._end_stop(managed, terminate=True, timeout=timeout)

    async def restart(self, name: str, timeout: Optional[float] = None) -> None:
        managed = self.get(name)
        if managed.life.state is State.FAULTED:
            raise FailedPrecondition(f"strategy {name!r} is FAULTED: cannot restart (reset it first)")
        if managed.life.allows(Trigger.STOP):
            await self.stop(name, "restart", timeout=timeout, wanted=False)
        await self.start(name, timeout)

    async def pause(self, name: str, timeout: Optional[float] = None) -> None:
        managed = self.get(name)
        async with managed.busy:
            if not managed.life.allows(Trigger.PAUSE):
                managed.life.fire(Trigger.PAUSE)
            await self._set_risk(managed, self.risk.pause_state if self.risk else "REDUCING", timeout)
            await self.desired.record(Kind.WANT, name=name, want=Want.PAUSED.value)
            managed.life.fire(Trigger.PAUSE)
            self._signal(managed, signal.SIGUSR1)
            self._emit(managed, State.RUNNING, "pause")

    async def resume(self, name: str, timeout: Optional[float] = None) -> None:
        managed = self.get(name)
        async with managed.busy:
            if not managed.life.allows(Trigger.RESUME):
                managed.life.fire(Trigger.RESUME)
            await self._set_risk(managed, "ACTIVE", timeout)
            await self.desired.record(Kind.WANT, name=name, want=Want.RUNNING.value)
            managed.life.fire(Trigger.RESUME)
            self._signal(managed, signal.SIGUSR2)
            self._emit(managed, State.PAUSED, "resume")

    async def reset(self, name: str) -> None:
        managed = self.get(name)
        if not managed.life.allows(Trigger.RESET):
            managed.life.fire(Trigger.RESET)             # raises, naming the state
        await self.desired.record(Kind.WANT, name=name, want=Want.STOPPED.value)
        managed.life.reset()
        self._emit(managed, State.FAULTED, "reset")

    async def kill_switch(self, reason: str = "kill switch", timeout: Optional[float] = None) -> list[str]:
        """Halt the firm in the risk engine, signal every strategy at once, then stop them; return the
        names stopped.

        Once the firm is halted every process is sent SIGTERM in one tight loop, before any log line or
        await: on a busy host each signalled strategy competes for the CPU with the loop signalling the
        next. (A strategy in the middle of another operator call is stopped once that call is done.)
        The strategies are stopped even when the risk engine cannot be reached; then Unavailable says so.
        """
        error: Optional[Unavailable] = None
        if self.risk is not None:
            try:
                await self.risk.set(self.risk.firm, "HALTED", timeout)
            except Unavailable as failure:
                error = failure
        stopping = [m for m in self._strategies.values() if m.life.allows(Trigger.STOP)]
        begun = {m.spec.name: self._begin_stop(m, signal_now=True) for m in stopping if not m.busy.locked()}
        for managed in stopping:
            if managed.spec.name in begun:
                self._emit(managed, begun[managed.spec.name], reason)
                self.desired.note(Kind.WANT, name=managed.spec.name, want=Want.STOPPED.value)

        async def finish(managed: _Managed) -> None:
            if managed.spec.name not in begun:
                await self.stop(managed.spec.name, reason, timeout)
                return
            async with managed.busy:
                await self._end_stop(managed, timeout=timeout)

        await asyncio.gather(self.desired.durable(), *(finish(m) for m in stopping), return_exceptions=True)
        if error is not None:
            raise error
        return [m.spec.name for m in stopping]

    async def close(self) -> None:
        """Stop every strategy (SIGTERM, grace, SIGKILL) and leave no process behind; their desired state
        stays as it was, for the next start."""
        for managed in self._strategies.values():
            if managed.retry is not None:
                managed.retry.cancel()
        await asyncio.gather(*(self.stop(m.spec.name, "shutdown", wanted=False) for m in list(self._strategies.values())
                               if m.life.allows(Trigger.STOP)), return_exceptions=True)
        for managed in self._strategies.values():
            if managed.pid:
                _kill_group(managed.pid, signal.SIGKILL)
            if managed.task is not None and not managed.task.done():
                managed.task.cancel()
        self.heartbeats.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    # ------------------------------------------------------------ after a restart

    async def recover_strategies(self) -> None:
        """Find the desired state's strategies again: re-adopt each live process that should run (same pid
        and start time), kill any that should not, start those that should run and have none.

        A strategy that should not run is REGISTERED again, as is one paused before the restart whose
        process is gone (it was not meant to trade); one FAULTED stays FAULTED.
        """
        for name, wanted in list(self.desired.strategies.items()):
            managed = self._add(StrategySpec(name, wanted.entry, wanted.account, wanted.config),
                                "recovered from the journal")
            alive = wanted.pid > 0 and identify(wanted.pid) == ProcessId(wanted.pid, wanted.started)
            if alive and wanted.want in (Want.RUNNING, Want.PAUSED):
                await self._adopt(managed, wanted.want)
                continue
            if alive:
                log.warning("killing a strategy process that should not run", strategy=name, pid=wanted.pid,
                            want=wanted.want.value)
                _kill_group(wanted.pid, signal.SIGKILL)
            if wanted.pid:
                self.desired.note(Kind.PROCESS, name=name, pid=0, started=0)
            if wanted.want is Want.FAULTED:
                managed.life.fire(Trigger.STAY_FAULTED)
                self._emit(managed, State.REGISTERED, "faulted before the restart")
            elif wanted.want is Want.PAUSED:
                log.warning("a paused strategy's process is gone: left REGISTERED, not started", strategy=name)
                self.desired.note(Kind.WANT, name=name, want=Want.STOPPED.value)
            elif wanted.want is Want.RUNNING:
                try:
                    await self.start(name)
                except (Unavailable, FailedPrecondition) as error:
                    log.error("strategy not started", strategy=name, error=str(error))
        await self.desired.durable()

    async def _adopt(self, managed: _Managed, want: Want) -> None:
        """Take a live process over from the control plane before this one: RUNNING (or PAUSED), its
        heartbeats heard from now on, its exit seen through a pidfd."""
        pid = self.desired.strategies[managed.spec.name].pid
        self._attach(managed, pid)
        managed.life.fire(Trigger.ADOPT)
        self._emit(managed, State.REGISTERED, "re-adopted: its process outlived the last control plane")
        # Say again what it should be doing: a signal the runner already acted on changes nothing.
        if want is Want.PAUSED:
            managed.life.fire(Trigger.PAUSE)
            self._signal(managed, signal.SIGUSR1)
            self._emit(managed, State.RUNNING, "pause (as before the restart)")
        else:
            self._signal(managed, signal.SIGUSR2)
        managed.task = asyncio.get_running_loop().create_task(self._watch(managed, _adopted_exit(pid)))
        try:
            await self._set_risk(managed, self.risk.pause_state if self.risk and want is Want.PAUSED else "ACTIVE")
        except (Unavailable, FailedPrecondition) as error:
            log.error("cannot set a re-adopted strategy's account", strategy=managed.spec.name, error=str(error))

    # ------------------------------------------------------------ processes

    async def _spawn(self, managed: _Managed) -> None:
        spec = managed.spec
        env = dict(os.environ)
        env.update(spec.env)
        env.update(RISKCORE_STRATEGY=spec.name, RISKCORE_ACCOUNT=spec.account,
                   RISKCORE_STRATEGY_CONFIG=json.dumps(dict(spec.config)),
                   RISKCORE_HEARTBEAT_INTERVAL=str(self.timings.heartbeat_interval),
                   RISKCORE_RISK_TARGET=self.risk_target, RISKCORE_MARKET_DATA_TARGET=self.market_data_target)
        env.update(RISKCORE_HEARTBEAT_SOCKET=self.heartbeats.path)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "riskcore_services.control.run", spec.entry, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL, env=env, start_new_session=True)
        except OSError as error:
            self._failed(managed, f"cannot start the process: {error}", "spawn")
            return
        self._attach(managed, process.pid)
        managed.task = asyncio.get_running_loop().create_task(self._watch(managed, process.wait()))
        # The child waits for its token before it does anything; it gets it only once its identity is
        # durable, so a control plane that dies in between leaves no process the next one cannot know.
        identity = identify(process.pid)
        try:
            await self.desired.record(Kind.PROCESS, name=spec.name, pid=process.pid,
                                      started=identity.started if identity else 0)
        except Unavailable as error:
            log.error("cannot record a strategy's process: killing it", strategy=spec.name, error=str(error))
            _kill_group(process.pid, signal.SIGKILL)
            return
        # The account's risk token, on stdin rather than in the environment, which whatever the strategy
        # spawns would inherit. A pipe this small never blocks; a child already dead has closed it.
        assert process.stdin is not None
        with contextlib.suppress(OSError):
            process.stdin.write(self.risk_tokens.get(spec.account, "").encode() + b"\n")
            process.stdin.close()

    def _attach(self, managed: _Managed, pid: int) -> None:
        """Make ``pid`` the strategy's process: its heartbeats routed to it, its clocks started."""
        managed.pid = pid
        managed.exited = asyncio.Event()
        managed.beats = asyncio.Queue()
        managed.started_at = managed.last_beat = self.clock()
        self._by_pid[pid] = managed

    def _deliver(self, pid: int, word: str) -> None:
        managed = self._by_pid.get(pid)
        if managed is not None:           # a process this control plane does not run says nothing
            managed.beats.put_nowait(word)

    async def _watch(self, managed: _Managed, exit_code: Awaitable[Optional[int]]) -> None:
        """Until the process ends: heartbeats and readiness from the socket, silence past the timeout, exit."""
        pid = managed.pid
        exit_task = asyncio.ensure_future(exit_code)
        reason = ""
        code: Optional[int] = None
        try:
            while not exit_task.done():
                timeout = (self.timings.start_timeout if managed.life.state is State.STARTING
                           else self.timings.heartbeat_timeout)
                beat = asyncio.ensure_future(managed.beats.get())
                done, _ = await asyncio.wait({exit_task, beat}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if beat in done:
                    managed.last_beat = self.clock()
                    # Any word after on_start means started: a datagram can be dropped (a full socket
                    # queue), and a lost "ready" must cost one heartbeat interval, not the start timeout.
                    if managed.life.state is State.STARTING:
                        managed.life.fire(Trigger.READY)
                        self._emit(managed, State.STARTING, "ready")
                    continue
                beat.cancel()
                if not done:
                    reason = f"heartbeat lost (none for {timeout:g} s)"
                    break
            if reason:
                _kill_group(pid, signal.SIGKILL)
            code = await exit_task
        finally:
            # Whatever the leader left in its group goes with it.
            _kill_group(pid, signal.SIGKILL)
            self._by_pid.pop(pid, None)
            managed.pid = 0
            managed.exited.set()
            if managed.spec.name in self.desired.strategies:
                self.desired.note(Kind.PROCESS, name=managed.spec.name, pid=0, started=0)
        if managed.life.state is State.STOPPING:
            managed.life.fire(Trigger.EXITED)
            self._emit(managed, State.STOPPING, f"exited with code {code}")
        elif managed.life.state.has_process:
            self._failed(managed, reason or _exit_reason(code), "heartbeat" if reason else "exit")

    def _failed(self, managed: _Managed, reason: str, kind: str = "exit") -> None:
        previous = managed.life.state
        state = managed.life.fail(reason)
        self.failures_total[kind] += 1
        if state is State.FAULTED:
            self.breaker_trips_total += 1
            self.desired.note(Kind.WANT, name=managed.spec.name, want=Want.FAULTED.value)
        log.warning("strategy failed", strategy=managed.spec.name, reason=reason, state=state.name,
                    backoff=managed.life.delay if state is State.BACKOFF else None)
        self._emit(managed, previous, reason, shown=State.FAILED)
        self._emit(managed, State.FAILED, reason)
        asyncio.get_running_loop().create_task(self._halt_quietly(managed))
        if state is State.BACKOFF:
            loop = asyncio.get_running_loop()
            managed.retry = loop.call_later(managed.life.delay,
                                            lambda: loop.create_task(self._retry(managed)))

    async def _retry(self, managed: _Managed) -> None:
        async with managed.busy:
            managed.retry = None
            if managed.life.state is not State.BACKOFF:
                return
            managed.life.fire(Trigger.RETRY)
            self.restarts_total += 1
            self._emit(managed, State.BACKOFF, "retry")
            try:
                await self._set_risk(managed, "ACTIVE")
            except (Unavailable, FailedPrecondition) as error:
                self._failed(managed, str(error), "risk")
                return
            await self._spawn(managed)

    def _begin_stop(self, managed: _Managed, signal_now: bool) -> State:
        """STOPPING (or STOPPED when there is no process), SIGTERM at once if ``signal_now``; the state left."""
        previous = managed.life.state
        managed.life.fire(Trigger.STOP)
        if managed.retry is not None:
            managed.retry.cancel()
            managed.retry = None
        if signal_now and managed.life.state is State.STOPPING and managed.pid:
            _kill_group(managed.pid, signal.SIGTERM)
        return previous

    async def _end_stop(self, managed: _Managed, terminate: bool = False, timeout: Optional[float] = None) -> None:
        """The account halted, then SIGTERM if ``terminate``; the grace, then SIGKILL."""
        await self._halt_quietly(managed, timeout)
        pid = managed.pid
        if managed.life.state is State.STOPPED:         # from FAILED or BACKOFF: no process
            return
        if not pid:                                     # it has just exited: its watch is finishing
            await managed.exited.wait()
            return
        if terminate:
            _kill_group(pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(managed.exited.wait(), self.timings.stop_grace)
        except asyncio.TimeoutError:
            log.warning("strategy ignored SIGTERM: killing its process group", strategy=managed.spec.name,
                        grace_seconds=self.timings.stop_grace)
            _kill_group(pid, signal.SIGKILL)
            await managed.exited.wait()

    # ------------------------------------------------------------ helpers

    async def _set_risk(self, managed: _Managed, state: str, timeout: Optional[float] = None) -> None:
        if self.risk is not None:
            await self.risk.set(managed.spec.account, state, timeout)

    async def _halt_quietly(self, managed: _Managed, timeout: Optional[float] = None) -> None:
        """HALTED in the risk engine, logging (not raising) when it cannot be reached: the stop goes on."""
        try:
            await self._set_risk(managed, "HALTED", timeout)
        except (Unavailable, FailedPrecondition) as error:
            log.error("cannot halt the strategy's account", strategy=managed.spec.name, error=str(error))

    def _signal(self, managed: _Managed, sig: signal.Signals) -> None:
        if managed.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(managed.pid, sig)

    def _emit(self, managed: _Managed, previous: State, reason: str, shown: Optional[State] = None) -> None:
        state = shown or managed.life.state
        pid = managed.pid
        log.info("strategy transition", strategy=managed.spec.name, state=state.name, previous=previous.name,
                 reason=reason, pid=pid)
        self.on_event(Event(managed.spec.name, state, previous, reason, pid, managed.life.restarts, time.time()))


async def _adopted_exit(pid: int) -> Optional[int]:
    """The exit of a process this control plane did not start: seen, its code unknowable (None)."""
    await wait_exit(pid)
    return None


def _exit_reason(code: Optional[int]) -> str:
    if code is None:
        return "exited (a re-adopted process: its code is its old parent's)"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
