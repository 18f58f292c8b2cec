"""64 workers at once against a real server process: backpressure, exact counts, bounded memory."""

import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest

from a3c import codec
from a3c.rollout import Rollout
from a3c.v1 import a3c_pb2 as pb
from a3c.v1 import a3c_pb2_grpc as pb_grpc
from lab.loadgen import wait_serving
from tests.conftest import ROOT
from tests.e2e.test_train import ENV, free_port

CLIENTS, SECONDS = 64, 12


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def metric(port: int, series: str) -> float:
    """The value of one series, named with its labels as the exposition writes them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name == series:
                return float(value)
    raise KeyError(series)


class Client(threading.Thread):
    """A worker without an env: pushes real-looking rollouts as fast as it is answered,
    one per push (envs 1, the one-rollout message) or a batch of `envs` (one lease each)."""

    def __init__(self, address: str, index: int, stop_at: float, envs: int):
        super().__init__(daemon=True)
        self.address, self.index, self.stop_at, self.envs = address, index, stop_at, envs
        self.ok = self.exhausted = 0
        self.other_errors: list[str] = []

    def push(self, rng, worker_id: str, leases: list[int], seq: int, version: int):
        rollouts = [
            Rollout(
                rng.normal(size=(4, 3)).astype(np.float32),
                rng.uniform(-2, 2, size=(4, 1)).astype(np.float32),
                rng.uniform(-16, 0, size=4).astype(np.float32),
                rng.normal(size=3).astype(np.float32),
                False,
            )
            for _ in leases
        ]
        header = pb.PushHeader(worker_id=worker_id, seq=seq, base_version=version)
        header.envs.extend(pb.EnvSlot(lease_id=lease, steps=4) for lease in leases)
        return pb.SamplePush(header=header, rollouts=codec.batch_to_proto(rollouts))

    def run(self) -> None:
        rng = np.random.default_rng(self.index)
        channel = grpc.insecure_channel(self.address)
        stub = pb_grpc.ParameterServerStub(channel)
        worker_id = stub.Connect(pb.ConnectRequest(mode=pb.MODE_DATA, name=f"load{self.index}"))
        worker_id = worker_id.worker_id
        request = pb.StartEpisodeRequest(worker_id=worker_id, count=self.envs)
        leases = list(stub.StartEpisode(request).lease_ids)
        assert len(leases) == self.envs
        seq, version = 0, 0
        while time.monotonic() < self.stop_at:
            seq += 1
            push = self.push(rng, worker_id, leases, seq, version)
            try:
                (reply,) = list(stub.PushSamples(iter([push]), timeout=30))
                self.ok += 1
                version = reply.version
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    self.exhausted += 1
                    time.sleep(0.05)
                else:
                    self.other_errors.append(f"{err.code().name}: {err.details()}")
        channel.close()


@pytest.mark.parametrize("envs", [1, 4])
def test_64_workers_get_backpressure_exact_counts_and_bounded_memory(tmp_path, envs):
    port, metrics_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port),
         "--metrics-port", str(metrics_port), "--max-episodes", "1000000",
         "--queue-size", "8", "--queue-timeout", "0.2", "--run-dir", str(tmp_path),
         "--progress", "false"],
        cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        wait_serving(channel)
        stop_at = time.monotonic() + SECONDS
        clients = [Client(f"127.0.0.1:{port}", i, stop_at, envs) for i in range(CLIENTS)]
        for c in clients:
            c.start()
        rss = []
        while any(c.is_alive() for c in clients):
            rss.append(rss_bytes(server.pid))
            time.sleep(0.5)
        for c in clients:
            c.join()
        # Every push was answered once applied, so the counts below are final.
        accepted = sum(c.ok for c in clients)
        exhausted = sum(c.exhausted for c in clients)
        errors = [e for c in clients for e in c.other_errors]
        assert not errors, errors[:5]
        assert accepted > CLIENTS
        assert exhausted > 0, "with a queue of 8 and 64 clients, some pushes must be refused"
        # Every accepted push applied exactly once; every refusal counted.
        assert metric(metrics_port, 'a3c_server_updates_total{mode="data"}') == accepted
        assert metric(metrics_port, "a3c_server_weights_version") == accepted
        assert metric(metrics_port, "a3c_server_env_steps_total") == accepted * 4 * envs
        assert metric(metrics_port, 'a3c_server_pushes_refused_total{reason="queue_full"}') == (
            exhausted
        )
        # Memory stays flat under load: the second half grows by less than 64 MiB.
        half = len(rss) // 2
        assert max(rss[half:]) - rss[half] < 64 * 2**20, [r // 2**20 for r in rss]
        channel.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
