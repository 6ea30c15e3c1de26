"""The risk server as a process: the README client snippet, health, reflection, readiness, shutdown."""
import asyncio
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from riskcore_services.proto import risk_pb2
from riskcore_services.common.journal.sqlite import SqliteJournal
from riskcore_services.risk.records import RECORD_KIND, JournalRecord, encode

DEADLINE = 5.0  # seconds for every call

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
RISK_SERVICE = "riskcore.v1.RiskEngine"

# The client snippet from the issue and the README, verbatim; only the target is substituted.
SNIPPET = """\
channel = grpc.insecure_channel('localhost:50051')
risk_client = risk_pb2_grpc.RiskEngineStub(channel)
response = risk_client.CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", quantity=1000, side="BUY"))
"""
SNIPPET_IMPORTS = "import grpc\nfrom riskcore_services.proto import risk_pb2, risk_pb2_grpc\n"


def health_stub(server, **channel):
    return health_pb2_grpc.HealthStub(server.channel(**channel))


# ------------------------------------------------------------------ the README snippet

def test_client_snippet_against_a_freshly_started_server_is_accepted(spawn, tmp_path):
    # No --config: the shipped sample. AAPL's reference is 190, so 1,000 shares at market are
    # 190,000 notional: under default's 100,000-share and 5,000,000 order limits, equities'
    # 100,000,000 gross and 50,000,000 net, and the firm's 500,000,000 gross.
    child = spawn().wait_ready()
    program = SNIPPET_IMPORTS + SNIPPET.replace("localhost:50051", f"localhost:{child.port}") + (
        "import sys\nsys.stdout.write(response.SerializeToString().hex())\n")

    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)

    assert run.returncode == 0, run.stderr
    response = risk_pb2.CheckResponse.FromString(bytes.fromhex(run.stdout))
    assert (response.accepted, response.reason) == (True, "OK")
    assert response.utilisation == pytest.approx(190_000 / 5_000_000)
    exposure = child.stub().GetExposure(risk_pb2.ExposureRequest(), timeout=DEADLINE)
    assert all(row.open_orders == 0 for row in exposure.accounts)


def test_client_snippet_is_the_one_in_the_readme():
    readme = (pathlib.Path(__file__).parents[3] / "README.md").read_text()

    assert SNIPPET_IMPORTS + "\n" + SNIPPET in readme


# ------------------------------------------------------------------ health and reflection

def test_health_reports_serving_for_the_server_and_the_risk_engine_after_start(server):
    health = health_stub(server)

    for service in ("", RISK_SERVICE):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=DEADLINE)
        assert response.status == SERVING, service


def test_health_for_an_unknown_service_is_not_found(server):
    with pytest.raises(grpc.RpcError) as error:
        health_stub(server).Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_risk_engine_health_and_reflection_services(server):
    database = ProtoReflectionDescriptorDatabase(server.channel())

    services = set(database.get_services())

    assert {RISK_SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services


def test_reflection_describes_every_risk_engine_method_and_message(server):
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(server.channel()))

    service = pool.FindServiceByName(RISK_SERVICE)
    batch = pool.FindMessageTypeByName("riskcore.v1.OrderBatch")

    compiled = risk_pb2.DESCRIPTOR.services_by_name["RiskEngine"]
    assert {m.name for m in service.methods} == {m.name for m in compiled.methods}
    assert service.methods_by_name["SubmitStream"].client_streaming
    assert service.methods_by_name["SubmitStream"].server_streaming
    assert [f.name for f in batch.fields] == ["client_order_ids", "accounts", "symbols", "sides", "quantities",
                                              "prices"]


# ------------------------------------------------------------------ readiness while recovering

def write_journal(path, records: int) -> None:
    """A journal of ``records`` AAPL marks ending at 200.00, as a running server would have written it."""
    journal = SqliteJournal(str(path), "NORMAL")
    journal.start(asyncio.new_event_loop())
    now = time.time_ns() - 10**9
    for i in range(records):
        price = 200.0 if i == records - 1 else 190.0 + (i % 100) / 100
        journal.append(now + i, RECORD_KIND, encode("marks", JournalRecord.Marks(symbols=["AAPL"], prices=[price])))
    journal.close()


