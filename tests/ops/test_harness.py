"""The harness's Debian servers: found or skipped (failed where required), on free ports, stopped cleanly."""
from __future__ import annotations

import socket

import pytest

from riskcore_services.testing import (DEBIAN_INSTALL, HOST, REQUIRE_DEBIAN_SERVERS, DebianServerMissing,
                                       debian_binary, require_debian_binary)

from .conftest import alertmanager_config

MISSING = "riskcore-no-such-server"


def assert_nothing_listens(port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=1.0).close()


def test_a_missing_debian_binary_names_the_install_command():
    with pytest.raises(DebianServerMissing, match=f"{MISSING} or {MISSING}-2 is not installed: {DEBIAN_INSTALL}"):
        debian_binary(MISSING, f"{MISSING}-2")


def test_a_missing_debian_binary_skips_the_test_with_the_install_command(monkeypatch):
    monkeypatch.delenv(REQUIRE_DEBIAN_SERVERS, raising=False)

    with pytest.raises(pytest.skip.Exception, match=DEBIAN_INSTALL):
        require_debian_binary(MISSING)


def test_a_missing_debian_binary_fails_the_test_where_they_are_required(monkeypatch):
    monkeypatch.setenv(REQUIRE_DEBIAN_SERVERS, "1")

    with pytest.raises(pytest.fail.Exception, match=f"{DEBIAN_INSTALL} .{REQUIRE_DEBIAN_SERVERS}=1 requires it"):
        require_debian_binary(MISSING)


@pytest.mark.debian_servers
def test_prometheus_server_answers_queries_on_its_port_and_stops_cleanly(prometheus_server):
    prometheus = prometheus_server({"global": {"evaluation_interval": "1s"}})

    assert prometheus.query("1 + 1")[1] == "2"
    assert prometheus.alerts() == [] and prometheus.targets() == []
    assert prometheus.stop() == 0
    assert_nothing_listens(prometheus.port)


@pytest.mark.debian_servers
def test_alertmanager_server_on_the_shipped_config_lists_no_alerts_and_stops_cleanly(alertmanager_server):
    alertmanager = alertmanager_server(alertmanager_config())

    assert alertmanager.alerts() == []
    assert alertmanager.stop() == 0
    assert_nothing_listens(alertmanager.port)
