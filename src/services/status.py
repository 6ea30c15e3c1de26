"""``riskcore status``: a live terminal view of a running stack.

Positions, exposure and trading state per account (the risk engine's
``GetExposure`` and ``GetPositions``), strategies with their states and
restarts (the control plane's ``ListStrategies``), the feed (ingestion's
``GetStatus``: state, message rate, gaps, lag, staleness) and the alerts
firing now (the monitor's ``ListAlerts``), refreshed every second. Each
service is asked with a short deadline; one that does not answer shows as
down with the status code it gave, and the others are still shown.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

# Seconds each call may take before its service shows as down.
DEADLINE = 1.0
NS = 1e-9


@dataclass(slots=True)
class Answer:
    """What one service answered, or why it did not."""

    response: Any = None
    error: str = ""


def ask(stub_class: Any, target: str, method: str, request: Any) -> Answer:
    """Call ``method`` on ``target`` with :data:`DEADLINE`; an error becomes a one-line reason, never a raise."""
    import grpc

    with grpc.insecure_channel(target) as channel:
        try:
            return Answer(getattr(stub_class(channel), method)(request, timeout=DEADLINE))
        except grpc.RpcError as error:
            # Nothing listening, or no answer in time: the code says it all (grpc's details are a paragraph).
            quiet = error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            return Answer(error=error.code().name if quiet else f"{error.code().name}: {error.details()}")


@dataclass(slots=True)
class Snapshot:
    """One reading of every service."""

    exposure: Answer
    positions: Answer
    strategies: Answer
    feed: Answer
    alerts: Answer
    taken: float                    # time.monotonic() when the feed was read
    feed_rate: float | None = None  # messages per second since the previous reading, when there was one


@dataclass(slots=True)
class Targets:
    risk: str
    control: str
    ingest: str
    monitor: str


def read(targets: Targets) -> Snapshot:
    """Ask every service once."""
    from riskcore_services.proto import (
        control_pb2, control_pb2_grpc, ingest_pb2, ingest_pb2_grpc, monitor_pb2, monitor_pb2_grpc, risk_pb2,
        risk_pb2_grpc,
    )

    risk = risk_pb2_grpc.RiskEngineStub
    return Snapshot(
        exposure=ask(risk, targets.risk, "GetExposure", risk_pb2.ExposureRequest()),
        positions=ask(risk, targets.risk, "GetPositions", risk_pb2.PositionsRequest()),
        strategies=ask(control_pb2_grpc.ControlPlaneStub, targets.control, "ListStrategies",
                       control_pb2.ListStrategiesRequest()),
        feed=ask(ingest_pb2_grpc.MarketDataStub, targets.ingest, "GetStatus", ingest_pb2.StatusRequest()),
        alerts=ask(monitor_pb2_grpc.AlertsStub, targets.monitor, "ListAlerts", monitor_pb2.ListAlertsRequest()),
        taken=time.monotonic())


@dataclass(slots=True)
class View:
    """Readings over time: the feed's rate comes from two of them."""

    targets: Targets
    last: Snapshot | None = field(default=None)

    def refresh(self) -> Snapshot:
        snapshot = read(self.targets)
        last = self.last
        if last is not None and last.feed.response is not None and snapshot.feed.response is not None:
            seconds = snapshot.taken - last.taken
            counted = snapshot.feed.response.messages - last.feed.response.messages
            # A restarted service counts from zero again: no rate from a reading before it.
            snapshot.feed_rate = counted / seconds if seconds > 0 and counted >= 0 else None
        self.last = snapshot
        return snapshot


# ------------------------------------------------------------------ rendering

def _money(value: float) -> str:
    return f"{value:,.2f}"


def _number(value: float) -> str:
    """A measurement as people read it: 41,000,000 or 0.93, never 4.1e+07."""
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def _down(title: str, target: str, answer: Answer, what: str = "down") -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_row(Text(f"{what} ({target}): {answer.error}", style="bold red"))
    return table


def _state_style(name: str) -> str:
    return {"ACTIVE": "green", "RUNNING": "green", "LIVE": "green", "ENDED": "green", "REDUCING": "yellow",
            "PAUSED": "yellow", "BACKOFF": "yellow", "STARTING": "yellow"}.get(name, "bold red")


