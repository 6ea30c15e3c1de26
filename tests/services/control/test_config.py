"""The control plane's configuration: one line naming the key for each kind of mistake."""
from __future__ import annotations

import pathlib

import pytest

from riskcore_services.control.config import ConfigError, load_config, parse_config


def parse(control: dict) -> object:
    return parse_config({"control": control}, pathlib.Path("."))


def test_defaults_are_the_control_planes_ports_and_a_required_risk_target():
    config = parse({})
    assert (config.server.port, config.server.http_port, config.risk_target) == (50052, 8082, "127.0.0.1:50051")


@pytest.mark.parametrize("control,message", [
    ({"heartbat_timeout": 1.0}, "control: unknown key 'heartbat_timeout'"),
    ({"pause_mode": "STOP"}, "control.pause_mode: expected one of REDUCING, HALTED, got 'STOP'"),
    ({"risk_target": ""}, "control.risk_target"),
    ({"heartbeat_interval": 2.0, "heartbeat_timeout": 1.0}, "heartbeat_interval: must be less than"),
    ({"backoff_initial": 10.0, "backoff_max": 1.0}, "backoff_max: must be at least"),
    ({"breaker_failures": 0}, "control.breaker_failures: expected int >= 1"),
    ({"strategies": [{"name": "a", "entry": "nocolon", "account": "x"}]}, "control.strategies[0].entry"),
    ({"strategies": [{"name": "a", "entry": "m:C", "account": "x"}] * 2}, "names must be unique"),
    ({"account_tokens": {"x": 1}}, "control.account_tokens[...]: expected str"),
    ({"account_tokens": {"y": "y.token"}, "strategies": [{"name": "a", "entry": "m:C", "account": "x"}]},
     "control.strategies: 'a' trades account 'x', which has no token in control.account_tokens"),
])
def test_a_mistake_is_one_line_naming_the_key(control, message):
    with pytest.raises(ConfigError) as error:
        parse(control)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_the_shipped_sample_is_valid():
    assert load_config(None).strategies[0].entry == "riskcore_services.control.example:PositionWatcher"


def test_account_tokens_are_files_relative_to_the_configuration():
    config = parse_config({"control": {"account_tokens": {"momentum": "tokens/momentum.token"}}},
                          pathlib.Path("/etc/riskcore"))
    assert config.account_tokens == {"momentum": pathlib.Path("/etc/riskcore/tokens/momentum.token")}


def test_a_jetstream_journal_is_refused_the_processes_are_on_this_host():
    with pytest.raises(ConfigError, match="state.backend: the control plane journals in SQLite only"):
        parse_config({"state": {"backend": "jetstream"}}, pathlib.Path("."))
