"""The shipped Grafana dashboard: it loads, and every panel's PromQL parses and uses only metrics our
services export (collected from a real scrape of every running service) or rules we ship."""
from __future__ import annotations

import json
import re
from typing import Any

import pytest

from riskcore_services.testing import Metrics, PromQLError

from .conftest import DASHBOARD, shipped_rules

# A metric name in PromQL: riskcore_... or a recording rule's level:metric:operations.
_NAME = re.compile(r"\b(riskcore_[a-z0-9_]+|[a-z_]+:[a-z0-9_]+:[a-z0-9_]+)\b")
# The panels that draw nothing: a row only groups the panels below it.
_LAYOUT = {"row"}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def expressions() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", ())]


def exported_names(metrics: Metrics) -> set[str]:
    """The names PromQL can select from a scrape: a counter's ``_total``, a histogram's ``_bucket``,
    ``_count`` and ``_sum``, a gauge's own name; families with no sample yet included."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
    names = {sample.name for family in metrics.families.values() for sample in family.samples}
    for name, family in metrics.families.items():
        names.update(name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def test_the_dashboard_loads_and_every_panel_queries_prometheus():
    board = dashboard()
    panels = board["panels"]
    graphs = [panel for panel in panels if panel["type"] not in _LAYOUT]

    assert board["uid"] and board["title"] and len(graphs) >= 15
    assert len({panel["id"] for panel in panels}) == len(panels)
    assert [v["type"] for v in board["templating"]["list"]] == ["datasource"]
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(target["expr"].strip() for target in panel["targets"]), panel["title"]
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"]), panel["title"]


def test_the_dashboard_shows_decisions_latency_exposure_strategies_and_the_feed():
    used = {name for expr in expressions() for name in _NAME.findall(expr)}

    for needed in ("job_reason:riskcore_rejections:rate1m", "job:riskcore_check_duration_seconds:quantile_rate1m",
                   "riskcore_exposure_notional", "riskcore_limit_utilisation_ratio", "riskcore_control_strategies",
                   "job:riskcore_ingest_messages:rate1m", "riskcore_ingest_gaps_total",
                   "job:riskcore_ingest_lag_seconds:quantile_rate1m"):
        assert needed in used, needed


@pytest.mark.debian_servers
@pytest.mark.parametrize("expr", expressions())
def test_every_dashboard_expression_parses_in_prometheus(stack, expr):
    stack.prometheus.query(expr)  # PromQLError (bad_data: the parse error) fails the test


@pytest.mark.debian_servers
def test_prometheus_refuses_a_bad_expression_with_its_parse_error(stack):
    with pytest.raises(PromQLError, match="bad_data: .*parse error"):
        stack.prometheus.query("sum by (job (riskcore_checks_total)")


@pytest.mark.debian_servers
def test_every_metric_the_dashboard_and_the_rules_use_is_exported_or_recorded(stack):
    exported = set().union(*(exported_names(metrics) for metrics in stack.metrics().values()))
    recorded = {rule["record"] for rule in shipped_rules("record")}
    rules = shipped_rules("alert") + shipped_rules("record")
    used = {name for expr in [*expressions(), *(rule["expr"] for rule in rules)] for name in _NAME.findall(expr)}

    assert used - exported - recorded == set()
    assert "riskcore_checks_total" in exported and "riskcore_control_strategies" in exported
