"""The strategy SDK: subclass :class:`Strategy`; the control plane runs it in its own process.

A strategy is a Python entry point (``package.module:Class``) and a
configuration table. The runner (:mod:`riskcore_services.control.run`) builds
it, calls ``on_start``, then ``on_tick`` every ``interval`` seconds while it
runs (not while paused), and ``on_stop`` on SIGTERM. Between ticks it writes
heartbeats to the control plane; a strategy stuck in a hook sends none and is
failed once its heartbeat timeout passes, so keep hooks short.

``self.risk`` is a :class:`~riskcore_services.risk.client.RiskClient` bound to
the strategy's account: its ``check_position``, ``submit_order`` and reads
default to that account, and it sends the risk token the control plane holds
for that account, which the risk engine scopes to it.

``self.quotes`` is a :class:`~riskcore_services.ingest.client.QuoteFeed` of the
symbols in ``config["symbols"]`` (from the market data service the control
plane names): ``self.quotes.latest(symbol)`` any time, and ``on_quote`` for
each new quote, called from the same loop as the ticks (not while paused).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from riskcore_services.risk.client import RiskClient

if TYPE_CHECKING:
    from riskcore_services.ingest.client import QuoteFeed
    from riskcore_services.proto import ingest_pb2

__all__ = ["AccountRiskClient", "Strategy"]


class AccountRiskClient(RiskClient):
    """A RiskClient whose order calls and reads default to one account."""

    def __init__(self, target: str, account: str, **options):
        super().__init__(target, **options)
        self.account = account

    def check_position(self, symbol, quantity, side, account="", price=None):
        return super().check_position(symbol, quantity, side, account or self.account, price)

    def submit_order(self, client_order_id, symbol, quantity, side, account="", price=None):
        return super().submit_order(client_order_id, symbol, quantity, side, account or self.account, price)

    def get_positions(self, account=""):
        return super().get_positions(account or self.account)

    def get_exposure(self, account=""):
        return super().get_exposure(account or self.account)


class Strategy:
    """Base class of a strategy; override the hooks you need.

    Attributes
    ----------
    name : str
        The strategy's name in the control plane.
    account : str
        Its risk account.
    config : Mapping
        Its configuration table.
    risk : AccountRiskClient or None
        Bound to ``account``; None when the control plane gave no risk target.
    quotes : QuoteFeed or None
        The latest quote of each of ``config["symbols"]``; None when the configuration names none.
    interval : float
        Seconds between ``on_tick`` calls (a class attribute; ``config["interval"]`` overrides it).
    """

    interval: float = 1.0

    def __init__(self, name: str, account: str, config: Mapping[str, Any], risk: AccountRiskClient | None,
                 quotes: "QuoteFeed | None" = None):
        self.name = name
        self.account = account
        self.config = config
        self.risk = risk
        self.quotes = quotes
        self.interval = float(config.get("interval", self.interval))

    def on_start(self) -> None:
        """Before the first tick; raising here fails the start."""

    def on_tick(self) -> None:
        """Every ``interval`` seconds while running."""

    def on_quote(self, quote: "ingest_pb2.Quote") -> None:
        """A new quote of one of ``config["symbols"]`` (the newest: quotes that came while a hook ran are
        skipped). Prices are integers in 1/10,000 of a dollar (the feed's Price(4))."""

    def on_pause(self) -> None:
        """Ticks stop until ``on_resume``; the risk engine already limits the account (REDUCING or HALTED)."""

    def on_resume(self) -> None:
        """Ticks start again."""

    def on_stop(self) -> None:
        """Before the process exits on a stop. Open orders and positions are yours to close here."""
