"""TLS, mutual TLS and bearer tokens, with certificates the test makes with openssl."""

import shutil
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from a3c.config import WorkerConfig
from a3c.v1 import a3c_pb2 as pb
from a3c.v1 import a3c_pb2_grpc as pb_grpc
from worker.client import Client


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost, and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=a3c-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=a3c-{name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", "san.ext",
                "-out", f"{name}.pem", cwd=d)  # fmt: skip
    return d


def pull(channel, token=None):
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    stub = pb_grpc.ParameterServerStub(channel)
    return stub.PullWeights(pb.PullWeightsRequest(), timeout=5, metadata=metadata)


def tls_channel(address, pki, client_cert=False):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client.key").read_bytes() if client_cert else None,
        certificate_chain=(pki / "client.pem").read_bytes() if client_cert else None,
    )
    return grpc.secure_channel(address, credentials)


def test_tls_refuses_a_client_without_the_ca(live_server_factory, pki):
    live = live_server_factory(tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"))
    with pytest.raises(grpc.RpcError) as err:
        pull(grpc.insecure_channel(live.address))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError) as err:  # TLS, but trusting only the system's CAs
        pull(grpc.secure_channel(live.address, grpc.ssl_channel_credentials()))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert pull(tls_channel(live.address, pki)).weights.version == 0


def test_mutual_tls_refuses_a_client_without_a_certificate(live_server_factory, pki):
    live = live_server_factory(
        tls_cert=str(pki / "server.pem"),
        tls_key=str(pki / "server.key"),
        tls_client_ca=str(pki / "ca.pem"),
    )
    with pytest.raises(grpc.RpcError) as err:
        pull(tls_channel(live.address, pki))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert pull(tls_channel(live.address, pki, client_cert=True)).weights.version == 0
    # The worker's own client, configured as a user would.
    wcfg = WorkerConfig(
        server=live.address,
        tls_ca=str(pki / "ca.pem"),
        tls_cert=str(pki / "client.pem"),
        tls_key=str(pki / "client.key"),
    )
    assert Client(wcfg).connect("data", "mtls", "w-mtls").worker_id == "w-mtls"


def test_bearer_token(live_server_factory, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    live = live_server_factory(auth_token_file=str(token_file))
    channel = grpc.insecure_channel(live.address)
    for token in (None, "wrong", "s3cret-tokenX"):
        with pytest.raises(grpc.RpcError) as err:
            pull(channel, token)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "bearer token" in err.value.details()
    stream = pb_grpc.ParameterServerStub(channel).PushSamples(iter([pb.SamplePush()]))
    with pytest.raises(grpc.RpcError) as err:
        list(stream)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert pull(channel, "s3cret-token").weights.version == 0
    # Probes need no secret.
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    client = Client(WorkerConfig(server=live.address, auth_token_file=str(token_file)))
    assert client.connect("gradient", "t", "w-token").worker_id == "w-token"
