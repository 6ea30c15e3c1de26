"""The alert book against a simple model: an alert fires when its condition starts to hold, once per key,
and resolves when it stops holding."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcore_services.monitor.alerts import FIRING, RESOLVED, AlertBook
from riskcore_services.monitor.config import ConfigError, parse_config
from riskcore_services.monitor.rules import Rule, RuleSet
from riskcore_services.proto import monitor_pb2

RULES = RuleSet((
    Rule("High", "utilisation", "{account} {limit} {value:.0%}", above=0.8),
    Rule("Gross", "utilisation", "{account} gross", match={"limit": "max_gross_notional"}, above=0.5),
    Rule("Halted", "trading_state", "{account} {state}", states=("HALTED",)),
    Rule("Gap", "feed_gap", "{session}"),
))


def event(kind: str, value: float = 0.0, active: bool = False, **labels: str) -> monitor_pb2.Event:
    return monitor_pb2.Event(kind=kind, source="test", labels=labels, value=value, active=active)


def run(events, rules=RULES) -> tuple[list[monitor_pb2.Alert], AlertBook]:
    delivered: list[monitor_pb2.Alert] = []

    async def feed():
        book = AlertBook(rules, delivered.append)
        for item in events:
            book.on_event(item)
        return book

    return delivered, asyncio.run(feed())


def model(events) -> tuple[list[tuple[str, int]], set[str]]:
    """(key, status) of each transition, and the keys firing at the end, from the rules' conditions alone."""
    firing: set[str] = set()
    out = []
    for item in events:
        labels = dict(item.labels)
        for rule in RULES.rules:
            if rule.kind != item.kind:
                continue
            identity = ",".join(f'{k}="{labels[k]}"' for k in sorted(("account", "limit", "session"))
                                if k in labels and k in {"utilisation": ("account", "limit"),
                                                         "trading_state": ("account",),
                                                         "feed_gap": ("session",)}[rule.kind])
            key = f"{rule.name}{{{identity}}}"
            wanted = all(labels.get(k) == v for k, v in rule.match.items())
            if rule.above is not None:
                holds = wanted and item.value >= rule.above
            elif rule.states:
                holds = wanted and labels.get("state") in rule.states
            else:
                holds = wanted and item.active
            if holds and key not in firing:
                firing.add(key)
                out.append((key, FIRING))
            elif not holds and key in firing:
                firing.discard(key)
                out.append((key, RESOLVED))
    return out, firing


events = st.one_of(
    st.builds(lambda a, l, v: event("utilisation", v, account=a, limit=l), st.sampled_from("ab"),
              st.sampled_from(["max_gross_notional", "max_open_orders"]),
              st.floats(-1, 2, allow_nan=False) | st.sampled_from([0.5, 0.8, float("nan"), float("inf")])),
    st.builds(lambda a, s: event("trading_state", account=a, state=s), st.sampled_from("ab"),
              st.sampled_from(["ACTIVE", "REDUCING", "HALTED"])),
    st.builds(lambda s, active: event("feed_gap", active=active, session=s), st.sampled_from(["S1", "S2"]),
              st.booleans()),
    st.builds(lambda: event("strategy_state", active=True, strategy="x")),   # no rule of this kind
)


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=60))
def test_transitions_follow_the_conditions(sequence):
    delivered, book = run(sequence)
    transitions, firing = model(sequence)
    assert [(alert.key, alert.status) for alert in delivered] == transitions
    assert {alert.key for alert in book.firing()} == firing


def test_an_alert_carries_its_rule_and_identity_labels():
    delivered, _ = run([event("utilisation", 0.9, account="a", limit="max_open_orders", other="x")])
    [alert] = delivered
    assert alert.key == 'High{account="a",limit="max_open_orders"}'
    assert dict(alert.labels) == {"alertname": "High", "severity": "warning", "source": "test", "account": "a",
                                  "limit": "max_open_orders"}
    assert alert.summary == "a max_open_orders 90%" and alert.value == pytest.approx(0.9)