def _listing(title: str, columns: Sequence[str], rows: Sequence[Sequence[RenderableType]], empty: str,
             numeric: Sequence[str] = ()) -> Table:
    """A table of ``rows`` under ``columns`` (those in ``numeric`` right-aligned); ``empty`` when there are none."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left")
    for row in rows:
        table.add_row(*row)
    if not rows:
        table.add_row(empty, *[""] * (len(columns) - 1))
    return table


def _accounts(snapshot: Snapshot, targets: Targets) -> Table:
    from riskcore_services.proto import risk_pb2

    if snapshot.exposure.response is None:
        return _down("Accounts", targets.risk, snapshot.exposure, "risk engine down")
    accounts = snapshot.exposure.response.accounts
    parents = {row.account: row.parent for row in accounts}
    rows = []
    for row in accounts:
        state = risk_pb2.TradingState.Name(row.state)
        rows.append(("  " * _depth(row.account, parents) + row.account, Text(state, style=_state_style(state)),
                     _money(row.long_notional), _money(row.short_notional), _money(row.net_notional),
                     _money(row.gross_notional), _money(row.daily_pnl), str(row.open_orders)))
    amounts = ("long", "short", "net", "gross", "daily P&L", "open orders")
    return _listing("Accounts (exposure, trading state)", ("account", "state", *amounts), rows, "(no accounts)",
                    amounts)


def _depth(account: str, parents: dict[str, str]) -> int:
    """How far below the firm ``account`` sits (the tree is indented by it)."""
    depth = 0
    while parents.get(account) and depth < len(parents):   # bounded: a malformed answer cannot loop
        account = parents[account]
        depth += 1
    return depth


def _positions(snapshot: Snapshot, targets: Targets) -> Table:
    if snapshot.positions.response is None:
        return _down("Positions", targets.risk, snapshot.positions, "risk engine down")
    rows = [(row.account, row.symbol, f"{row.quantity:,}", f"{row.average_price:,.4f}", _money(row.realized_pnl),
             _money(row.unrealized_pnl)) for row in snapshot.positions.response.positions]
    amounts = ("quantity", "average price", "realized", "unrealized")
    return _listing("Positions", ("account", "symbol", *amounts), rows, "(no positions)", amounts)


def _strategies(snapshot: Snapshot, targets: Targets) -> Table:
    from riskcore_services.proto import control_pb2

    if snapshot.strategies.response is None:
        return _down("Strategies", targets.control, snapshot.strategies, "control plane down")
    rows = []
    for row in snapshot.strategies.response.strategies:
        state = control_pb2.StrategyState.Name(row.state).removeprefix("STRATEGY_STATE_")
        rows.append((row.name, row.account, Text(state, style=_state_style(state)), str(row.pid or ""),
                     f"{row.uptime_seconds:.0f} s", str(row.restarts), f"{row.heartbeat_age_seconds:.1f} s",
                     row.last_error))
    return _listing("Strategies", ("strategy", "account", "state", "pid", "uptime", "restarts", "heartbeat age",
                                   "last error"), rows, "(no strategies)")


def _feed(snapshot: Snapshot, targets: Targets) -> Table:
    from riskcore_services.proto import ingest_pb2

    if snapshot.feed.response is None:
        return _down("Feed", targets.ingest, snapshot.feed, "ingestion down")
    status = snapshot.feed.response
    state = ingest_pb2.FeedState.Name(status.state).removeprefix("FEED_STATE_")
    risk = next((o for o in status.outputs if o.name == "risk" and o.enabled), None)
    table = Table(title="Feed", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("state", Text(state, style=_state_style(state)))
    table.add_row("quotes", Text("STALE", style="bold red") if status.stale else Text("fresh", style="green"))
    table.add_row("rate", "-" if snapshot.feed_rate is None else f"{snapshot.feed_rate:,.0f} msg/s")
    table.add_row("messages", f"{status.messages:,} ({sum(s.loops for s in status.sessions)} loops)")
    table.add_row("gaps", str(sum(s.gaps for s in status.sessions)))
    table.add_row("lag", f"{status.lag_seconds * 1000:.1f} ms")
    table.add_row("symbols", f"{status.symbols:,}")
    table.add_row("marks to risk", "off" if risk is None else
                  f"{risk.sent:,} sent, {risk.failed:,} failed, {risk.unknown_symbols:,} unknown symbols")
    return table


def _alerts(snapshot: Snapshot, targets: Targets) -> Table:
    if snapshot.alerts.response is None:
        return _down("Alerts", targets.monitor, snapshot.alerts, "monitor not running")
    now = time.time()
    rows = []
    for alert in snapshot.alerts.response.alerts:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k not in ("alertname", "severity"))
        since = f"{max(0.0, now - alert.starts_at_unix_nano * NS):.0f} s" if alert.starts_at_unix_nano else ""
        rows.append((Text(alert.severity, style="bold red" if alert.severity == "critical" else "yellow"),
                     alert.rule, labels, alert.summary, _number(alert.value), since))
    return _listing("Alerts firing", ("severity", "rule", "labels", "summary", "value", "since"), rows, "(none)")


def render(snapshot: Snapshot, targets: Targets) -> RenderableType:
    """Every section of one reading, top to bottom."""
    sections: list[Callable[[Snapshot, Targets], Table]] = [_accounts, _positions, _strategies, _feed, _alerts]
    stamp = Text(f"riskcore status at {time.strftime('%H:%M:%S')}", style="bold")
    return Group(stamp, *(section(snapshot, targets) for section in sections))


# ------------------------------------------------------------------ the command

def run(args: argparse.Namespace) -> int:
    """Print one reading (``--once``) or a live view until Ctrl-C; 0 either way."""
    targets = Targets(args.risk, args.control, args.ingest, args.monitor)
    view = View(targets)
    console = Console()
    if args.once:
        # Two readings one interval apart, so the feed's rate is measured too.
        view.refresh()
        time.sleep(args.interval)
        console.print(render(view.refresh(), targets))
        return 0
    from rich.live import Live

    try:
        with Live(render(view.refresh(), targets), console=console, screen=False, auto_refresh=False) as live:
            while True:
                time.sleep(args.interval)
                live.update(render(view.refresh(), targets), refresh=True)
    except KeyboardInterrupt:
        return 0
