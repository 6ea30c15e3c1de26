"""The shipped Prometheus, Alertmanager and promtool files, checked with Debian's own tools."""
from __future__ import annotations

import subprocess

import pytest

from riskcore_services.cli import SERVICES

from .conftest import ALERTMANAGER_YML, PROMETHEUS_YML, RULE_TESTS, RULES, job_name, load_yaml, shipped_rules


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@pytest.mark.debian_servers
def test_promtool_checks_the_shipped_prometheus_config_and_the_rules_it_loads(promtool):
    checked = run(promtool, "check", "config", str(PROMETHEUS_YML))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(RULES)} rule files found" in checked.stdout + checked.stderr


@pytest.mark.debian_servers
def test_promtool_checks_every_rule_file(promtool):
    checked = run(promtool, "check", "rules", *map(str, RULES))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("SUCCESS") == len(RULES)


@pytest.mark.debian_servers
def test_promtool_unit_tests_of_the_rules_pass(promtool):
    tested = run(promtool, "test", "rules", *map(str, RULE_TESTS))

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(RULE_TESTS)


@pytest.mark.debian_servers
def test_amtool_checks_the_shipped_alertmanager_config(amtool):
    checked = run(amtool, "check-config", str(ALERTMANAGER_YML))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_stays_quiet():
    cases: dict[str, set[bool]] = {}
    for path in RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", ()):
                cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))

    assert {rule["alert"]: cases.get(rule["alert"], set()) for rule in shipped_rules("alert")} \
        == {rule["alert"]: {True, False} for rule in shipped_rules("alert")}


def test_every_recording_rule_has_a_unit_test():
    tested = {case["expr"] for path in RULE_TESTS for test in load_yaml(path)["tests"]
              for case in test.get("promql_expr_test", ())}

    assert {rule["record"] for rule in shipped_rules("record")} <= tested


def test_every_rule_file_is_unit_tested():
    loaded = {(path.parent / name).resolve() for path in RULE_TESTS for name in load_yaml(path)["rule_files"]}

    assert loaded == set(RULES)


def test_every_alert_has_a_severity_a_summary_and_a_description():
    for rule in shipped_rules("alert"):
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert rule["alert"].startswith("Riskcore"), rule["alert"]


def test_the_scrape_config_has_a_job_for_every_service_on_its_default_http_port():
    config = load_yaml(PROMETHEUS_YML)
    targets = {job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
               for job in config["scrape_configs"]}

    for name, (_, _, http_port) in SERVICES.items():
        assert targets[job_name(name)] == [f"127.0.0.1:{http_port}"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
