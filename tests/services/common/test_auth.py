"""Bearer-token authentication and the admin role, against real servers with and without tokens."""
import hashlib

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskcore_services.common.auth import TokenAuth, TokenEntry, token_digest
from riskcore_services.proto import risk_pb2
from riskcore_services.risk.client import RiskClient
from riskcore_services.risk.config import ConfigError, load_config

DEADLINE = 5.0  # seconds for every call

ADMIN_TOKEN, TRADER_TOKEN = "ops-7f3c9a-secret", "alice-51b2e0-secret"
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
TRADER = (("authorization", f"Bearer {TRADER_TOKEN}"),)
TOKENS = f"""
[[auth.tokens]]
name = "ops"
sha256 = "{token_digest(ADMIN_TOKEN)}"
role = "admin"

[[auth.tokens]]
name = "alice"
sha256 = "{token_digest(TRADER_TOKEN)}"
role = "trader"
accounts = ["equities"]
"""

CHECK = ("CheckPosition", risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY, quantity=10))
READS_AND_ORDERS = [
    CHECK,
    ("SubmitOrder", risk_pb2.OrderRequest(client_order_id="o-1", symbol="AAPL", side=risk_pb2.BUY, quantity=10)),
    ("GetExposure", risk_pb2.ExposureRequest()),
    ("GetPositions", risk_pb2.PositionsRequest()),
    ("GetLimits", risk_pb2.LimitsRequest(account="default")),
    ("ReportFill", risk_pb2.Fill(exec_id="x-1", quantity=1, price=190.0, account="default", symbol="AAPL",
                                 side=risk_pb2.BUY)),
]
ADMIN_CALLS = [
    ("SetLimits", risk_pb2.SetLimitsRequest(account="default", limits=risk_pb2.Limits(max_order_quantity=5))),
    ("SetTradingState", risk_pb2.TradingStateRequest(account="FIRM", state=risk_pb2.HALTED)),
    ("UpdatePrices", risk_pb2.PriceUpdates(symbols=["AAPL"], prices=[150.0])),
]


@pytest.fixture
def secured(serve, config_file):
    return serve(load_config(config_file(TOKENS)))


@pytest.fixture
def secured_stub(secured):
    return secured.stub()


def call(stub, method, request, metadata=()):
    return getattr(stub, method)(request, timeout=DEADLINE, metadata=metadata)


def unchanged(stub) -> tuple:
    return (call(stub, "GetLimits", risk_pb2.LimitsRequest(account="default"), ADMIN),
            call(stub, "GetExposure", risk_pb2.ExposureRequest(), ADMIN),
            call(stub, *CHECK, ADMIN))


# ------------------------------------------------------------------ unit

def test_token_digest_is_the_sha256_hex_of_the_token():
    assert token_digest("s3cret") == hashlib.sha256(b"s3cret").hexdigest()


def test_token_auth_without_tokens_lets_everyone_in_as_an_anonymous_admin():
    identity = TokenAuth([]).authenticate((), admin=True)

    assert (identity.name, identity.role) == ("anonymous", "admin")
    assert not TokenAuth([]).enabled


@pytest.mark.parametrize("entry, message", [
    (dict(name="x", sha256="0" * 64, role="root"), "role"),
    (dict(name="x", sha256="0" * 63, role="admin"), "sha256"),
    (dict(name="x", sha256="A" * 64, role="admin"), "sha256"),
])
def test_token_entry_rejects_a_bad_role_or_digest(entry, message):
    with pytest.raises(ValueError, match=message):
        TokenEntry(**entry)


def test_config_with_a_plain_text_token_instead_of_a_digest_is_rejected(config_file):
    path = config_file('[[auth.tokens]]\nname = "ops"\nsha256 = "ops-secret"\nrole = "admin"\n')

    with pytest.raises(ConfigError, match=r"auth\.tokens\[0\].*sha256"):
        load_config(path)


# ------------------------------------------------------------------ auth on

@pytest.mark.parametrize("method, request_", READS_AND_ORDERS + ADMIN_CALLS,
                         ids=[m for m, _ in READS_AND_ORDERS + ADMIN_CALLS])
@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong"),), (("authorization", ADMIN_TOKEN),),
                                      (("authorization", f"Basic {ADMIN_TOKEN}"),)],
                         ids=["no-token", "unknown-token", "no-bearer-prefix", "basic-scheme"])
