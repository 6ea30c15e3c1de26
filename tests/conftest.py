"""Fixtures every test folder shares: the servers and tools only Debian ships.

``prometheus_server(config, rules)`` and ``alertmanager_server(config)`` start the
real servers on free ports in the test's folder and stop them at its end. Each
fixture finds its binary with :func:`riskcore_services.testing.require_debian_binary`:
absent, the test is skipped with the install command as the reason, or fails where
``RISKCORE_REQUIRE_DEBIAN_SERVERS=1`` (CI). A test that uses one must be marked
``@pytest.mark.debian_servers`` so that CI's ``-m debian_servers`` run finds it;
collection fails otherwise.
"""
from __future__ import annotations

import pathlib
from typing import Any, Callable, Iterable, Iterator

import pytest

from riskcore_services.testing import AlertmanagerServer, Children, PrometheusServer, require_debian_binary

DEBIAN_FIXTURES = frozenset({"prometheus_binary", "promtool", "alertmanager_binary", "amtool"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items
                if DEBIAN_FIXTURES.intersection(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("debian_servers") is None]
    if unmarked:
        raise pytest.UsageError("these tests use Debian's servers but are not marked "
                                "@pytest.mark.debian_servers: " + ", ".join(unmarked))


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_debian_binary("prometheus")


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_debian_binary("promtool")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    return require_debian_binary("prometheus-alertmanager", "alertmanager")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_debian_binary("amtool")


@pytest.fixture
def prometheus_server(tmp_path, prometheus_binary) -> Iterator[Callable[..., PrometheusServer]]:
    """``prometheus_server(config, rules=())``: a ready Prometheus on ``config`` (a parsed prometheus.yml)."""
    with Children(tmp_path) as children:
        def start(config: dict[str, Any], rules: Iterable[pathlib.Path] = ()) -> PrometheusServer:
            server = PrometheusServer(tmp_path, config, rules, binary=prometheus_binary)
            return children.add(server).start().wait_ready()
        yield start


@pytest.fixture
def alertmanager_server(tmp_path, alertmanager_binary) -> Iterator[Callable[[dict[str, Any]], AlertmanagerServer]]:
    """``alertmanager_server(config)``: a ready Alertmanager on ``config`` (a parsed alertmanager.yml)."""
    with Children(tmp_path) as children:
        def start(config: dict[str, Any]) -> AlertmanagerServer:
            return children.add(AlertmanagerServer(tmp_path, config, binary=alertmanager_binary)).start().wait_ready()
        yield start
