"""The configuration file against a recovered journal: every difference is logged at start, and
``--apply-config`` journals the file's limits and states (issue 11, item 12)."""
from __future__ import annotations

import structlog

from riskcore_services.proto import risk_pb2
from riskcore_services.risk.config import load_config
from riskcore_services.risk.server import RiskServer

from conftest import DEADLINE, SAMPLE_TOML, InProcessServer, for_tests

CHANGED = {
    # the file after the first start: momentum's limits, a position limit, a state, an allow-list, an instrument
    "max_order_quantity = 50_000": "max_order_quantity = 20_000",
    '{ symbol = "AAPL", max_long = 50_000, max_short = 50_000 }': '{ symbol = "AAPL", max_long = 1_000 }',
    'allowed_symbols = ["AAPL", "MSFT", "SPY"]': 'allowed_symbols = ["AAPL", "MSFT"]\nstate = "HALTED"',
    'symbol = "SPY"\ntick_size = 0.01': 'symbol = "SPY"\ntick_size = 0.05',
}


class ApplyingServer(InProcessServer):
    """An in-process server started as ``riskcore serve risk --apply-config`` would start it."""

    async def _build(self, engine) -> RiskServer:
        return RiskServer(self.config, engine, apply_config=True)


def configs(tmp_path):
    original, changed = tmp_path / "original.toml", tmp_path / "changed.toml"
    original.write_text(SAMPLE_TOML)
    text = SAMPLE_TOML
    for old, new in CHANGED.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    changed.write_text(text)
    journal = tmp_path / "journal.db"
    return for_tests(load_config(original), state_path=journal), for_tests(load_config(changed), state_path=journal)


def run(server_class, config, calls=()):
    """Start a server on ``config``, make ``calls(stub)``, stop it; return (logs, results)."""
    server = server_class(config)
    try:
        with structlog.testing.capture_logs() as logs:
            server.start()
        results = calls(server.stub()) if calls else None
    finally:
        server.close()
    return logs, results


def limits(stub):
    momentum = stub.GetLimits(risk_pb2.LimitsRequest(account="momentum"), timeout=DEADLINE)
    exposure = stub.GetExposure(risk_pb2.ExposureRequest(), timeout=DEADLINE)
    states = {row.account: row.state for row in exposure.accounts}
    return (momentum.limits.max_order_quantity, [(p.symbol, p.max_long, p.HasField("max_short"))
                                                  for p in momentum.limits.position_limits], states["momentum"])


def drift(logs) -> set:
    return {(e["what"], e["target"]) for e in logs if e["event"] == "configuration file differs from the recovered state"}


def test_a_restart_on_a_changed_file_logs_each_difference_as_a_warning_and_keeps_the_journals_state(tmp_path):
    original, changed = configs(tmp_path)
    first_logs, before = run(InProcessServer, original, limits)

    logs, after = run(InProcessServer, changed, limits)

    assert drift(first_logs) == set()
    assert drift(logs) == {("limits", "momentum"), ("position_limit", "momentum/AAPL"), ("trading_state", "momentum"),
                           ("allowed_symbols", "momentum"), ("instrument", "SPY")}
    warnings = [e for e in logs if e["event"] == "configuration file differs from the recovered state"]
    assert all(e["log_level"] == "warning" for e in warnings)
    limits_line = next(e for e in warnings if e["what"] == "limits")
    assert (limits_line["file"], limits_line["state"]) == ({"max_order_quantity": 20_000},
                                                           {"max_order_quantity": 50_000})
    assert after == before == (50_000, [("AAPL", 50_000, True)], risk_pb2.ACTIVE)


def test_apply_config_journals_the_files_limits_and_states_which_then_survive_a_plain_restart(tmp_path):
    original, changed = configs(tmp_path)
    run(InProcessServer, original)

    applied_logs, applied = run(ApplyingServer, changed, limits)
    logs, after = run(InProcessServer, changed, limits)

    assert applied == after == (20_000, [("AAPL", 1_000, False)], risk_pb2.HALTED)
    changes = [e for e in applied_logs if e["event"] in ("limits changed", "trading state changed")]
    assert {e["actor"] for e in changes} == {"configuration file"} and len(changes) == 2
    [summary] = [e for e in applied_logs if e["event"] == "configuration file applied"]
    assert sorted(summary["not_applied"]) == ["allowed_symbols momentum", "instrument SPY"]
    # What could be applied no longer differs; the rest still does, and is still said at every start.
    assert drift(logs) == {("allowed_symbols", "momentum"), ("instrument", "SPY")}
