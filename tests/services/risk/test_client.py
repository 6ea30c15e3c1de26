"""RiskClient against real servers that stop, hang and come back on the same port.

The client must retry idempotent calls on UNAVAILABLE, fail closed (an order
is never approved by a client that could not reach the engine), and open its
circuit breaker after repeated outages so that calls then fail fast.
"""
import queue
import socket
import threading
import time

import grpc
import pytest

from riskcore_services.proto import risk_pb2
from riskcore_services.risk.client import ENGINE_UNAVAILABLE, UNAVAILABLE_CODE, EngineUnavailable, RiskClient

DEADLINE = 5.0  # seconds for every raw call


@pytest.fixture
def clients():
    """``clients(target, **options)``: RiskClients closed afterwards."""
    made = []

    def make(target: str, **options) -> RiskClient:
        client = RiskClient(target, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


class BlackHole:
    """A listener that completes TCP handshakes and never answers: a hung engine."""

    def __init__(self, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)

    def close(self):
        self.sock.close()


@pytest.fixture
def black_holes():
    holes = []

    def open_(port: int) -> BlackHole:
        hole = BlackHole(port)
        holes.append(hole)
        return hole

    yield open_
    for hole in holes:
        hole.close()


def down_server(serve):
    """A server that ran on a port and was stopped: its address now refuses connections."""
    server = serve()
    server.stop()
    return server


# ------------------------------------------------------------------ happy path

def test_client_calls_every_kind_of_rpc(server, clients):
    client = clients(server.target)

    assert client.check_position("AAPL", 1000, "BUY").accepted
    assert client.submit_order("c-1", "AAPL", 1000, "BUY", price=190.0).accepted
    assert client.modify_order("c-1", 500).accepted
    assert client.report_fill("c-1", "x-1", 100, 190.0) is True
    assert client.report_fill("c-1", "x-1", 100, 190.0) is False
    assert client.request_cancel("c-1").accepted
    assert client.report_order_event("c-1", "CANCELLED") is True
    batch = risk_pb2.OrderBatch(client_order_ids=["b-1"], accounts=[""], symbols=["MSFT"], sides=[risk_pb2.SELL],
                                quantities=[5], prices=[0.0])
    assert client.submit_orders(batch).accepted == 1
    assert client.update_prices(["AAPL"], [191.0]) == 1
    assert [(p.symbol, p.quantity) for p in client.get_positions("default")] == [("AAPL", 100)]
    assert {row.account for row in client.get_exposure("equities")} == {"equities", "default", "momentum"}
    assert client.set_limits("default", risk_pb2.Limits(max_order_quantity=10)).max_order_quantity == 10
    assert client.get_limits("default").max_order_quantity == 10
    assert client.set_trading_state("HALTED", symbol="SPY").target == "SPY"
    assert client.check_position("SPY", 1, "BUY").reason == "TRADING_HALTED"


def test_client_business_rejection_is_an_answer_not_an_error(server, clients):
    answer = clients(server.target).submit_order("c-1", "AAPL", 200_000, "BUY")

    assert (answer.accepted, answer.reason) == (False, "MAX_ORDER_QUANTITY")


def test_client_malformed_request_raises_invalid_argument_and_is_not_an_outage(server, clients):
    client = clients(server.target, breaker_failures=2)

    for _ in range(4):
        with pytest.raises(grpc.RpcError) as error:
            client.check_position("", 10, "BUY")
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    assert client.breaker.current_state == "closed"
    assert client.check_position("AAPL", 10, "BUY").accepted


def test_client_watch_breaches_streams_state_changes(server, clients):
    client = clients(server.target)
    stream = client.watch_breaches()
    events: queue.Queue = queue.Queue()

    def read():
        try:
            for event in stream:
                events.put(event)
        except grpc.RpcError:  # cancelled at the end of the test
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        breach = None
        for _ in range(50):  # the stream is live once a change made after opening it arrives
            client.set_trading_state("HALTED", account="momentum")
            try:
                breach = events.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        assert breach is not None, "WatchBreaches delivered nothing"
        assert (breach.reason, breach.account, breach.state, breach.actor) == (
            "STATE_CHANGE", "momentum", risk_pb2.HALTED, "anonymous")
    finally:
        stream.cancel()
        reader.join(DEADLINE)


# ------------------------------------------------------------------ fail closed

def test_client_orders_are_rejected_with_engine_unavailable_while_the_server_is_down(serve, clients):
    client = clients(down_server(serve).target, deadline=0.5, retry_attempts=2, retry_initial=0.01)

    answers = [client.check_position("AAPL", 10, "BUY"),
               client.submit_order("c-1", "AAPL", 10, "BUY"),
               client.modify_order("c-1", 5),
               client.request_cancel("c-1")]

    assert [(a.accepted, a.reason) for a in answers] == [(False, ENGINE_UNAVAILABLE)] * 4
    assert answers[1].client_order_id == "c-1"
    assert "UNAVAILABLE" in answers[1].message


def test_client_batch_is_rejected_row_by_row_while_the_server_is_down(serve, clients):
    client = clients(down_server(serve).target, deadline=0.5, retry_attempts=2, retry_initial=0.01)
    batch = risk_pb2.OrderBatch(client_order_ids=["b-1", "b-2", "b-3"], accounts=[""] * 3,
                                symbols=["AAPL"] * 3, sides=[risk_pb2.BUY] * 3, quantities=[1] * 3,
                                prices=[0.0] * 3)

    response = client.submit_orders(batch)

    assert (list(response.reason_codes), response.accepted) == ([UNAVAILABLE_CODE] * 3, 0)
    assert dict(response.reason_names) == {UNAVAILABLE_CODE: ENGINE_UNAVAILABLE}


def test_client_fills_reads_and_admin_calls_raise_engine_unavailable_while_the_server_is_down(serve, clients):
    client = clients(down_server(serve).target, deadline=0.5, retry_attempts=2, retry_initial=0.01)

    for call in (lambda: client.report_fill("c-1", "x-1", 10, 190.0),
                 lambda: client.report_order_event("c-1", "CANCELLED"),
                 lambda: client.get_exposure(),
                 lambda: client.get_positions(),
                 lambda: client.set_trading_state("HALTED"),
                 lambda: client.update_prices(["AAPL"], [190.0])):
        with pytest.raises(EngineUnavailable):
            call()


# ------------------------------------------------------------------ retries

def test_client_retries_unavailable_until_the_server_is_back_on_the_same_port(serve, clients, pick_port):
    port = pick_port()
    first = serve(port=port)
    client = clients(first.target, deadline=1.0, retry_attempts=12, retry_initial=0.05, retry_max=0.3,
                     breaker_failures=100)
    assert client.check_position("AAPL", 10, "BUY").accepted
    first.stop()
    with pytest.raises(grpc.RpcError) as down:
        first.stub().CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY, quantity=1),
                                   timeout=DEADLINE)
    assert down.value.code() == grpc.StatusCode.UNAVAILABLE
    restarted = []

    def restart():
        time.sleep(0.5)
        restarted.append((serve(port=port), time.monotonic()))

    thread = threading.Thread(target=restart)
    called = time.monotonic()
    thread.start()
    try:
        answer = client.submit_order("after-restart", "AAPL", 10, "BUY", price=190.0)
    finally:
        thread.join(DEADLINE)

    second, back_at = restarted[0]
    assert back_at > called  # the call began while nothing was listening...
    assert (answer.accepted, answer.reason) == (True, "OK")  # ...and was answered by the new server
    exposure = second.stub().GetExposure(risk_pb2.ExposureRequest(account="default"), timeout=DEADLINE)
    assert exposure.accounts[0].open_orders == 1


