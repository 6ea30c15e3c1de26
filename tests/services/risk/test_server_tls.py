"""TLS and mutual TLS from the [tls] table, with a test PKI made by the `cryptography` package."""
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskcore_services.proto import risk_pb2
from riskcore_services.risk.client import ENGINE_UNAVAILABLE, RiskClient
from riskcore_services.risk.config import ConfigError, load_config

DEADLINE = 5.0  # seconds for every call
CHECK = risk_pb2.PositionRequest(symbol="AAPL", side=risk_pb2.BUY, quantity=1000)


@pytest.fixture
def tls_server(serve, config_file, certificates):
    return serve(load_config(config_file('[tls]\ncert = "server.pem"\nkey = "server.key"\n')))


@pytest.fixture
def mtls_server(serve, config_file, certificates):
    return serve(load_config(config_file('[tls]\ncert = "server.pem"\nkey = "server.key"\nclient_ca = "ca.pem"\n')))


def credentials(root: bytes, key: bytes | None = None, chain: bytes | None = None):
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)


def check(server, creds, host="localhost"):
    return server.stub(credentials=creds, target=f"{host}:{server.port}").CheckPosition(CHECK, timeout=DEADLINE)


def refused(server, creds, host="localhost") -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        check(server, creds, host)
    return error.value


# ------------------------------------------------------------------ TLS

@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_tls_client_trusting_the_ca_is_served_by_name_and_by_address(tls_server, certificates, host):
    answer = check(tls_server, credentials(certificates.ca), host)

    assert (answer.accepted, answer.reason) == (True, "OK")


def test_plaintext_client_cannot_talk_to_a_tls_server(tls_server):
    with pytest.raises(grpc.RpcError) as error:
        tls_server.stub().CheckPosition(CHECK, timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_client_trusting_another_ca_is_refused(tls_server, certificates):
    assert refused(tls_server, credentials(certificates.rogue_ca)).code() == grpc.StatusCode.UNAVAILABLE


def test_tls_server_serves_health_over_tls(tls_server, certificates):
    channel = tls_server.channel(credentials=credentials(certificates.ca), target=f"localhost:{tls_server.port}")

    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE).status

    assert status == health_pb2.HealthCheckResponse.SERVING


def test_risk_client_with_root_certificates_talks_tls(tls_server, certificates):
    target = f"localhost:{tls_server.port}"
    with RiskClient(target, root_certificates=certificates.ca) as secure, \
            RiskClient(target, deadline=0.5, retry_attempts=1) as plain:
        assert secure.check_position("AAPL", 1000, "BUY").accepted
        assert plain.check_position("AAPL", 1000, "BUY").reason == ENGINE_UNAVAILABLE


# ------------------------------------------------------------------ mutual TLS

def test_mtls_client_with_a_certificate_from_the_client_ca_is_served(mtls_server, certificates):
    creds = credentials(certificates.ca, certificates.client_key, certificates.client_cert)

    assert check(mtls_server, creds).accepted


def test_mtls_client_without_a_certificate_is_refused(mtls_server, certificates):
    assert refused(mtls_server, credentials(certificates.ca)).code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_client_with_a_certificate_from_another_ca_is_refused(mtls_server, certificates):
    creds = credentials(certificates.ca, certificates.rogue_client_key, certificates.rogue_client_cert)

    assert refused(mtls_server, creds).code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_plaintext_client_is_refused(mtls_server):
    with pytest.raises(grpc.RpcError) as error:
        mtls_server.stub().CheckPosition(CHECK, timeout=DEADLINE)

    assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_risk_client_with_a_client_certificate_talks_mtls(mtls_server, certificates):
    with RiskClient(f"localhost:{mtls_server.port}", root_certificates=certificates.ca,
                    private_key=certificates.client_key, certificate_chain=certificates.client_cert) as client:
        assert client.submit_order("m-1", "AAPL", 10, "BUY", price=190.0).accepted


# ------------------------------------------------------------------ configuration

@pytest.mark.parametrize("table, key", [('cert = "missing.pem"\nkey = "server.key"', "tls.cert"),
                                        ('cert = "server.pem"\nkey = "missing.key"', "tls.key"),
                                        ('cert = "server.pem"\nkey = "server.key"\nclient_ca = "nope.pem"',
                                         "tls.client_ca")])
def test_tls_config_naming_a_missing_file_is_rejected_with_the_key(config_file, certificates, table, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(config_file(f"[tls]\n{table}\n"))


def test_tls_paths_are_relative_to_the_config_file(config_file, certificates):
    config = load_config(config_file('[tls]\ncert = "server.pem"\nkey = "server.key"\n'))

    assert config.tls.cert == certificates.directory / "server.pem"
    assert config.tls.cert.read_bytes() == certificates.server_cert