def test_server_replaying_its_journal_is_not_ready_until_the_state_is_back(build_server, tmp_path):
    write_journal(tmp_path / "state.db", 30_000)
    server = build_server(state_path=tmp_path / "state.db")
    starting = asyncio.run_coroutine_threadsafe(server.server.start(), server.loop)
    ready, answers, stub = set(), set(), None
    end = time.monotonic() + 30
    while not starting.done() and time.monotonic() < end:
        if server.server.http_port:
            ready.add(server.http("/ready")[0])
            stub = stub or server.stub()
            try:
                answer = stub.CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY,
                                                                     quantity=1000), timeout=DEADLINE)
                answers.add(f"OK {answer.utilisation:.4f}")
            except grpc.RpcError as error:
                answers.add(f"{error.code().name}: {error.details()}")
        time.sleep(0.005)
    starting.result(DEADLINE)
    server.started = True

    assert 503 in ready, ready
    # Calls during the replay are refused or wait; none is answered from a half-recovered engine,
    # whose AAPL reference would not yet be the last mark, 200.00 (1,000 x 200 of 5,000,000 = 0.04).
    assert {a for a in answers if a.startswith("OK")} <= {"OK 0.0400"}, answers
    assert all(a.startswith(("OK", "UNAVAILABLE")) for a in answers), answers
    assert server.http("/ready")[0] == 200
    assert health_stub(server).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE).status == SERVING
    assert server.server.recovery["replayed"] == 30_000
    check = server.stub().CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY,
                                                                 quantity=1000), timeout=DEADLINE)
    assert check.utilisation == pytest.approx(0.04)


# ------------------------------------------------------------------ graceful stop, in process

class HealthWatch:
    """Statuses from a Health.Watch stream, read on a thread."""

    def __init__(self, server):
        self.call = health_stub(server).Watch(health_pb2.HealthCheckRequest(service=RISK_SERVICE), timeout=30)
        self.statuses: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for response in self.call:
                self.statuses.put(response.status)
        except grpc.RpcError:
            pass

    def next(self):
        return self.statuses.get(timeout=DEADLINE)

    def close(self):
        self.call.cancel()
        self._thread.join(DEADLINE)


def test_graceful_stop_goes_not_ready_refuses_new_calls_and_finishes_in_flight_calls(server, watch_breaches):
    stub = server.stub()
    health = HealthWatch(server)
    assert health.next() == SERVING
    orders: queue.Queue = queue.Queue()
    stream = stub.SubmitStream(iter(orders.get, None), timeout=30)
    orders.put(risk_pb2.OrderRequest(client_order_id="before", symbol="AAPL", side=risk_pb2.BUY, quantity=1))
    assert next(stream).accepted
    watcher = watch_breaches(stub)

    stopping = server.stop_in_background(grace=10)
    try:
        assert health.next() == NOT_SERVING
        assert server.http("/ready")[0] == 503
        with pytest.raises(grpc.RpcError) as refused:
            server.stub().CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY, quantity=1),
                                        timeout=DEADLINE)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # The stream was in flight when the stop began: it is still served.
        orders.put(risk_pb2.OrderRequest(client_order_id="during", symbol="AAPL", side=risk_pb2.BUY, quantity=1))
        answer = next(stream)
        assert (answer.client_order_id, answer.accepted) == ("during", True)
    finally:
        orders.put(None)
        health.close()
        watcher.close()
    assert list(stream) == []
    assert stream.code() == grpc.StatusCode.OK
    stopping.result(DEADLINE)  # nothing left in flight: done well before the 10 s grace
    with pytest.raises(OSError):
        server.http("/ready", timeout=1)


def test_stop_twice_is_harmless(server):
    server.stop()
    server.run(server.server.stop(0))

    with pytest.raises(OSError):
        server.http("/health", timeout=1)


# ------------------------------------------------------------------ signals, in a child process

def test_sigint_stops_the_server_and_exits_zero(spawn):
    child = spawn().wait_ready()

    child.signal(signal.SIGINT)

    assert child.wait() == 0
    assert "risk engine stopped" in child.output()