def test_client_does_not_retry_a_modify(serve, clients, pick_port):
    port = pick_port()
    server = serve(port=port)
    client = clients(server.target, deadline=1.0, retry_attempts=12, retry_initial=0.05, retry_max=0.3)
    assert client.submit_order("c-1", "AAPL", 10, "BUY", price=190.0).accepted
    server.stop()

    answer = client.modify_order("c-1", 20)

    assert (answer.accepted, answer.reason) == (False, ENGINE_UNAVAILABLE)
    assert client.breaker.fail_counter == 1


# ------------------------------------------------------------------ circuit breaker

def test_client_breaker_opens_after_repeated_outages_then_fails_fast(serve, clients, black_holes, pick_port):
    port = pick_port()
    server = serve(port=port)
    deadline = 0.5
    client = clients(server.target, deadline=deadline, retry_attempts=1, breaker_failures=3, breaker_reset=60)
    assert client.check_position("AAPL", 10, "BUY").accepted
    server.stop()
    hole = black_holes(port)  # the engine hangs: every call waits for its deadline

    outages = [client.check_position("AAPL", 10, "BUY") for _ in range(3)]

    assert [(a.accepted, a.reason) for a in outages] == [(False, ENGINE_UNAVAILABLE)] * 3
    # The first two waited out their deadline; the third failure is the one that opens the breaker.
    assert ["DEADLINE_EXCEEDED" in a.message for a in outages[:2]] == [True, True], outages
    assert client.breaker.current_state == "open"
    hole.close()
    back = serve(port=port)          # the engine is back, but the breaker stays open for its reset time
    answer = client.submit_order("c-9", "AAPL", 10, "BUY")
    assert (answer.accepted, answer.reason) == (False, ENGINE_UNAVAILABLE)
    assert "circuit breaker open" in answer.message
    # Failing fast means the call never left the client: the engine saw no order.
    exposure = back.stub().GetExposure(risk_pb2.ExposureRequest(account="default"), timeout=DEADLINE,
                                       wait_for_ready=True)
    assert exposure.accounts[0].open_orders == 0
    assert back.metrics().value("riskcore_grpc_requests_total", method="SubmitOrder", code="OK") == 0


