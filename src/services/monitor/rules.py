"""Alert rules: which events an alert is about, when its condition holds, how it is named and said.

A rule applies to one event kind (``utilisation``, ``breach``, ...; the
README's table lists them with their labels). Its condition on an event is, in
this order: ``above`` (the event's value is at least this), ``states`` (the
event's ``state`` label is one of these), or else the event's own ``active``
flag. An alert is one rule applied to one thing: its key is the rule's name
and the event's *identity labels* (an account and a limit, a strategy, a feed
session), so repeated events about the same thing update one alert instead of
raising many.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Annotated, Literal, Mapping, Optional

from msgspec import Meta

from riskcore_services.proto import monitor_pb2

# Event kinds and the labels that say what each event is about.
IDENTITY: dict[str, tuple[str, ...]] = {
    "utilisation": ("account", "limit"),        # risk: a set limit's use, value = used / limit
    "breach": ("account", "symbol", "reason"),  # risk: a hard limit breach (an occurrence)
    "trading_state": ("account", "symbol"),     # risk: an account or symbol changed state; active = not ACTIVE
    "rejection_rate": ("account",),             # risk: value = rejections in the last second
    "strategy_state": ("strategy",),            # control: a strategy changed state
    "feed_gap": ("session",),                   # ingest: a sequence gap opened (active) or closed
    "feed_stale": ("feed",),                    # ingest: quotes stale (active) or live again
    "book_inconsistent": ("feed", "counter"),   # ingest: the book applied what it cannot make sense of (an occurrence)
    "service_ready": ("service",),              # monitor: a source service is not ready (active) or back
}
# The labels events of a kind carry besides their identity.
DETAIL_LABELS: dict[str, tuple[str, ...]] = {
    "breach": ("state",), "trading_state": ("state",), "strategy_state": ("state", "cause"),
}
# Kinds whose events report occurrences only (nothing ever says "it cleared"):
# their alerts resolve ``resolve_after`` seconds after the last occurrence.
OCCURRENCES = frozenset({"breach", "book_inconsistent"})

Name = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
Kind = Literal["utilisation", "breach", "trading_state", "rejection_rate", "strategy_state", "feed_gap",
               "feed_stale", "book_inconsistent", "service_ready"]
Seconds = Annotated[float, Meta(ge=0, le=86_400)]


@dataclass(frozen=True, slots=True)
class Rule:
    """``[[monitor.rules]]``: one alert rule."""

    name: Name
    kind: Kind
    summary: Annotated[str, Meta(min_length=1, max_length=1024)]
    severity: Literal["critical", "warning", "info"] = "warning"
    match: dict[str, str | list[str]] = field(default_factory=dict)   # label -> value or any of values
    above: Optional[float] = None
    states: tuple[str, ...] = ()
    for_seconds: Seconds = 0.0          # the condition must hold this long before the alert fires
    resolve_after: Seconds = 60.0       # occurrence kinds (breach): resolved this long after the last one
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.above is not None and self.states:
            raise ValueError(f"monitor.rules {self.name}: set above or states, not both")
        if self.above is not None and self.above != self.above:
            raise ValueError(f"monitor.rules {self.name}.above: must be a number, got NaN")
        # A label no event of the kind carries would never match, or always read empty: refused.
        labels = {*IDENTITY[self.kind], *DETAIL_LABELS.get(self.kind, ())}
        unknown = sorted(set(self.match) - labels)
        if unknown:
            raise ValueError(f"monitor.rules {self.name}.match: {self.kind} events have no label(s) {unknown}; "
                             f"theirs: {sorted(labels)}")
        if self.states and "state" not in labels:
            raise ValueError(f"monitor.rules {self.name}.states: {self.kind} events have no state label; "
                             f"use above or the event's active flag")
        fields = {name for _, name, _, _ in string.Formatter().parse(self.summary) if name}
        known = {"value", "limit_value", "detail", "source", *labels}
        unknown = sorted(fields - known)
        if unknown:
            raise ValueError(f"monitor.rules {self.name}.summary: unknown field(s) {unknown}; "
                             f"known: {sorted(known)}")

    def matches(self, event: monitor_pb2.Event) -> bool:
        labels = event.labels
        for label, wanted in self.match.items():
            value = labels.get(label, "")
            if value != wanted if isinstance(wanted, str) else value not in wanted:
                return False
        return True

    def holds(self, event: monitor_pb2.Event) -> bool:
        """Whether the rule's condition holds on ``event``."""
        if self.above is not None:
            return event.value >= self.above
        if self.states:
            return event.labels.get("state", "") in self.states
        return event.active

    def identity(self, event: monitor_pb2.Event) -> dict[str, str]:
        labels = event.labels
        return {name: labels[name] for name in IDENTITY[self.kind] if labels.get(name)}

    def key(self, identity: Mapping[str, str]) -> str:
        inside = ",".join(f'{name}="{value}"' for name, value in sorted(identity.items()))
        return f"{self.name}{{{inside}}}"

    def say(self, event: monitor_pb2.Event) -> str:
        """The human summary of ``event`` (missing labels read as empty)."""
        values = _Blank(value=event.value, limit_value=event.limit, detail=event.detail, source=event.source)
        values.update(event.labels)
        try:
            return self.summary.format_map(values)
        except (ValueError, TypeError):  # a format spec that does not fit this value (":.0%" on a label)
            return f"{self.summary} ({event.detail or event.value})"


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


class RuleSet:
    """The rules, by the event kind they apply to."""

    def __init__(self, rules: tuple[Rule, ...]):
        names = [rule.name for rule in rules]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"monitor.rules: names must be unique, repeated: {duplicated}")
        self.rules = rules
        self.by_kind: dict[str, list[Rule]] = {}
        for rule in rules:
            self.by_kind.setdefault(rule.kind, []).append(rule)

    def kinds(self) -> list[str]:
        return sorted(self.by_kind)
