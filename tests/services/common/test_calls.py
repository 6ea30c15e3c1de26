"""What every call gets around its handler: status mapping, request ids, one log line, metrics."""
import dataclasses
import datetime
import io
import json
import threading
import time

import grpc
import pytest
import structlog

from riskcore_services.common import logging as logs
from riskcore_services.common.logging import LogWriter, configure_logging, flush_logs, merge_call_context
from riskcore_services.proto import risk_pb2
from riskcore_services.risk.config import load_config

DEADLINE = 5.0  # seconds for every call
CHECK = risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY, quantity=10)


def logged(logs: list, event: str, count: int) -> list:
    """The captured lines named ``event``, once there are ``count`` of them.

    A call's own line is rendered by the log writer's thread after its answer is sent, so the client can
    be ahead of it.
    """
    end = time.monotonic() + DEADLINE
    while len(lines := [e for e in logs if e["event"] == event]) < count and time.monotonic() < end:
        time.sleep(0.01)
    return lines


@pytest.fixture
def server(serve):
    """A server that logs every call (``[logging] requests = "all"``)."""
    return serve(dataclasses.replace(load_config(None), log_requests="all"))


class ExplodingEngine:
    """The server's engine, except that ``check`` fails the way a bug would."""

    def __init__(self, engine):
        self._engine = engine

    def check(self, *args):
        raise RuntimeError("kaboom: a bug in the check path")

    def __getattr__(self, name):
        return getattr(self._engine, name)


@pytest.fixture
def broken_check(server):
    service = server.server.service
    original = service.engine

    def swap(engine):
        service.engine = engine

    server.run_on_loop(swap, ExplodingEngine(original))
    yield server
    server.run_on_loop(swap, original)


def test_unexpected_exception_is_internal_without_leaking_its_message(broken_check):
    with pytest.raises(grpc.RpcError) as error:
        broken_check.stub().CheckPosition(CHECK, timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.INTERNAL
    assert "kaboom" not in error.value.details()


def test_unexpected_exception_is_logged_as_an_error_with_its_traceback(broken_check):
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(grpc.RpcError):
            broken_check.stub().CheckPosition(CHECK, timeout=DEADLINE)
        errors = logged(logs, "call failed", 1)

    assert [e["log_level"] for e in errors] == ["error"]
    assert errors[0]["code"] == "INTERNAL"
    assert "Traceback" in errors[0]["exception"] and "RuntimeError: kaboom" in errors[0]["exception"]


def test_server_keeps_serving_after_an_internal_error(broken_check):
    stub = broken_check.stub()
    with pytest.raises(grpc.RpcError):
        stub.CheckPosition(CHECK, timeout=DEADLINE)

    assert stub.SubmitOrder(risk_pb2.OrderRequest(client_order_id="o-1", symbol="AAPL", side=risk_pb2.BUY,
                                                  quantity=10), timeout=DEADLINE).accepted
    metrics = broken_check.metrics_when(
        lambda m: m.value("riskcore_grpc_requests_total", method="CheckPosition", code="INTERNAL") > 0)
    assert metrics.value("riskcore_grpc_requests_total", method="CheckPosition", code="INTERNAL") == 1


def test_each_call_logs_one_line_with_the_request_id_it_was_given(stub):
    with structlog.testing.capture_logs(processors=[merge_call_context]) as logs:
        stub.CheckPosition(CHECK, timeout=DEADLINE, metadata=(("x-request-id", "req-check-1"),))
        with pytest.raises(grpc.RpcError):
            stub.CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY), timeout=DEADLINE,
                               metadata=(("x-request-id", "req-check-2"),))
        calls = logged(logs, "call", 2)

    assert [(e["request_id"], e["method"], e["code"]) for e in calls] == [
        ("req-check-1", "CheckPosition", "OK"), ("req-check-2", "CheckPosition", "INVALID_ARGUMENT")]
    assert calls[0]["duration_us"] > 0
    assert "quantity" in calls[1]["error"]


def test_every_line_logged_during_a_call_carries_its_request_id(stub):
    with structlog.testing.capture_logs(processors=[merge_call_context]) as logs:
        stub.SetTradingState(risk_pb2.TradingStateRequest(account="momentum", state=risk_pb2.HALTED),
                             timeout=DEADLINE, metadata=(("x-request-id", "req-halt"),))
        logged(logs, "call", 1)

    assert [(e["event"], e["request_id"]) for e in logs] == [("trading state changed", "req-halt"),
                                                             ("call", "req-halt")]


def test_a_call_without_a_request_id_gets_a_fresh_one(stub):
    with structlog.testing.capture_logs(processors=[merge_call_context]) as logs:
        for _ in range(2):
            stub.CheckPosition(CHECK, timeout=DEADLINE)
        ids = [e["request_id"] for e in logged(logs, "call", 2)]

    assert len(ids) == 2 and len(set(ids)) == 2 and all(ids)


def test_request_ids_do_not_leak_into_lines_logged_outside_calls(server, stub):
    with structlog.testing.capture_logs() as logs:
        stub.CheckPosition(CHECK, timeout=DEADLINE, metadata=(("x-request-id", "req-before-stop"),))
        logged(logs, "call", 1)

    with structlog.testing.capture_logs(processors=[merge_call_context]) as logs:
        server.stop()

    assert logs and all("request_id" not in e for e in logs), logs