def test_client_breaker_lets_calls_through_again_after_the_reset_timeout_once_the_server_is_back(
        serve, clients, black_holes, pick_port):
    port = pick_port()
    server = serve(port=port)
    client = clients(server.target, deadline=0.3, retry_attempts=1, breaker_failures=2, breaker_reset=0.5)
    server.stop()
    hole = black_holes(port)
    for _ in range(2):
        client.check_position("AAPL", 10, "BUY")
    assert client.breaker.current_state == "open"
    hole.close()
    serve(port=port)

    answer, end = None, time.monotonic() + 15
    while time.monotonic() < end:
        answer = client.submit_order("back", "AAPL", 10, "BUY", price=190.0)
        if answer.accepted:
            break
        time.sleep(0.1)

    assert (answer.accepted, answer.reason) == (True, "OK")
    assert client.breaker.current_state == "closed"


# ------------------------------------------------------------------ deadlines

def test_client_deadline_bounds_a_call_to_a_hung_engine(clients, black_holes, pick_port):
    port = pick_port()
    black_holes(port)
    client = clients(f"127.0.0.1:{port}", deadline=0.3, retry_attempts=3, breaker_failures=100)

    answer = client.check_position("AAPL", 10, "BUY")

    assert (answer.accepted, answer.reason) == (False, ENGINE_UNAVAILABLE)
    assert "DEADLINE_EXCEEDED" in answer.message
    # DEADLINE_EXCEEDED is not retried: one attempt, one deadline.
    assert client._retrying.statistics["attempt_number"] == 1


def first_answer(answer: risk_pb2.CheckResponse) -> risk_pb2.CheckResponse:
    """``answer`` without its ``replayed`` mark: what the engine decided the first time."""
    copy = risk_pb2.CheckResponse()
    copy.CopyFrom(answer)
    copy.ClearField("replayed")
    return copy


def submit_with_deadline(stub, cid: str, timeout: float):
    """SubmitOrder with ``timeout``; the answer, or None when the deadline expired."""
    request = risk_pb2.OrderRequest(client_order_id=cid, symbol="AAPL", side=risk_pb2.BUY, quantity=100, price=190.0)
    try:
        return stub.SubmitOrder(request, timeout=timeout)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error
        return None


def test_expired_deadline_is_deadline_exceeded_and_a_retry_with_the_same_id_finds_one_order(stub):
    # grpc keeps deadlines to the millisecond, so an already-expired deadline may still be
    # answered in time; try until one is refused.
    for attempt in range(50):
        if submit_with_deadline(stub, f"d-{attempt}", timeout=0) is None:
            break
    else:
        raise AssertionError("no call with an expired deadline got DEADLINE_EXCEEDED in 50 tries")

    retried = [submit_with_deadline(stub, f"d-{attempt}", timeout=DEADLINE) for _ in range(2)]

    assert retried[1].replayed   # the first retry is replayed too if the expired call reached the engine
    assert first_answer(retried[0]) == first_answer(retried[1])
    assert retried[0].accepted
    exposure = stub.GetExposure(risk_pb2.ExposureRequest(account="default"), timeout=DEADLINE).accounts[0]
    assert exposure.open_orders == attempt + 1
    assert exposure.working_buy_notional == pytest.approx((attempt + 1) * 100 * 190.0)


def test_short_deadlines_never_reserve_an_order_twice(stub):
    # Whether such a call reaches the server, and in time, is up to the race; either way a retry
    # under the same id must find exactly one order.
    timeouts = [0, 1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3] * 4
    expired = 0
    for i, timeout in enumerate(timeouts):
        request = risk_pb2.OrderRequest(client_order_id=f"t-{i}", symbol="AAPL", side=risk_pb2.BUY, quantity=10,
                                        price=190.0)
        try:
            first = stub.SubmitOrder(request, timeout=timeout)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            expired += 1
            first = None
        again = stub.SubmitOrder(request, timeout=DEADLINE)
        assert again.accepted
        assert first is None or (again.replayed and first_answer(first) == first_answer(again))

    exposure = stub.GetExposure(risk_pb2.ExposureRequest(account="default"), timeout=DEADLINE).accounts[0]
    assert expired > 0
    assert exposure.open_orders == len(timeouts)
    assert exposure.working_buy_notional == pytest.approx(len(timeouts) * 10 * 190.0)


def test_check_position_with_an_expired_deadline_is_deadline_exceeded(stub):
    codes = set()
    for _ in range(50):
        try:
            stub.CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY, quantity=1), timeout=0)
            codes.add(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.add(error.code())
        if grpc.StatusCode.DEADLINE_EXCEEDED in codes:
            break

    assert grpc.StatusCode.DEADLINE_EXCEEDED in codes
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED}
