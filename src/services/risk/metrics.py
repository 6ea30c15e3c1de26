"""The risk service's own metrics: decisions, check latency, exposure, limit use and trading states.

Exposure and utilisation are read from the engine at scrape time by a
collector, so the check path pays nothing for them.
"""
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from riskcore import Reason, RiskEngine, TradingState
from riskcore_services.common.metrics import LoopCounter, LoopHistogram


class EngineCollector(Collector):
    """Exposure, P&L, limit utilisation and trading state (the kill switch) per account."""

    def __init__(self, engine: RiskEngine):
        self.engine = engine

    def collect(self):
        engine = self.engine
        exposure = GaugeMetricFamily("riskcore_exposure_notional", "Notional exposure per account, in currency",
                                     labels=["account", "kind"])
        pnl = GaugeMetricFamily("riskcore_pnl", "P&L per account, in currency", labels=["account", "kind"])
        utilisation = GaugeMetricFamily("riskcore_limit_utilisation_ratio",
                                        "Use of each set limit as a fraction of the limit", labels=["account", "limit"])
        # One series per state, 1 for the current one (the kill switch's alert matches state="HALTED").
        states = GaugeMetricFamily("riskcore_trading_state", "1 for each account's current trading state",
                                   labels=["account", "state"])
        names = engine.accounts
        for row in engine.aggregates():
            account = names[row["account"]]
            for kind in ("long", "short", "working_buy", "working_sell"):
                exposure.add_metric([account, kind], row[kind] / 1e6)
            exposure.add_metric([account, "gross"], (row["long"] + row["short"] + row["working_buy"]
                                                     + row["working_sell"]) / 1e6)
            exposure.add_metric([account, "net"], (row["long"] - row["short"]) / 1e6)
            for kind in ("realized", "unrealized", "daily_pnl"):
                pnl.add_metric([account, kind.removesuffix("_pnl")], row[kind] / 1e6)
            for limit, (_, _, ratio) in engine.utilisation(account).items():
                utilisation.add_metric([account, limit], ratio)
            state = engine.trading_state(account)
            for each in TradingState:
                states.add_metric([account, each.name], 1.0 if each is state else 0.0)
        yield exposure
        yield pnl
        yield utilisation
        yield states


class RiskMetrics:
    """Counters and histograms the service updates on every decision (on the event loop's thread)."""

    def __init__(self, registry: CollectorRegistry, engine: RiskEngine):
        self.checks = LoopCounter("riskcore_checks", "Pre-trade decisions by result and reason",
                                  ("result", "reason"), registry)
        self.check_duration = LoopHistogram("riskcore_check_duration_seconds",
                                            "Time the engine spends on one pre-trade check (single calls)", (), registry)
        self.batch_orders = LoopCounter("riskcore_batch_orders", "Orders checked in batches", (), registry).labels()
        self.fills = LoopCounter("riskcore_fills", "Fills reported, by outcome", ("outcome",), registry)
        self.breaches_dropped = LoopCounter("riskcore_breach_events_dropped",
                                            "Breach events dropped for slow WatchBreaches subscribers", (),
                                            registry).labels()
        self._by_code = [self.checks.labels("accepted" if r == Reason.OK else "rejected", r.name) for r in Reason]
        self._check_seconds = self.check_duration.labels()
        for outcome in ("applied", "duplicate"):
            self.fills.labels(outcome)
        self._collector = EngineCollector(engine)
        registry.register(self._collector)

    def bind_engine(self, engine: RiskEngine) -> None:
        """Read exposure from ``engine`` from now on (after a restore replaced the engine)."""
        self._collector.engine = engine

    def decision(self, code: int, seconds: float) -> None:
        self._by_code[code].inc()
        self._check_seconds.observe(seconds)

    def count(self, code: int) -> None:
        """Count a decision the engine was not asked for (a repeated client order id's rejection)."""
        self._by_code[code].inc()

    def batch(self, counts) -> None:
        """Count a batch's decisions from ``numpy.bincount`` of its reason codes."""
        total = 0
        for code, n in enumerate(counts):
            if n:
                self._by_code[code].inc(int(n))
                total += int(n)
        self.batch_orders.inc(total)