def test_call_without_a_valid_bearer_token_is_unauthenticated_and_changes_nothing(secured_stub, method, request_,
                                                                                  metadata):
    before = unchanged(secured_stub)

    with pytest.raises(grpc.RpcError) as error:
        call(secured_stub, method, request_, metadata)

    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "token" in error.value.details()
    assert unchanged(secured_stub) == before


def test_streams_without_a_token_are_unauthenticated(secured_stub):
    for stream in (lambda: list(secured_stub.WatchBreaches(risk_pb2.WatchRequest(), timeout=DEADLINE)),
                   lambda: list(secured_stub.SubmitStream(iter([READS_AND_ORDERS[1][1]]), timeout=DEADLINE))):
        with pytest.raises(grpc.RpcError) as error:
            stream()
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("method, request_", READS_AND_ORDERS, ids=[m for m, _ in READS_AND_ORDERS])
def test_trader_token_may_check_submit_report_and_read(secured_stub, method, request_):
    response = call(secured_stub, method, request_, TRADER)

    assert response.ByteSize() > 0 or method == "GetPositions"


@pytest.mark.parametrize("method, request_", ADMIN_CALLS, ids=[m for m, _ in ADMIN_CALLS])
def test_trader_token_on_an_admin_call_is_permission_denied_and_changes_nothing(secured_stub, method, request_):
    before = unchanged(secured_stub)

    with pytest.raises(grpc.RpcError) as error:
        call(secured_stub, method, request_, TRADER)

    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "alice" in error.value.details() and "admin" in error.value.details()
    assert unchanged(secured_stub) == before


def test_admin_token_may_make_admin_calls(secured_stub):
    limits = call(secured_stub, *ADMIN_CALLS[0], ADMIN).limits
    state = call(secured_stub, *ADMIN_CALLS[1], ADMIN)
    prices = call(secured_stub, *ADMIN_CALLS[2], ADMIN)

    assert limits.max_order_quantity == 5
    assert (state.target, state.state) == ("FIRM", risk_pb2.HALTED)
    assert prices.applied == 1
    assert call(secured_stub, *CHECK, TRADER).reason == "TRADING_HALTED"


def test_admin_changes_are_logged_with_the_token_name(secured_stub):
    with structlog.testing.capture_logs() as logs:
        call(secured_stub, *ADMIN_CALLS[0], ADMIN)
        call(secured_stub, "SetTradingState", risk_pb2.TradingStateRequest(account="momentum",
                                                                           state=risk_pb2.REDUCING), ADMIN)

    limits = [e for e in logs if e["event"] == "limits changed"]
    states = [e for e in logs if e["event"] == "trading state changed"]
    assert [(e["account"], e["actor"]) for e in limits] == [("default", "ops")]
    assert [(e["target"], e["state"], e["actor"]) for e in states] == [("momentum", "REDUCING", "ops")]


def test_state_change_breach_names_the_admin_who_made_it(secured_stub, watch_breaches):
    watcher = watch_breaches(secured_stub, metadata=TRADER, admin_metadata=ADMIN)

    call(secured_stub, "SetTradingState", risk_pb2.TradingStateRequest(symbol="SPY", state=risk_pb2.HALTED), ADMIN)

    breach = watcher.next()
    assert (breach.reason, breach.symbol, breach.actor) == ("STATE_CHANGE", "SPY", "ops")


def test_refused_calls_are_counted_by_status_code(secured, secured_stub):
    with pytest.raises(grpc.RpcError):
        call(secured_stub, *CHECK)
    with pytest.raises(grpc.RpcError):
        call(secured_stub, *ADMIN_CALLS[2], TRADER)

    metrics = secured.metrics_when(lambda m: m.value("riskcore_grpc_requests_total", method="UpdatePrices",
                                                     code="PERMISSION_DENIED") > 0)

    assert metrics.value("riskcore_grpc_requests_total", method="CheckPosition", code="UNAUTHENTICATED") == 1
    assert metrics.value("riskcore_grpc_requests_total", method="UpdatePrices", code="PERMISSION_DENIED") == 1


def test_health_checks_need_no_token_so_probes_work(secured):
    health = health_pb2_grpc.HealthStub(secured.channel())

    status = health.Check(health_pb2.HealthCheckRequest(service="riskcore.v1.RiskEngine"), timeout=DEADLINE).status

    assert status == health_pb2.HealthCheckResponse.SERVING


