"""Structured logs: JSON lines on stdout, ISO UTC timestamps, request ids, admin changes with their actor."""
import contextvars
import datetime
import json
import signal
import types

import grpc
import pytest
import structlog

from riskcore_services.common.auth import token_digest
from riskcore_services.common.logging import bind_call, configure_logging, get_logger
from riskcore_services.proto import risk_pb2

DEADLINE = 5.0  # seconds for every call
ADMIN = (("authorization", "Bearer admin-token-1"),)
TRADER = (("authorization", "Bearer trader-token-1"),)
TOKENS = f"""
[[auth.tokens]]
name = "ops"
sha256 = "{token_digest("admin-token-1")}"
role = "admin"

[[auth.tokens]]
name = "alice"
sha256 = "{token_digest("trader-token-1")}"
role = "trader"
accounts = ["FIRM"]
"""


@pytest.fixture
def stdout_logging(capsys):
    """configure_logging writing into pytest's captured stdout; the suite's configuration is restored after."""
    saved = structlog.get_config()

    def configure(level: str) -> None:
        configure_logging(level, cache=False)

    yield configure, capsys
    structlog.configure(**saved)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------ configure_logging

def test_configure_logging_writes_one_json_object_per_line_with_an_iso_utc_timestamp(stdout_logging):
    configure, capsys = stdout_logging
    configure("info")

    get_logger("unit").info("hello", answer=42)

    [line] = json_lines(capsys.readouterr().out)
    assert (line["event"], line["answer"], line["level"], line["component"]) == ("hello", 42, "info", "unit")
    stamp = datetime.datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()) < 60


def test_configure_logging_drops_lines_below_the_level(stdout_logging):
    configure, capsys = stdout_logging
    configure("warning")

    log = get_logger("unit")
    log.info("quiet")
    log.warning("loud")

    assert [line["event"] for line in json_lines(capsys.readouterr().out)] == ["loud"]


def test_lines_logged_inside_a_call_carry_its_request_id_and_method(stdout_logging):
    configure, capsys = stdout_logging
    configure("info")

    def call():  # grpc runs each call in a task of its own, with a copy of the context
        bind_call(types.SimpleNamespace(request_id="r-1", method="CheckPosition"))
        get_logger("unit").info("inside")

    contextvars.copy_context().run(call)
    get_logger("unit").info("outside")

    lines = json_lines(capsys.readouterr().out)
    assert [(line["event"], line.get("request_id"), line.get("method")) for line in lines] == [
        ("inside", "r-1", "CheckPosition"), ("outside", None, None)]


def test_configure_logging_refuses_an_unknown_level():
    with pytest.raises(ValueError, match="loud"):
        configure_logging("loud", cache=False)


# ------------------------------------------------------------------ a served process

@pytest.fixture(scope="module")
def served_output(spawn_for_module, config_writer) -> list[dict]:
    """The stdout of a child server (tokens on) that took an admin change, a check and a refused call."""
    spawn, directory = spawn_for_module
    child = spawn(config_writer(directory, TOKENS, settings={"requests": "all"})).wait_ready()
    stub = child.stub()
    stub.SetLimits(risk_pb2.SetLimitsRequest(account="momentum", limits=risk_pb2.Limits(max_order_quantity=7)),
                   timeout=DEADLINE, metadata=ADMIN + (("x-request-id", "req-limits"),))
    stub.SetTradingState(risk_pb2.TradingStateRequest(symbol="SPY", state=risk_pb2.HALTED), timeout=DEADLINE,
                         metadata=ADMIN + (("x-request-id", "req-halt"),))
    stub.CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY, quantity=1), timeout=DEADLINE,
                       metadata=TRADER + (("x-request-id", "req-check"),))
    with pytest.raises(grpc.RpcError):
        stub.UpdatePrices(risk_pb2.PriceUpdates(symbols=["AAPL"], prices=[1.0]), timeout=DEADLINE,
                          metadata=TRADER + (("x-request-id", "req-denied"),))
    child.signal(signal.SIGTERM)
    assert child.wait() == 0
    return [json.loads(line) for line in child.output().splitlines() if line.strip()]


def test_served_process_writes_only_json_lines_with_utc_timestamps(served_output):
    assert len(served_output) > 5
    for line in served_output:
        assert {"timestamp", "level", "event"} <= set(line), line
        assert datetime.datetime.fromisoformat(line["timestamp"]).utcoffset() == datetime.timedelta(0)


def test_served_process_logs_admin_changes_with_the_token_name_and_request_id(served_output):
    limits = [line for line in served_output if line["event"] == "limits changed"]
    states = [line for line in served_output if line["event"] == "trading state changed"]

    assert [(line["account"], line["actor"], line["request_id"]) for line in limits] == [
        ("momentum", "ops", "req-limits")]
    assert limits[0]["limits"]["max_order_quantity"] == 7
    assert [(line["target"], line["state"], line["actor"], line["request_id"]) for line in states] == [
        ("SPY", "HALTED", "ops", "req-halt")]


def test_served_process_logs_one_line_per_call_with_method_code_and_request_id(served_output):
    calls = {line["request_id"]: line for line in served_output if line["event"] == "call"}

    assert (calls["req-check"]["method"], calls["req-check"]["code"]) == ("CheckPosition", "OK")
    assert (calls["req-denied"]["method"], calls["req-denied"]["code"]) == ("UpdatePrices", "PERMISSION_DENIED")
    assert "alice" in calls["req-denied"]["error"]
    assert sum(1 for line in served_output if line.get("request_id") == "req-check") == 1


def test_served_process_logs_its_start_and_graceful_stop(served_output):
    events = [line["event"] for line in served_output]

    assert "risk engine started" in events
    assert events.index("signal received") < events.index("risk engine stopping") < events.index(
        "risk engine stopped")
