"""A real Prometheus scraping every running service with the shipped rules, and a real Alertmanager
it sends its alerts to: alerts fire when the condition is provoked for real."""
from __future__ import annotations

import pytest

from riskcore_services.risk.client import RiskClient
from riskcore_services.testing import wait_until

from .conftest import SETTLE, job_name

pytestmark = pytest.mark.debian_servers


def test_prometheus_scrapes_every_service(stack):
    def all_up():
        targets = stack.prometheus.targets()
        return targets if all(t["health"] == "up" for t in targets) and len(targets) == len(stack.services) else None

    targets = wait_until(all_up, SETTLE, "every service's target to be up")

    assert sorted(t["labels"]["job"] for t in targets) == sorted(map(job_name, stack.services))
    up = stack.prometheus.query('up{job=~"riskcore-.*"}')
    assert {(s["metric"]["job"], s["value"][1]) for s in up} == {(job_name(n), "1") for n in stack.services}


def test_the_kill_switch_fires_trading_halted_which_alertmanager_lists_until_it_resolves(stack):
    assert not stack.prometheus.alerts("RiskcoreTradingHalted")
    with RiskClient(stack.services["risk"].target, deadline=5.0) as client:
        client.set_trading_state("HALTED", account="equities")
    try:
        (alert,) = wait_until(lambda: stack.prometheus.alerts("RiskcoreTradingHalted", "firing"), SETTLE,
                              "Prometheus to fire RiskcoreTradingHalted")
        assert (alert["labels"]["account"], alert["labels"]["severity"]) == ("equities", "critical")
        assert alert["annotations"]["summary"] == "Trading is HALTED on account equities"

        (received,) = wait_until(lambda: stack.alertmanager.alerts("RiskcoreTradingHalted"), SETTLE,
                                 "Alertmanager to list RiskcoreTradingHalted")
        assert received["status"]["state"] == "active"
        assert {k: received["labels"][k] for k in ("account", "severity", "job", "system")} \
            == {"account": "equities", "severity": "critical", "job": "riskcore-risk", "system": "riskcore"}
        assert received["annotations"]["summary"] == "Trading is HALTED on account equities"
    finally:
        with RiskClient(stack.services["risk"].target, deadline=5.0) as client:
            client.set_trading_state("ACTIVE", account="equities")
    wait_until(lambda: not stack.prometheus.alerts("RiskcoreTradingHalted"), SETTLE,
               "RiskcoreTradingHalted to resolve once equities is ACTIVE again")
    # Prometheus sends the resolved alert on: Alertmanager no longer lists it as active.
    wait_until(lambda: not stack.alertmanager.alerts("RiskcoreTradingHalted"), SETTLE,
               "Alertmanager to drop RiskcoreTradingHalted once resolved")


def test_a_killed_service_is_down_for_prometheus_and_its_alert_goes_pending(stack):
    ingest = stack.services["ingest"]

    def ingest_down() -> list[dict]:
        return [alert for alert in stack.prometheus.alerts("RiskcoreServiceDown")
                if alert["labels"]["job"] == job_name("ingest")]

    assert not ingest_down()
    ingest.kill()
    try:
        (alert,) = wait_until(ingest_down, SETTLE, "RiskcoreServiceDown to go pending for ingest")
        assert alert["state"] == "pending"  # it fires after its `for: 30s` (promtool tests that part)
        assert alert["labels"]["instance"] == f"127.0.0.1:{ingest.http_port}"
        assert alert["labels"]["severity"] == "critical"
    finally:
        ingest.start().wait_ready()
    wait_until(lambda: not ingest_down(), SETTLE, "RiskcoreServiceDown to clear once ingest is back")
