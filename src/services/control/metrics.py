"""The control plane's metrics (prefix ``riskcore_control_``), read from the supervisor at scrape time.

``/metrics`` is served on the event loop, the thread that changes the
supervisor, so a collector reads its state directly and the lifecycle pays
nothing for metrics. Labels are bounded: the nine states, four failure kinds,
and strategy names (as many as the operator registered).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from riskcore_services.control.lifecycle import State

if TYPE_CHECKING:
    from riskcore_services.control.supervisor import Supervisor


class ControlCollector(Collector):
    def __init__(self, supervisor: "Supervisor"):
        self.supervisor = supervisor

    def collect(self):
        supervisor = self.supervisor
        infos = [supervisor.info(name) for name in supervisor.names()]
        by_state = GaugeMetricFamily("riskcore_control_strategies", "Registered strategies, by lifecycle state",
                                     labels=["state"])
        for state in State:
            by_state.add_metric([state.name], sum(1 for info in infos if info["state"] is state))
        yield by_state
        yield CounterMetricFamily("riskcore_control_restarts", "Strategy restarts after a failure (backoff ended)",
                                  value=supervisor.restarts_total)
        yield CounterMetricFamily("riskcore_control_breaker_trips",
                                  "Strategies faulted by their breaker (too many failures in the window)",
                                  value=supervisor.breaker_trips_total)
        failures = CounterMetricFamily("riskcore_control_failures", "Strategy failures, by kind",
                                       labels=["kind"])
        for kind, count in supervisor.failures_total.items():
            failures.add_metric([kind], count)
        yield failures
        age = GaugeMetricFamily("riskcore_control_heartbeat_age_seconds",
                                "Seconds since each running strategy's last heartbeat", labels=["strategy"])
        for info in infos:
            if info["pid"]:
                age.add_metric([info["name"]], info["heartbeat_age"])
        yield age


def register_metrics(registry: CollectorRegistry, supervisor: "Supervisor") -> None:
    registry.register(ControlCollector(supervisor))
