"""Synthetic workers for the capacity benchmark: threads that replay recorded pushes.

`python -m lab.loadgen --server HOST:PORT --mode data|gradient --threads T --seconds S
--recorded FILE` runs T threads, each a worker without an environment: it leases an
episode and pushes recorded rollouts (data) or recorded gradients (gradient mode) as fast
as the server answers, backing off briefly on RESOURCE_EXHAUSTED, until S seconds pass.
FILE is an .npz with `states [R,T,obs]`, `actions [R,T,act]`, `rewards [R,T]`,
`next_states [R,obs]`, `log_probs [R,T]` and, for gradient mode, `grads [R,n_params]`
with `shapes` (JSON).
Prints one line: pushes answered, refused, and other errors.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from a3c import codec
from a3c.model import split_flat
from a3c.rollout import Rollout
from a3c.v1 import a3c_pb2 as pb
from a3c.v1 import a3c_pb2_grpc as pb_grpc


def wait_serving(channel: grpc.Channel, timeout: float = 180.0) -> None:
    """Until the server's health service says SERVING (its port opens before it is ready)."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2, wait_for_ready=True)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not become SERVING")
        time.sleep(0.2)


def messages(mode: str, recorded) -> list:
    """The payloads to replay, built once: rollouts or per-variable gradient tensors."""
    if mode == "data":
        return [
            codec.batch_to_proto([Rollout(s, a, r, n, False, lp)])
            for s, a, r, n, lp in zip(
                recorded["states"], recorded["actions"], recorded["rewards"],
                recorded["next_states"], recorded["log_probs"],
            )
        ]  # fmt: skip
    actor_shapes, critic_shapes = json.loads(str(recorded["shapes"]))
    n_actor = sum(int(np.prod(s)) for s in actor_shapes)
    return [
        (codec.to_tensors(split_flat(g[:n_actor], actor_shapes)),
         codec.to_tensors(split_flat(g[n_actor:], critic_shapes)))
        for g in recorded["grads"]
    ]  # fmt: skip


class Replayer(threading.Thread):
    def __init__(self, stub, mode: str, payloads: list, steps: int, stop_at: float, index: int):
        super().__init__(daemon=True)
        self.stub, self.mode, self.payloads, self.stop_at = stub, mode, payloads, stop_at
        self.steps = steps  # env steps of every recorded push
        self.index = index
        self.ok = self.refused = self.errors = 0

    def _message(self, header, i: int):
        payload = self.payloads[i % len(self.payloads)]
        if self.mode == "data":
            return pb.SamplePush(header=header, rollouts=payload)
        actor, critic = payload
        return pb.GradientPush(header=header, actor_grads=actor, critic_grads=critic)

    def run(self) -> None:
        mode = pb.MODE_DATA if self.mode == "data" else pb.MODE_GRADIENT
        worker_id = self.stub.Connect(pb.ConnectRequest(mode=mode, name="loadgen")).worker_id
        lease = self.stub.StartEpisode(pb.StartEpisodeRequest(worker_id=worker_id)).lease_id
        method = self.stub.PushSamples if self.mode == "data" else self.stub.PushGradients
        seq, version = 0, 0
        while time.monotonic() < self.stop_at:
            requests: queue.Queue = queue.Queue()
            replies = method(iter(requests.get, None))
            try:
                while time.monotonic() < self.stop_at:
                    seq += 1
                    header = pb.PushHeader(
                        worker_id=worker_id, seq=seq, base_version=version,
                        envs=[pb.EnvSlot(lease_id=lease, steps=self.steps)],
                    )  # fmt: skip
                    requests.put(self._message(header, seq + self.index))
                    version = next(replies).version
                    self.ok += 1
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    self.refused += 1
                    time.sleep(0.01)
                else:
                    self.errors += 1
                    time.sleep(0.1)
            finally:
                requests.put(None)
                replies.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--mode", choices=("gradient", "data"), required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--recorded", required=True)
    args = parser.parse_args(argv)
    with np.load(args.recorded) as recorded:
        payloads = messages(args.mode, recorded)
        steps = int(recorded["rewards"].shape[1])
    channel = grpc.insecure_channel(args.server)
    wait_serving(channel)
    stub = pb_grpc.ParameterServerStub(channel)
    stop_at = time.monotonic() + args.seconds
    threads = [Replayer(stub, args.mode, payloads, steps, stop_at, i) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok, refused = sum(t.ok for t in threads), sum(t.refused for t in threads)
    print(f"answered {ok} refused {refused} errors {sum(t.errors for t in threads)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
