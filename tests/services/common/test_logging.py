"""Structured logs: JSON lines on stdout, ISO UTC timestamps, request ids, admin changes with their actor."""
import contextvars
import datetime
import io
import json
import signal
import subprocess
import sys
import textwrap
import threading
import types

import grpc
import pytest
import structlog

from riskcore_services.common import logging as logs
from riskcore_services.common.auth import token_digest
from riskcore_services.common.logging import (LogWriter, bind_call, configure_logging, flush_logs, get_logger,
                                              iso_utc)
from riskcore_services.proto import risk_pb2

DEADLINE = 5.0  # seconds for every call, flush and wait
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
def restore_logging(monkeypatch):
    """Put the suite's logging configuration back after the test (structlog's and the writer's view of it)."""
    saved = structlog.get_config()
    monkeypatch.setattr(logs, "_pipeline", logs._pipeline)
    yield
    flush_logs(DEADLINE)
    structlog.configure(**saved)


@pytest.fixture
def stdout_logging(capsys, restore_logging):
    """configure_logging writing into pytest's captured stdout; ``read()`` flushes and returns the lines."""
    def configure(level: str) -> None:
        configure_logging(level, cache=False)

    def read() -> list[dict]:
        assert flush_logs(DEADLINE)
        return json_lines(capsys.readouterr().out)

    return configure, read


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Deferred:
    """A line queued unrendered, as a call's access line is; records the thread that renders it."""

    def __init__(self, level: str = "info", event: str = "deferred", **fields):
        self.level, self.event, self.fields = level, event, fields
        self.rendered_on: str | None = None

    def log_fields(self):
        self.rendered_on = threading.current_thread().name
        return self.level, self.event, dict(self.fields)


class Blocker(Deferred):
    """A deferred line that holds the writer thread inside it until released."""

    def __init__(self):
        super().__init__(event="blocker")
        self.entered, self.release = threading.Event(), threading.Event()

    def log_fields(self):
        self.entered.set()
        assert self.release.wait(DEADLINE)
        return super().log_fields()


@pytest.fixture
def blocked_writer():
    """``blocked_writer(capacity)``: a LogWriter whose thread is held inside a line (its queue then only
    fills), writing to a BytesIO; returns (writer, blocker, file). Closed afterwards."""
    made = []

    def make(capacity: int):
        log_writer, blocker, file = LogWriter(capacity), Blocker(), io.BytesIO()
        made.append((log_writer, blocker))
        assert log_writer.submit(blocker)
        assert blocker.entered.wait(DEADLINE)       # the thread has taken it: the queue is empty
        return log_writer, blocker, file

    yield make
    for log_writer, blocker in made:
        blocker.release.set()
        log_writer.close()


# ------------------------------------------------------------------ configure_logging

def test_configure_logging_writes_one_json_object_per_line_with_an_iso_utc_timestamp(stdout_logging):
    configure, read = stdout_logging
    configure("info")

    get_logger("unit").info("hello", answer=42)

    [line] = read()
    assert (line["event"], line["answer"], line["level"], line["component"]) == ("hello", 42, "info", "unit")
    stamp = datetime.datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()) < 60


def test_configure_logging_drops_lines_below_the_level(stdout_logging):
    configure, read = stdout_logging
    configure("warning")

    log = get_logger("unit")
    log.info("quiet")
    log.warning("loud")
    logs.writer().submit(Deferred(event="deferred quiet"))
    logs.writer().submit(Deferred(level="error", event="deferred loud"))

    assert [line["event"] for line in read()] == ["loud", "deferred loud"]


def test_lines_logged_inside_a_call_carry_its_request_id_and_method(stdout_logging):
    configure, read = stdout_logging
    configure("info")

    def call():  # grpc runs each call in a task of its own, with a copy of the context
        bind_call(types.SimpleNamespace(request_id="r-1", method="CheckPosition"))
        get_logger("unit").info("inside")

    contextvars.copy_context().run(call)
    get_logger("unit").info("outside")

    assert [(line["event"], line.get("request_id"), line.get("method")) for line in read()] == [
        ("inside", "r-1", "CheckPosition"), ("outside", None, None)]


def test_configure_logging_refuses_an_unknown_level():
    with pytest.raises(ValueError, match="loud"):
        configure_logging("loud", cache=False)


