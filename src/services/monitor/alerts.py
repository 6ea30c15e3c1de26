"""The alerts firing now: fired, deduplicated and resolved as events arrive.

Evaluation happens on each event, on the event loop, as it is received: no
polling. The only timers are the ones rules ask for (``for_seconds`` before
firing, ``resolve_after`` for occurrence kinds), one per alert that needs it.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable, Optional

from riskcore_services.monitor.rules import OCCURRENCES, Rule, RuleSet
from riskcore_services.proto import monitor_pb2

FIRING = monitor_pb2.ALERT_STATUS_FIRING
RESOLVED = monitor_pb2.ALERT_STATUS_RESOLVED


@dataclass(slots=True)
class _Firing:
    alert: monitor_pb2.Alert
    expiry: Optional[asyncio.TimerHandle]   # an occurrence alert's resolve timer


class AlertBook:
    """Applies the rules to each event and hands every FIRING and RESOLVED alert to ``deliver``.

    One alert per key (rule + identity labels): an event about something
    already firing updates its value and delivers nothing; the alert is
    delivered again only when it resolves.
    """

    def __init__(self, rules: RuleSet, deliver: Callable[[monitor_pb2.Alert], None],
                 time_ns: Callable[[], int] = time.time_ns):
        self.rules = rules
        self._deliver = deliver
        self._time_ns = time_ns
        self._firing: dict[str, _Firing] = {}
        self._pending: dict[str, asyncio.TimerHandle] = {}   # for_seconds not yet over

    def firing(self) -> list[monitor_pb2.Alert]:
        """Copies of the alerts firing now, oldest first."""
        out = []
        for entry in self._firing.values():
            alert = monitor_pb2.Alert()
            alert.CopyFrom(entry.alert)
            out.append(alert)
        return out

    def on_event(self, event: monitor_pb2.Event) -> None:
        # A rule's condition is its match and its test together: an event about something firing
        # that no longer matches (a strategy's failure cause changed) clears it.
        for rule in self.rules.by_kind.get(event.kind, ()):
            identity = rule.identity(event)
            key = rule.key(identity)
            if rule.matches(event) and rule.holds(event):
                self._holds(rule, key, identity, event)
            else:
                self._clears(key, event.time_unix_nano)

    def _holds(self, rule: Rule, key: str, identity: dict[str, str], event: monitor_pb2.Event) -> None:
        entry = self._firing.get(key)
        if entry is not None:
            entry.alert.value = event.value
            if entry.expiry is not None:
                entry.expiry.cancel()
                entry.expiry = self._expire_later(rule, key)
            return
        if rule.for_seconds > 0:
            if key not in self._pending:
                self._pending[key] = asyncio.get_running_loop().call_later(
                    rule.for_seconds, self._fire, rule, key, identity, event)
            return
        self._fire(rule, key, identity, event)

    def _fire(self, rule: Rule, key: str, identity: dict[str, str], event: monitor_pb2.Event) -> None:
        self._pending.pop(key, None)
        labels = {**rule.labels, **identity, "alertname": rule.name, "severity": rule.severity,
                  "source": event.source}
        alert = monitor_pb2.Alert(key=key, rule=rule.name, status=FIRING, severity=rule.severity, labels=labels,
                                  summary=rule.say(event), value=event.value, starts_at_unix_nano=self._time_ns(),
                                  event_time_unix_nano=event.time_unix_nano)
        self._firing[key] = _Firing(alert, self._expire_later(rule, key))
        self._deliver(alert)

    def _expire_later(self, rule: Rule, key: str) -> Optional[asyncio.TimerHandle]:
        if rule.kind not in OCCURRENCES:
            return None
        return asyncio.get_running_loop().call_later(rule.resolve_after, self._resolve, key, 0)

    def _clears(self, key: str, event_time_ns: int) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            pending.cancel()
        if key in self._firing:
            self._resolve(key, event_time_ns)

    def _resolve(self, key: str, event_time_ns: int) -> None:
        entry = self._firing.pop(key)
        if entry.expiry is not None:
            entry.expiry.cancel()
        now = self._time_ns()
        resolved = monitor_pb2.Alert()
        resolved.CopyFrom(entry.alert)
        resolved.status = RESOLVED
        resolved.ends_at_unix_nano = now
        resolved.event_time_unix_nano = event_time_ns or now
        self._deliver(resolved)

    def close(self) -> None:
        """Cancel the timers (the service is stopping)."""
        for handle in self._pending.values():
            handle.cancel()
        for entry in self._firing.values():
            if entry.expiry is not None:
                entry.expiry.cancel()
