"""What the risk service reports on its event stream, for the monitor's rules.

- ``breach``: the kernel's hard breaches (daily loss, execution throttle,
  capacity), as they happen.
- ``trading_state``: an account or symbol changed state (a manual change, the
  kill switch on the firm, or a breach that halted its account); active while
  the target is not ACTIVE.
- ``utilisation``: each set limit's use (value = used / limit), sent when it
  changed, at most once per event-loop pass after a call that changed state;
  the work is done after the call has answered.
- ``rejection_rate``: rejected decisions per account in the last second (a
  batch's rejected rows each count), sent at the first rejection and then
  every 100 ms while it is not zero (so it falls back to zero when
  rejections stop).

Nothing is computed while nobody listens (no monitor subscribed, no alert
rules in-process): the check path then pays one attribute test per rejection.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING, Optional

from riskcore import TradingState
from riskcore_services.common.events import EventStream
from riskcore_services.proto import monitor_pb2, risk_pb2

if TYPE_CHECKING:
    from riskcore_services.risk.service import RiskService

EVENT_KINDS = ("breach", "trading_state", "utilisation", "rejection_rate")

TICK_NS = 100_000_000          # the rejection window's resolution
WINDOW_TICKS = 10              # one second


class _Rate:
    """Rejections of one account in the last second, in ten 100 ms slots."""

    __slots__ = ("counts", "ticks", "timer")

    def __init__(self) -> None:
        self.counts = [0] * WINDOW_TICKS
        self.ticks = [0] * WINDOW_TICKS
        self.timer: Optional[asyncio.TimerHandle] = None

    def add(self, tick: int, count: int) -> None:
        slot = tick % WINDOW_TICKS
        if self.ticks[slot] != tick:
            self.ticks[slot], self.counts[slot] = tick, 0
        self.counts[slot] += count

    def last_second(self, tick: int) -> int:
        return sum(count for count, at in zip(self.counts, self.ticks) if tick - at < WINDOW_TICKS)


def _state_name(state: int) -> str:
    return TradingState(state).name


class RiskEvents:
    """Turns the risk service's breaches, state changes, limit use and rejections into events."""

    def __init__(self, stream: EventStream, service: "RiskService"):
        self.stream = stream
        self.service = service
        self._rates: dict[str, _Rate] = {}
        self._sent_use: dict[tuple[str, str], float] = {}
        self._flush_pending = False
        stream.conditions = self.conditions

    # -- breaches and states
    def breach(self, breach: risk_pb2.Breach) -> None:
        """A Breach the service published (WatchBreaches): as events."""
        stream = self.stream
        if not stream.listening:
            return
        target = {"account": breach.account, "symbol": breach.symbol}
        state = risk_pb2.TradingState.Name(breach.state)
        if breach.reason != "STATE_CHANGE":
            stream.publish("breach", {**target, "reason": breach.reason, "state": state}, value=breach.value,
                           limit=breach.limit, time_ns=breach.time_unix_nano,
                           detail=f"{breach.reason}: {breach.value:g} against {breach.limit:g}")
            if breach.symbol:
                return   # a symbol's breach does not change an account's state
            target["symbol"] = ""
        stream.publish("trading_state", {**target, "state": state}, active=state != "ACTIVE",
                       time_ns=breach.time_unix_nano, detail=f"{breach.account or breach.symbol} {state}"
                       + (f" by {breach.actor}" if breach.actor else ""))

    # -- limit use
    def changed(self) -> None:
        """A call changed state: send the limits' use once the current loop pass is over."""
        if self.stream.listening and not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._send_use)

    def _send_use(self) -> None:
        self._flush_pending = False
        for event in self._use_events(only_changed=True):
            self.stream.forward(event)

    def _use_events(self, only_changed: bool) -> list[monitor_pb2.Event]:
        engine, sent, stream = self.service.engine, self._sent_use, self.stream
        now = time.time_ns()
        out = []
        for account in engine.accounts:
            for limit, (value, bound, ratio) in engine.utilisation(account).items():
                key = (account, limit)
                if only_changed and sent.get(key) == ratio:
                    continue
                sent[key] = ratio
                out.append(stream.event("utilisation", {"account": account, "limit": limit}, value=ratio,
                                        limit=bound, time_ns=now, detail=f"{limit} {value:g} of {bound:g}"))
        return out

    # -- rejections
    def rejected(self, account: str, count: int = 1) -> None:
        """``count`` rejected decisions for ``account`` (empty: the default account)."""
        if not self.stream.listening:
            return
        account = account or self.service.default_account
        rate = self._rates.get(account)
        if rate is None:
            rate = self._rates[account] = _Rate()
        rate.add(time.monotonic_ns() // TICK_NS, count)
        if rate.timer is None:
            self._send_rate(account)

    def rejected_rows(self, request: risk_pb2.OrderBatch, response: risk_pb2.BatchResponse) -> None:
        """A batch's rejected rows, counted per account."""
        if not self.stream.listening or response.accepted == len(response.reason_codes):
            return
        accounts = Counter(account for account, code in zip(request.accounts, response.reason_codes) if code)
        for account, count in accounts.items():
            self.rejected(account, count)

    def _send_rate(self, account: str) -> None:
        rate = self._rates[account]
        value = rate.last_second(time.monotonic_ns() // TICK_NS)
        self.stream.publish("rejection_rate", {"account": account}, value=value,
                            detail=f"{value} rejections in the last second")
        rate.timer = (asyncio.get_running_loop().call_later(TICK_NS / 1e9, self._send_rate, account)
                      if value else None)

    # -- a new subscriber's first events
    def conditions(self) -> list[monitor_pb2.Event]:
        """Every account's and symbol's trading state and every set limit's use, now."""
        engine, stream = self.service.engine, self.stream
        now = time.time_ns()
        out = []
        for kind, names in (("account", engine.accounts), ("symbol", engine.symbols)):
            for name in names:
                state = _state_name(engine.trading_state(**{kind: name}))
                labels = {"account": name, "symbol": ""} if kind == "account" else {"account": "", "symbol": name}
                out.append(stream.event("trading_state", {**labels, "state": state}, active=state != "ACTIVE",
                                        time_ns=now, detail=f"{name} {state}"))
        return out + self._use_events(only_changed=False)