def test_iso_utc_stamps_as_structlog_does():
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    for ns in (0, 999, 1_000, 1_765_000_000_000_000_000, 1_765_000_000_123_456_789, 1_765_000_001_000_000_999):
        expected = (epoch + datetime.timedelta(microseconds=ns // 1000)).isoformat().replace("+00:00", "Z")
        assert iso_utc(ns) == expected


# ------------------------------------------------------------------ the writer thread

def test_a_deferred_line_is_rendered_and_written_on_the_writer_thread(stdout_logging):
    configure, read = stdout_logging
    configure("info")
    deferred = Deferred(component="grpc", request_id="r-7", code="OK", timestamp="2026-01-02T03:04:05.000006Z")

    assert logs.writer().submit(deferred)

    assert read() == [{"component": "grpc", "request_id": "r-7", "code": "OK", "event": "deferred",
                       "level": "info", "timestamp": "2026-01-02T03:04:05.000006Z"}]
    assert deferred.rendered_on == "riskcore-log-writer" != threading.current_thread().name


def test_a_deferred_line_renders_the_same_directly_as_through_structlog(restore_logging):
    """The writer renders deferred lines itself while configure_logging's pipeline is the active one
    and through structlog otherwise; both give the same line, traceback included."""
    try:
        raise RuntimeError("kaboom")
    except RuntimeError as error:
        failure = error
    lines = [Deferred("error", "call failed", component="grpc", code="INTERNAL", duration_us=12.5,
                      timestamp="2026-01-02T03:04:05.000006Z", exc_info=failure),
             Deferred("info", "call", component="grpc", code="OK", error=None, token="alice",
                      timestamp="2026-01-02T03:04:05Z")]
    direct, through_structlog = io.BytesIO(), io.BytesIO()

    configure_logging("info", cache=False, file=direct)
    for line in lines:
        logs.writer().submit(line)
    assert flush_logs(DEADLINE)
    structlog.configure(logger_factory=structlog.BytesLoggerFactory(file=through_structlog))
    for line in lines:
        logs.writer().submit(line)
    assert flush_logs(DEADLINE)

    first, second = json_lines(direct.getvalue().decode()), json_lines(through_structlog.getvalue().decode())
    assert first == second and len(first) == 2
    assert "Traceback" in first[0]["exception"] and "RuntimeError: kaboom" in first[0]["exception"]


def test_a_full_queue_drops_lines_and_counts_them_without_blocking(blocked_writer, restore_logging):
    writer, blocker, file = blocked_writer(capacity=3)
    configure_logging("info", cache=False, file=file)

    queued = [writer.submit(Deferred(n=n, timestamp="2026-01-02T03:04:05Z")) for n in range(5)]

    assert queued == [True, True, True, False, False]
    assert writer.dropped == 2
    blocker.release.set()
    assert writer.flush(DEADLINE)
    assert [line.get("n") for line in json_lines(file.getvalue().decode())] == [None, 0, 1, 2]   # blocker first


def test_lines_a_file_refuses_are_counted_as_dropped(restore_logging):
    class Refusing(io.BytesIO):
        def write(self, data):
            raise OSError("disk full")

    configure_logging("info", cache=False, file=Refusing())
    writer = LogWriter()
    try:
        for n in range(3):
            writer.submit(Deferred(n=n))
        assert writer.flush(DEADLINE)
        assert writer.dropped == 3
    finally:
        writer.close()


def test_a_closed_writer_writes_lines_on_the_callers_thread(restore_logging):
    file = io.BytesIO()
    configure_logging("info", cache=False, file=file)
    writer, first, second = LogWriter(), Deferred(n=1), Deferred(n=2)
    writer.submit(first)
    assert writer.close(DEADLINE)

    writer.submit(second)

    assert [line["n"] for line in json_lines(file.getvalue().decode())] == [1, 2]
    assert (first.rendered_on, second.rendered_on) == ("riskcore-log-writer", threading.current_thread().name)


def test_lines_still_queued_when_the_process_exits_are_written(tmp_path):
    script = textwrap.dedent("""
        from riskcore_services.common.logging import configure_logging, get_logger, writer

        class Deferred:
            def __init__(self, n):
                self.n = n

            def log_fields(self):
                return "info", "deferred", {"n": self.n, "timestamp": "2026-01-02T03:04:05Z"}

        configure_logging("info")
        for n in range(3000):
            writer().submit(Deferred(n))
        get_logger("child").info("last line")
        # and exit at once: no flush but the writer's own at exit
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60, cwd=tmp_path)

    assert done.returncode == 0, done.stderr.decode()
    lines = json_lines(done.stdout.decode())
    assert [line["n"] for line in lines if line["event"] == "deferred"] == list(range(3000))
    assert [line["event"] for line in lines].count("last line") == 1


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

    assert (calls["req-check"]["method"], calls["req-check"]["code"], calls["req-check"]["token"]) == (
        "CheckPosition", "OK", "alice")
    assert calls["req-check"]["duration_us"] > 0 and calls["req-check"]["error"] is None
    assert (calls["req-limits"]["method"], calls["req-limits"]["code"], calls["req-limits"]["token"]) == (
        "SetLimits", "OK", "ops")
    assert (calls["req-denied"]["method"], calls["req-denied"]["code"]) == ("UpdatePrices", "PERMISSION_DENIED")
    assert "alice" in calls["req-denied"]["error"]
    assert sum(1 for line in served_output if line.get("request_id") == "req-check") == 1


def test_served_process_logs_its_start_and_graceful_stop(served_output):
    events = [line["event"] for line in served_output]

    assert "risk engine started" in events
    assert events.index("signal received") < events.index("risk engine stopping") < events.index(
        "risk engine stopped")