def test_risk_client_sends_its_token(secured):
    with RiskClient(secured.target, token=TRADER_TOKEN) as trader, RiskClient(secured.target) as nobody:
        assert trader.check_position("AAPL", 10, "BUY").accepted
        with pytest.raises(grpc.RpcError) as error:
            nobody.check_position("AAPL", 10, "BUY")
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert nobody.breaker.current_state == "closed"


# ------------------------------------------------------------------ auth off

@pytest.mark.parametrize("method, request_", READS_AND_ORDERS + ADMIN_CALLS,
                         ids=[m for m, _ in READS_AND_ORDERS + ADMIN_CALLS])
def test_without_tokens_configured_every_call_needs_no_token(stub, method, request_):
    response = call(stub, method, request_)

    assert response.ByteSize() > 0 or method == "GetPositions"


def test_without_tokens_configured_a_presented_token_is_ignored(stub):
    assert call(stub, *CHECK, (("authorization", "Bearer anything"),)).accepted


def test_promote_needs_the_admin_role(secured_stub):
    for metadata, code in (((), grpc.StatusCode.UNAUTHENTICATED), (TRADER, grpc.StatusCode.PERMISSION_DENIED),
                           (ADMIN, grpc.StatusCode.FAILED_PRECONDITION)):  # admitted; standalone: no failover
        with pytest.raises(grpc.RpcError) as error:
            call(secured_stub, "Promote", risk_pb2.PromoteRequest(), metadata)
        assert error.value.code() == code, metadata


# ------------------------------------------------------------------ account scopes

def order(cid: str, account: str, quantity: int = 10) -> risk_pb2.OrderRequest:
    return risk_pb2.OrderRequest(client_order_id=cid, account=account, symbol="ESZ6" if account == "trend" else "AAPL",
                                 side=risk_pb2.BUY, quantity=quantity)


def everything(stub) -> tuple:
    """The whole state an admin can read: exposure of every node and every position."""
    return (call(stub, "GetExposure", risk_pb2.ExposureRequest(), ADMIN),
            call(stub, "GetPositions", risk_pb2.PositionsRequest(), ADMIN))


OUTSIDE = [
    ("CheckPosition", risk_pb2.PositionRequest(account="trend", symbol="ESZ6", side=risk_pb2.BUY, quantity=1)),
    ("SubmitOrder", order("t-1", "trend")),
    ("SubmitOrders", risk_pb2.OrderBatch(client_order_ids=["b-1", "b-2"], accounts=["default", "trend"],
                                         symbols=["AAPL", "ESZ6"], sides=[risk_pb2.BUY, risk_pb2.BUY],
                                         quantities=[1, 1], prices=[190.0, 6000.0])),
    ("ReportFill", risk_pb2.Fill(exec_id="x-t", quantity=1, price=6000.0, account="trend", symbol="ESZ6",
                                 side=risk_pb2.BUY)),
    ("ReportFill", risk_pb2.Fill(exec_id="x-f", quantity=1, price=6000.0, account="futures", symbol="ESZ6",
                                 side=risk_pb2.BUY)),
    ("ReportFill", risk_pb2.Fill(exec_id="x-n", quantity=1, price=190.0, account="nobody", symbol="AAPL",
                                 side=risk_pb2.BUY)),
]


@pytest.mark.parametrize("method, request_", OUTSIDE, ids=[f"{m}-{i}" for i, (m, _) in enumerate(OUTSIDE)])
def test_trader_token_acting_outside_its_accounts_is_permission_denied_naming_the_account(secured_stub, method,
                                                                                           request_):
    before = everything(secured_stub)

    with pytest.raises(grpc.RpcError) as error:
        call(secured_stub, method, request_, TRADER)

    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    target = next(a for a in ("trend", "futures", "nobody") if a in str(request_))
    assert f"account {target!r}" in error.value.details() and "alice" in error.value.details()
    assert everything(secured_stub) == before


def test_trader_token_on_a_stream_outside_its_accounts_is_permission_denied_and_books_nothing(secured_stub):
    before = everything(secured_stub)

    with pytest.raises(grpc.RpcError) as error:
        list(secured_stub.SubmitStream(iter([order("s-1", "trend")]), timeout=DEADLINE, metadata=TRADER))

    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert everything(secured_stub) == before


