"""The worker's gRPC edge: calls with deadlines, push streams, and the one retry policy.

What retries, and for which failure (nothing else does: gRPC's own retries are off):
- worker.loop.Session, when a push stream breaks on a transient error (server briefly
  away, link cut): `retry` reads the reply again, each try reconnecting and sending every
  unanswered push again under its seq, so nothing is lost or applied twice and the
  episodes go on;
- worker.loop.run, on any other transient error (connect refused, a lease or weights
  call failed, a new server process): waits a Backoff delay and starts a new session,
  whose episodes start over.
Both stop after connect_timeout seconds of failing.
"""

from __future__ import annotations

import logging
import queue
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc

from a3c.config import WorkerConfig, read_token
from a3c.v1 import a3c_pb2 as pb
from a3c.v1 import a3c_pb2_grpc as pb_grpc

log = logging.getLogger("worker.client")
T = TypeVar("T")

# Codes after which reconnecting may help: the server is away, restarting, or full.
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.NOT_FOUND,  # the server restarted and forgot this worker
    }
)
MODES = {"gradient": pb.MODE_GRADIENT, "data": pb.MODE_DATA, "evaluator": pb.MODE_EVALUATOR}
# A push stream waits on the server with no deadline; pings find a dead link within ~10 s.
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
# Weight sets of big networks exceed gRPC's default 4 MiB.
MAX_RECEIVE = ("grpc.max_receive_message_length", 256 * 1024 * 1024)
CHANNEL_OPTIONS = [*KEEPALIVE_OPTIONS, MAX_RECEIVE]


def is_transient(err: grpc.RpcError) -> bool:
    return err.code() in TRANSIENT


class Backoff:
    """Capped exponential backoff with full jitter."""

    def __init__(self, base: float = 0.1, cap: float = 5.0, rng: random.Random | None = None):
        self.base, self.cap = base, cap
        self._rng = rng or random.Random()
        self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0

    def next_delay(self) -> float:
        delay = self._rng.uniform(0, min(self.cap, self.base * 2**self.attempt))
        self.attempt += 1
        return delay


def retry(
    call: Callable[[], T],
    deadline: float | None,
    backoff: Backoff,
    what: str,
    worker_id: str,
    timeout: float = 0.0,
) -> T:
    """call() until it succeeds, a non-transient error, or time.monotonic() passes deadline
    (None: timeout seconds after the first failure)."""
    while True:
        try:
            result = call()
            backoff.reset()
            return result
        except grpc.RpcError as err:
            if deadline is None:
                deadline = time.monotonic() + timeout
            if not is_transient(err) or time.monotonic() > deadline:
                raise
            delay = backoff.next_delay()
            log.info(
                "role=worker id=%s %s failed (%s); retrying in %.2fs",
                worker_id, what, err.code().name, delay,
            )  # fmt: skip
            time.sleep(delay)


class PushStream:
    """One open push RPC: pushes go in, their replies come back in the same order."""

    def __init__(self, method):
        self._requests: queue.Queue = queue.Queue()
        self._responses = method(iter(self._requests.get, None))

    def put(self, message) -> None:
        self._requests.put(message)

    def next_reply(self) -> pb.PushReply:
        return next(self._responses)

    def close(self) -> None:
        self._requests.put(None)
        self._responses.cancel()


def make_channel(wcfg: WorkerConfig) -> grpc.Channel:
    """A plaintext channel, or TLS when a CA is given (with a client certificate: mTLS)."""
    options = list(CHANNEL_OPTIONS)
    if not wcfg.tls_ca:
        return grpc.insecure_channel(wcfg.server, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(wcfg.tls_ca).read_bytes(),
        private_key=Path(wcfg.tls_key).read_bytes() if wcfg.tls_key else None,
        certificate_chain=Path(wcfg.tls_cert).read_bytes() if wcfg.tls_cert else None,
    )
    if wcfg.tls_server_name:
        options.append(("grpc.ssl_target_name_override", wcfg.tls_server_name))
    return grpc.secure_channel(wcfg.server, credentials, options=options)


class Client:
    """The parameter server as the worker sees it."""

    def __init__(self, wcfg: WorkerConfig, call_timeout: float = 30.0):
        self._channel = make_channel(wcfg)
        self._stub = pb_grpc.ParameterServerStub(self._channel)
        self._timeout = call_timeout
        token = read_token(wcfg.auth_token, wcfg.auth_token_file)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def connect(self, mode: str, name: str, worker_id: str, num_envs: int = 1) -> pb.ConnectReply:
        request = pb.ConnectRequest(
            mode=MODES[mode], name=name, worker_id=worker_id, num_envs=num_envs
        )
        return self._stub.Connect(
            request, timeout=self._timeout, wait_for_ready=True, metadata=self._metadata
        )

    def start_episode(
        self, worker_id: str, count: int = 1, held: list[int] | tuple = ()
    ) -> pb.StartEpisodeReply:
        """Up to count new episode leases; held: the leases still trained (others end)."""
        request = pb.StartEpisodeRequest(worker_id=worker_id, count=count, held_lease_ids=held)
        return self._stub.StartEpisode(request, timeout=self._timeout, metadata=self._metadata)

    def leave(self, worker_id: str) -> None:
        """Gives back this worker's lease; best effort, the server may be gone."""
        try:
            request = pb.LeaveRequest(worker_id=worker_id)
            self._stub.Leave(request, timeout=2.0, metadata=self._metadata)
        except grpc.RpcError as err:
            log.info("role=worker id=%s leave failed: %s", worker_id, err.code().name)

    def pull(self, known_version: int = 0, actor_only: bool = False) -> pb.PullWeightsReply:
        request = pb.PullWeightsRequest(known_version=known_version, actor_only=actor_only)
        return self._stub.PullWeights(request, timeout=self._timeout, metadata=self._metadata)

    def next_evaluation(self, after_env_steps: int) -> pb.NextEvaluationReply:
        request = pb.NextEvaluationRequest(after_env_steps=after_env_steps)
        return self._stub.NextEvaluation(request, timeout=self._timeout, metadata=self._metadata)

    def report_evaluation(self, report: pb.EvaluationReport) -> None:
        self._stub.ReportEvaluation(report, timeout=self._timeout, metadata=self._metadata)

    def push_stream(self, mode: str) -> PushStream:
        method = self._stub.PushSamples if mode == "data" else self._stub.PushGradients
        return PushStream(lambda requests: method(requests, metadata=self._metadata))

    def close(self) -> None:
        self._channel.close()