def test_for_seconds_waits_and_a_clear_in_between_cancels():
    rules = RuleSet((Rule("Gap", "feed_gap", "{session}", for_seconds=0.05),))
    delivered: list[monitor_pb2.Alert] = []

    async def scenario():
        book = AlertBook(rules, delivered.append)
        book.on_event(event("feed_gap", active=True, session="S"))
        book.on_event(event("feed_gap", active=False, session="S"))   # cleared before 50 ms
        await asyncio.sleep(0.1)
        assert delivered == []
        book.on_event(event("feed_gap", active=True, session="S"))
        await asyncio.sleep(0.1)
        assert [a.status for a in delivered] == [FIRING]

    asyncio.run(scenario())


def test_occurrences_resolve_after_their_time_and_a_repeat_extends_it():
    rules = RuleSet((Rule("Breach", "breach", "{account}", resolve_after=0.1),))
    delivered: list[monitor_pb2.Alert] = []

    async def scenario():
        book = AlertBook(rules, delivered.append)
        book.on_event(event("breach", account="a", reason="DAILY_LOSS_LIMIT", active=True))
        await asyncio.sleep(0.06)
        book.on_event(event("breach", account="a", reason="DAILY_LOSS_LIMIT", active=True))
        await asyncio.sleep(0.06)
        assert [a.status for a in delivered] == [FIRING]      # extended past the first 100 ms
        await asyncio.sleep(0.1)
        assert [a.status for a in delivered] == [FIRING, RESOLVED]

    asyncio.run(scenario())


@pytest.mark.parametrize("rules, message", [
    ('[[monitor.rules]]\nname = "x"\nkind = "nope"\nsummary = "s"', "monitor.rules[0].kind"),
    ('[[monitor.rules]]\nname = "x"\nkind = "utilisation"\nsummary = "{nope}"', "unknown field(s) ['nope']"),
    ('[[monitor.rules]]\nname = "x"\nkind = "utilisation"\nsummary = "s"\nabove = 1\nstates = ["A"]',
     "set above or states"),
    ('[[monitor.rules]]\nname = "x"\nkind = "breach"\nsummary = "s"\n[[monitor.rules]]\nname = "x"\n'
     'kind = "breach"\nsummary = "s"', "repeated: ['x']"),
    ('[[monitor.rules]]\nname = "x"\nkind = "breach"\nsummary = "s"\nextra = 1', "unknown key 'extra'"),
    ('[[monitor.webhooks]]\nname = "w"\nurl = "ftp://x"', "monitor.webhooks[0].url"),
    ('[[monitor.rules]]\nname = "x"\nkind = "utilisation"\nsummary = "s"\nmatch = { acount = "a" }',
     "x.match: utilisation events have no label(s) ['acount']; theirs: ['account', 'limit']"),
    ('[[monitor.rules]]\nname = "x"\nkind = "feed_gap"\nsummary = "s"\nmatch = { state = "GAP" }',
     "x.match: feed_gap events have no label(s) ['state']"),
    ('[[monitor.rules]]\nname = "x"\nkind = "feed_stale"\nsummary = "s"\nstates = ["STALE"]',
     "x.states: feed_stale events have no state label"),
    ('[[monitor.rules]]\nname = "x"\nkind = "rejection_rate"\nsummary = "{reason}"',
     "unknown field(s) ['reason']"),
])
def test_bad_rules_name_the_key(rules, message):
    import tomllib
    import pathlib

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        parse_config(tomllib.loads(rules), pathlib.Path("."))


def test_the_shipped_sample_has_a_rule_of_every_kind():
    from riskcore_services.monitor.config import load_config
    from riskcore_services.monitor.rules import IDENTITY

    assert set(load_config().rule_set().kinds()) == set(IDENTITY)
