"""The shipped operator files (``ops/``) and, for the tests that need it, the whole stack running.

The stack is every service of ``riskcore serve`` (``riskcore_services.cli.SERVICES``)
as a child process on ports picked here, each on its shipped sample configuration
with the other services' default addresses rewritten to theirs; an Alertmanager;
and a Prometheus on the shipped ``prometheus.yml`` and rules, its targets rewritten
to those ports and its scrape and evaluation intervals cut to 1 s. It starts once
for the folder and is stopped at its end.
"""
from __future__ import annotations

import importlib.resources
import pathlib
import re
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
import yaml

from riskcore_services.cli import SERVICES
from riskcore_services.testing import (AlertmanagerServer, Children, Metrics, PrometheusServer, ServerProcess,
                                       free_port)

OPS = pathlib.Path(__file__).resolve().parents[2] / "ops"
PROMETHEUS_YML = OPS / "prometheus" / "prometheus.yml"
RULES = sorted((OPS / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((OPS / "prometheus" / "tests").glob("*.yml"))
ALERTMANAGER_YML = OPS / "alertmanager" / "alertmanager.yml"
DASHBOARD = OPS / "grafana" / "riskcore-dashboard.json"
# Seconds for Prometheus to see a change: a few 1 s scrapes and evaluations, on a shared machine.
SETTLE = 60.0


def load_yaml(path: pathlib.Path) -> Any:
    return yaml.safe_load(path.read_text())


def job_name(service: str) -> str:
    """The scrape job of a service in the shipped prometheus.yml."""
    return f"riskcore-{service}"


def shipped_rules(kind: str) -> list[dict[str, Any]]:
    """The shipped rules of ``kind``: "alert" (alerting rules) or "record" (recording rules)."""
    return [rule for path in RULES for group in load_yaml(path)["groups"] for rule in group["rules"] if kind in rule]


def _write_service_config(name: str, path: pathlib.Path, addresses: dict[str, str]) -> None:
    """The service's shipped sample, its references to other services' default addresses rewritten."""
    sample = importlib.resources.files(SERVICES[name][0].package).joinpath("sample.toml").read_text()
    path.write_text(re.sub(r"127\.0\.0\.1:\d+\b", lambda m: addresses.get(m.group(0), m.group(0)), sample))


@dataclass
class Stack:
    services: dict[str, ServerProcess]
    prometheus: PrometheusServer
    alertmanager: AlertmanagerServer

    def metrics(self) -> dict[str, Metrics]:
        """A scrape of every service's /metrics, by service name."""
        return {name: server.metrics() for name, server in self.services.items()}


def prometheus_config(services: dict[str, ServerProcess], alertmanager: AlertmanagerServer) -> dict[str, Any]:
    """The shipped prometheus.yml aimed at ``services`` and ``alertmanager``, scraping and evaluating
    every second. A job whose service is not running is left out."""
    config = load_yaml(PROMETHEUS_YML)
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["scrape_configs"] = [
        {**job, "static_configs": [{"targets": [f"127.0.0.1:{services[name].http_port}"]}]}
        for job in config["scrape_configs"] if (name := job["job_name"].removeprefix("riskcore-")) in services]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager.address]}]}]
    return config


def alertmanager_config() -> dict[str, Any]:
    """The shipped alertmanager.yml, its webhooks aimed at a port where nothing listens (notifications
    fail, quietly; the tests read Alertmanager's API instead)."""
    config = load_yaml(ALERTMANAGER_YML)
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", ()):
            webhook["url"] = f"http://127.0.0.1:{free_port()}/riskcore-alerts"
    return config


@pytest.fixture(scope="package")
def stack(tmp_path_factory, prometheus_binary, alertmanager_binary) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("stack")
    with Children(directory) as children:
        services = {name: ServerProcess(name, directory / name, directory / name / "riskcore.toml",
                                        command=("-m", "riskcore_services.cli", "serve", name)) for name in SERVICES}
        addresses = {f"127.0.0.1:{port}": services[name].target for name, (_, port, _) in SERVICES.items()}
        addresses |= {f"127.0.0.1:{http_port}": f"127.0.0.1:{services[name].http_port}"
                      for name, (_, _, http_port) in SERVICES.items()}
        for name, server in services.items():
            server.directory.mkdir()
            _write_service_config(name, server.directory / "riskcore.toml", addresses)
            children.add(server).start()
        for server in services.values():
            server.wait_ready()
        alertmanager = children.add(AlertmanagerServer(directory, alertmanager_config(), binary=alertmanager_binary))
        alertmanager.start().wait_ready()
        prometheus = children.add(PrometheusServer(directory, prometheus_config(services, alertmanager), RULES,
                                                   binary=prometheus_binary))
        prometheus.start().wait_ready()
        yield Stack(services, prometheus, alertmanager)
        for child in (prometheus, alertmanager, *services.values()):
            child.stop()
