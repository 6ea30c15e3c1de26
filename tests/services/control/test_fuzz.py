"""Fuzzing the control plane's gRPC surface: a real ``riskcore serve control`` on a real risk engine.

Every unary method gets generated requests (each field unset or any value,
the registered names among the strings), mutated realistic ones, and random
or damaged bytes. Every answer is OK or a defined refusal, never UNKNOWN or
INTERNAL, and the control plane serves on afterwards. CI runs the examples
``derandomize``d; RISKCORE_EXAMPLE_SCALE=10 draws new ones.
"""
from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fuzzing import FUZZ, answer_code, any_message, mutated, raw_payloads, scaled, strings_with
from riskcore_services.proto import control_pb2 as C
from riskcore_services.up import STRATEGY_ACCOUNT, STRATEGY_ENTRY

from .conftest import control_toml

SERVICE = C.DESCRIPTOR.services_by_name["ControlPlane"]
UNARY = [m for m in SERVICE.methods if not m.client_streaming and not m.server_streaming]
NAMES = ["fuzz-a", "fuzz-b"]
strings = strings_with([*NAMES, STRATEGY_ENTRY, STRATEGY_ACCOUNT, "FIRM", '{"symbol": "AAPL"}', "{}"])
DEADLINE = 30.0   # Stop answers once the strategy is STOPPED (its grace is 1 s here)

REALISTIC = {
    "RegisterStrategy": st.builds(C.RegisterStrategyRequest, name=st.sampled_from(NAMES),
                                  entry=st.just(STRATEGY_ENTRY), account=st.just(STRATEGY_ACCOUNT),
                                  config_json=st.sampled_from(['{"symbol": "AAPL", "interval": 1.0}', ""])),
    "ListStrategies": st.just(C.ListStrategiesRequest()),
    "KillSwitch": st.builds(C.KillSwitchRequest, reason=strings),
}


def realistic(method) -> st.SearchStrategy:
    return REALISTIC.get(method.name, st.builds(C.StrategyRequest, name=st.sampled_from(NAMES)))


@pytest.fixture(scope="module")
def control(spawn_for_module):
    spawn, directory = spawn_for_module
    risk = spawn().wait_ready()
    config = directory / "control.toml"
    config.write_text(control_toml(risk.port))
    return spawn(config, command=("-m", "riskcore_services.control")).wait_ready()


@pytest.mark.parametrize("method", UNARY, ids=lambda m: m.name)
@FUZZ
@given(data=st.data())
def test_every_unary_rpc_answers_generated_requests_with_a_defined_status(control, method, data):
    request = data.draw(st.one_of(realistic(method), mutated(realistic(method), strings),
                                  any_message(method.input_type, strings)), label="request")
    code = answer_code(control.channel(), f"/{SERVICE.full_name}/{method.name}", request.SerializeToString(),
                       DEADLINE)
    event(code.name)


@pytest.mark.parametrize("method", UNARY, ids=lambda m: m.name)
@settings(FUZZ, max_examples=scaled(40))
@given(data=st.data())
def test_every_unary_rpc_answers_random_and_damaged_bytes_with_a_defined_status(control, method, data):
    payload = data.draw(raw_payloads(realistic(method)), label="payload")
    event(answer_code(control.channel(), f"/{SERVICE.full_name}/{method.name}", payload, DEADLINE).name)


def test_the_control_plane_still_serves_after_the_fuzzing(control):
    answer_code(control.channel(), f"/{SERVICE.full_name}/ListStrategies", b"", DEADLINE)
    assert control.http("/ready")[0] == 200