@pytest.mark.parametrize("level, logged_ids", [
    ("all", {"req-check", "req-submit", "req-bad"}),
    ("changes", {"req-submit", "req-bad"}),     # the shipped default
    ("errors", {"req-bad"}),
])
def test_requests_setting_chooses_which_successful_calls_are_logged(serve, level, logged_ids):
    stub = serve(dataclasses.replace(load_config(None), log_requests=level)).stub()
    with structlog.testing.capture_logs(processors=[merge_call_context]) as logs:
        stub.CheckPosition(CHECK, timeout=DEADLINE, metadata=(("x-request-id", "req-check"),))
        stub.SubmitOrder(risk_pb2.OrderRequest(client_order_id="o-1", symbol="AAPL", side=risk_pb2.BUY, quantity=10),
                         timeout=DEADLINE, metadata=(("x-request-id", "req-submit"),))
        with pytest.raises(grpc.RpcError):
            stub.CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY), timeout=DEADLINE,
                               metadata=(("x-request-id", "req-bad"),))
        calls = logged(logs, "call", len(logged_ids))   # lines come in call order

    assert {e["request_id"] for e in calls} == logged_ids


# ------------------------------------------------------------------ access lines off the event loop

@pytest.fixture
def written_lines(monkeypatch):
    """Logging configured into a BytesIO (the suite's configuration is put back after); ``read(count, where)``
    returns the JSON lines written for which ``where`` holds (access lines by default), once there are
    ``count`` of them."""
    saved = structlog.get_config()
    monkeypatch.setattr(logs, "_pipeline", logs._pipeline)
    file = io.BytesIO()
    configure_logging("info", cache=False, file=file)

    def read(count: int = 1, where=lambda line: line["event"] == "call") -> list[dict]:
        # A failed call's line is queued once its status is sent, so the client can be ahead of it.
        end = time.monotonic() + DEADLINE
        while True:
            assert flush_logs(DEADLINE)
            lines = [json.loads(line) for line in file.getvalue().decode().splitlines()]
            found = [line for line in lines if where(line)]
            if len(found) >= count or time.monotonic() > end:
                return found
            time.sleep(0.01)

    yield read
    flush_logs(DEADLINE)
    structlog.configure(**saved)


def test_access_lines_are_rendered_on_the_log_writers_thread_not_the_event_loop(stub):
    def thread(logger, method_name, event_dict):
        event_dict["thread"] = threading.current_thread().name
        return event_dict

    with structlog.testing.capture_logs(processors=[thread]) as logs_:
        stub.CheckPosition(CHECK, timeout=DEADLINE, metadata=(("x-request-id", "req-thread"),))
        [line] = logged(logs_, "call", 1)

    assert line["request_id"] == "req-thread"
    assert line["thread"] == "riskcore-log-writer"


def test_a_written_access_line_has_the_calls_id_method_token_code_duration_and_end_time(server, written_lines):
    before = datetime.datetime.now(datetime.timezone.utc)
    server.stub().CheckPosition(CHECK, timeout=DEADLINE, metadata=(("x-request-id", "req-fields"),))
    answered = datetime.datetime.now(datetime.timezone.utc)

    [line] = written_lines()
    assert {key: line[key] for key in ("request_id", "method", "token", "code", "error", "level", "component")} == {
        "request_id": "req-fields", "method": "CheckPosition", "token": "anonymous", "code": "OK", "error": None,
        "level": "info", "component": "grpc"}
    assert 0 < line["duration_us"] < DEADLINE * 1e6
    # Stamped when the call ended, not when the writer got to it.
    assert before <= datetime.datetime.fromisoformat(line["timestamp"]) <= answered


def test_a_failing_calls_written_line_is_an_error_with_its_traceback(broken_check, written_lines):
    with pytest.raises(grpc.RpcError):
        broken_check.stub().CheckPosition(CHECK, timeout=DEADLINE, metadata=(("x-request-id", "req-boom"),))

    [line] = written_lines(where=lambda line: line.get("request_id") == "req-boom")
    assert (line["event"], line["level"], line["code"], line["method"]) == (
        "call failed", "error", "INTERNAL", "CheckPosition")
    assert "Traceback" in line["exception"] and "RuntimeError: kaboom" in line["exception"]


def test_calls_go_on_while_the_log_queue_is_full_and_each_dropped_line_is_counted(monkeypatch, serve):
    """The writer thread is held inside a line, so the queue only fills: every call is still answered,
    the lines beyond the queue's capacity are dropped, counted and exported; the rest are written."""
    writer, release, taken = LogWriter(capacity=5), threading.Event(), threading.Event()

    class Held:
        def log_fields(self):
            taken.set()
            assert release.wait(DEADLINE)
            return "info", "held", {}

    monkeypatch.setattr(logs, "_writer", writer)     # the server's calls and its metrics use this one
    server = serve(dataclasses.replace(load_config(None), log_requests="all"))
    stub = server.stub()
    try:
        assert writer.submit(Held()) and taken.wait(DEADLINE)
        with structlog.testing.capture_logs() as captured:
            answers = [stub.CheckPosition(CHECK, timeout=DEADLINE, metadata=(("x-request-id", f"req-{n}"),))
                       for n in range(12)]
            assert all(answer.accepted for answer in answers)
            assert writer.dropped == 7
            metrics = server.metrics()
            release.set()
            assert writer.flush(DEADLINE)
    finally:
        release.set()
        writer.close()

    assert metrics.value("riskcore_log_lines_dropped_total") == 7
    assert metrics.value("riskcore_grpc_requests_total", method="CheckPosition", code="OK") == 12
    assert [e["request_id"] for e in captured if e["event"] == "call"] == [f"req-{n}" for n in range(5)]