ON_ANOTHER_ACCOUNTS_ORDER = [
    ("ModifyOrder", risk_pb2.ModifyRequest(client_order_id="ops-1", quantity=1)),
    ("RequestCancel", risk_pb2.CancelRequest(client_order_id="ops-1")),
    ("ReportFill", risk_pb2.Fill(client_order_id="ops-1", exec_id="x-1", quantity=1, price=6000.0)),
    ("ReportFills", risk_pb2.FillBatch(client_order_ids=["ops-1"], exec_ids=["x-2"], quantities=[1],
                                       prices=[6000.0])),
    ("ReportOrderEvent", risk_pb2.OrderEvent(client_order_id="ops-1", kind=risk_pb2.OrderEvent.CANCELLED)),
]


@pytest.mark.parametrize("method, request_", ON_ANOTHER_ACCOUNTS_ORDER, ids=[m for m, _ in ON_ANOTHER_ACCOUNTS_ORDER])
def test_trader_token_acting_on_an_order_of_another_account_is_permission_denied_naming_both(secured_stub, method,
                                                                                            request_):
    assert call(secured_stub, "SubmitOrder", order("ops-1", "trend", 5), ADMIN).accepted
    before = everything(secured_stub)

    with pytest.raises(grpc.RpcError) as error:
        call(secured_stub, method, request_, TRADER)

    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'ops-1'" in error.value.details() and "'trend'" in error.value.details()
    assert everything(secured_stub) == before
    # The admin token, which has no scope, may act on it.
    assert call(secured_stub, "RequestCancel", risk_pb2.CancelRequest(client_order_id="ops-1"), ADMIN).accepted


def test_trader_token_acts_on_every_account_below_the_ones_it_lists(secured_stub):
    assert call(secured_stub, "SubmitOrder", order("m-1", "momentum"), TRADER).accepted
    assert call(secured_stub, "SubmitOrder", order("d-1", ""), TRADER).accepted       # the default account
    assert call(secured_stub, "ModifyOrder", risk_pb2.ModifyRequest(client_order_id="m-1", quantity=5),
                TRADER).accepted
    assert call(secured_stub, "ReportFill", risk_pb2.Fill(client_order_id="m-1", exec_id="x-m", quantity=5,
                                                          price=190.0), TRADER).applied


@pytest.mark.parametrize("entry, message", [
    ('role = "trader"', r"auth\.tokens\[0\]: token 'x': a trader token needs accounts = \[\.\.\.\]"),
    ('role = "trader"\naccounts = []', r"auth\.tokens\[0\]: token 'x': a trader token needs accounts"),
    ('role = "trader"\naccounts = ["nobody"]', r"auth\.tokens\[0\]\.accounts: 'nobody' is not a configured account"),
    ('role = "admin"\naccounts = ["equities"]', r"auth\.tokens\[0\]: token 'x': an admin token acts on every account"),
])
def test_token_scopes_that_are_missing_empty_unknown_or_on_an_admin_are_config_errors(config_file, entry, message):
    path = config_file(f'[[auth.tokens]]\nname = "x"\nsha256 = "{"0" * 64}"\n{entry}\n')

    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_every_admin_call_is_logged_with_the_token_name_and_the_peer(secured_stub):
    with structlog.testing.capture_logs() as logs:
        for method, request_ in ADMIN_CALLS:
            call(secured_stub, method, request_, ADMIN)

    admin = [e for e in logs if e["event"] == "admin call"]
    assert [e["token"] for e in admin] == ["ops", "ops", "ops"]
    assert all(e["peer"].startswith("ipv4:127.0.0.1:") for e in admin), admin


@pytest.mark.parametrize("metadata, event", [
    ((), "call refused: missing bearer token"),
    ((("authorization", "Bearer wrong"),), "call refused: invalid bearer token"),
    (TRADER, "call refused: admin role needed"),
])
def test_refused_credentials_are_logged_at_warning_with_the_peer(secured_stub, metadata, event):
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(grpc.RpcError):
            call(secured_stub, *ADMIN_CALLS[2], metadata)

    [refusal] = [e for e in logs if e["event"] == event]
    assert refusal["log_level"] == "warning"
    assert refusal["peer"].startswith("ipv4:127.0.0.1:")


def test_a_call_outside_the_tokens_accounts_is_logged_at_warning_with_the_peer(secured_stub):
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(grpc.RpcError):
            call(secured_stub, "SubmitOrder", order("t-9", "trend"), TRADER)

    [refusal] = [e for e in logs if e["event"] == "call refused: outside the token's accounts"]
    assert (refusal["log_level"], refusal["token"], refusal["target"]) == ("warning", "alice", "account 'trend'")
    assert refusal["peer"].startswith("ipv4:127.0.0.1:")
