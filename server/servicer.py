"""The gRPC edge of the parameter server: proto <-> domain, errors -> status codes."""

from __future__ import annotations

import queue
import threading
import uuid

import grpc
import numpy as np

from a3c import codec
from a3c.algo import split_flat
from a3c.config import TrainConfig
from a3c.model import EnvSpec, weight_shapes
from a3c.rollout import pad
from a3c.v1 import a3c_pb2 as pb
from a3c.v1 import a3c_pb2_grpc as pb_grpc
from server.budget import Budget, Grant
from server.learner import Learner, LearnerStopped, Push
from server.metrics import ServerMetrics
from server.workers import RESEND_WINDOW, Registry, WorkerInfo

MODES = {pb.MODE_GRADIENT: "gradient", pb.MODE_DATA: "data"}
GRANTS = {
    Grant.GRANTED: pb.StartEpisodeReply.GRANTED,
    Grant.WAIT: pb.StartEpisodeReply.WAIT,
    Grant.DONE: pb.StartEpisodeReply.DONE,
}


class WeightCache:
    """The newest weights as a WeightSet message, built once per version."""

    def __init__(self, learner: Learner, shapes: tuple[list, list]):
        self._learner = learner
        self._actor_shapes, self._critic_shapes = shapes
        self._n_actor = sum(int(np.prod(s)) for s in self._actor_shapes)
        self._lock = threading.Lock()
        self._cached: pb.WeightSet | None = None

    def get(self) -> pb.WeightSet:
        version, flat = self._learner.snapshot()
        with self._lock:
            if self._cached is None or self._cached.version != version:
                actor = split_flat(flat[: self._n_actor], self._actor_shapes)
                critic = split_flat(flat[self._n_actor :], self._critic_shapes)
                self._cached = codec.weights_to_proto(version, actor, critic)
            return self._cached


class ParameterServer(pb_grpc.ParameterServerServicer):
    """Thin servicer over the learner, the budget and the worker registry."""

    def __init__(
        self,
        cfg: TrainConfig,
        spec: EnvSpec,
        learner: Learner,
        budget: Budget,
        registry: Registry,
        metrics: ServerMetrics,
        queue_timeout: float = 30.0,
        episode_wait: float = 2.0,
    ):
        self._cfg, self._spec = cfg, spec
        self._learner, self._budget, self._registry = learner, budget, registry
        self._m = metrics
        self._shapes = weight_shapes(spec, cfg)
        self._weights = WeightCache(learner, self._shapes)
        self._queue_timeout = queue_timeout
        self._episode_wait = episode_wait
        self._incarnation = uuid.uuid4().hex

    def _refuse(self, context, code: grpc.StatusCode, reason: str, message: str):
        """Counts a refused push by reason and ends the call with code and message."""
        self._m.refused.labels(reason).inc()
        context.abort(code, message)

    def _worker(self, worker_id: str, context, push: bool = False) -> WorkerInfo:
        """The registered worker, or NOT_FOUND (counted as a refused push when push)."""
        info = self._registry.get(worker_id)
        if info is None:
            if push:
                self._m.refused.labels("unknown_worker").inc()
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown worker id {worker_id!r}; Connect")
        return info

    def Connect(self, request, context):
        if request.mode not in MODES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "mode must be GRADIENT or DATA")
        if len(request.worker_id) > 128:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "worker_id longer than 128 characters")
        info = self._registry.add(request.name, MODES[request.mode], request.worker_id)
        return pb.ConnectReply(
            worker_id=info.worker_id,
            config_json=self._cfg.to_json(),
            obs_dim=self._spec.obs_dim,
            action_dim=self._spec.action_dim,
            incarnation=self._incarnation,
        )

    def StartEpisode(self, request, context):
        self._worker(request.worker_id, context)
        grant, lease_id = self._budget.request(request.worker_id, self._episode_wait)
        if grant is Grant.DONE:
            self._registry.mark_done(request.worker_id)
        return pb.StartEpisodeReply(status=GRANTS[grant], lease_id=lease_id)

    def Leave(self, request, context):
        self._budget.release_worker(request.worker_id)
        self._registry.remove(request.worker_id)
        return pb.LeaveReply()

    def PullWeights(self, request, context):
        if request.known_version and request.known_version == self._learner.version:
            return pb.PullWeightsReply(unchanged=True)
        return pb.PullWeightsReply(weights=self._weights.get())

    def PushSamples(self, request_iterator, context):
        for message in request_iterator:
            info = self._worker(message.header.worker_id, context, push=True)
            try:
                rollout = codec.rollout_from_proto(
                    message.rollout, self._spec.obs_dim, self._spec.action_dim, self._cfg.t_max
                )
            except codec.CodecError as err:
                self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid_tensor", str(err))
            if rollout.log_probs is None and self._cfg.off_policy == "vtrace":
                self._refuse(
                    context, grpc.StatusCode.INVALID_ARGUMENT, "missing_log_probs",
                    "rollout.behaviour_log_probs is required: the server trains with V-trace",
                )  # fmt: skip
            push = self._push(info, message.header, rollout.steps, context)
            push.batch = pad([rollout], self._cfg.t_max)
            yield self._apply(info, push, message.header.seq, context)

    def PushGradients(self, request_iterator, context):
        actor_shapes, critic_shapes = self._shapes
        for message in request_iterator:
            info = self._worker(message.header.worker_id, context, push=True)
            try:
                actor = codec.from_tensors(message.actor_grads, actor_shapes, "actor_grads")
                critic = codec.from_tensors(message.critic_grads, critic_shapes, "critic_grads")
            except codec.CodecError as err:
                self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid_tensor", str(err))
            if not 1 <= message.steps <= self._cfg.t_max:
                self._refuse(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "bad_steps",
                    f"steps is {message.steps}; expected 1..{self._cfg.t_max} (t_max)",
                )
            push = self._push(info, message.header, message.steps, context)
            push.grads = np.concatenate([g.ravel() for g in (*actor, *critic)])
            yield self._apply(info, push, message.header.seq, context)

    def _push(self, info: WorkerInfo, header, steps: int, context) -> Push:
        if header.base_version > self._learner.version:
            self._refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "future_version",
                f"base_version {header.base_version} is newer than the server's "
                f"{self._learner.version}",
            )
        if header.episode_end and not (
            header.episode_length >= 1 and np.isfinite(header.episode_return)
        ):
            self._refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "bad_episode",
                "episode_end needs a positive episode_length and a finite episode_return",
            )
        return Push(
            worker_id=info.worker_id,
            worker_name=info.name,
            lease_id=header.lease_id,
            base_version=header.base_version,
            steps=steps,
            episode_end=header.episode_end,
            episode_return=header.episode_return,
            episode_length=header.episode_length,
        )

    def _apply(self, info: WorkerInfo, push: Push, seq: int, context) -> pb.PushReply:
        if seq < 1:
            self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "bad_seq", "seq must be >= 1")
        new, earlier = self._registry.claim_seq(info, seq, push)
        if not new:
            if earlier is None:
                self._refuse(
                    context, grpc.StatusCode.INVALID_ARGUMENT, "bad_seq",
                    f"seq {seq} is older than this worker's last {RESEND_WINDOW} pushes "
                    f"(last {info.last_seq})",
                )  # fmt: skip
            self._m.resent.inc()
            push = earlier  # answered as the first time; applied once
        else:
            try:
                self._learner.submit(push, self._queue_timeout)
            except LearnerStopped:
                push.version = self._learner.version
                push.done.set()  # not applied: answered with lease_valid false
            except queue.Full:
                self._registry.forget_seq(info, seq)
                self._refuse(
                    context, grpc.StatusCode.RESOURCE_EXHAUSTED, "queue_full",
                    "learner queue full; back off",
                )  # fmt: skip
        while not push.done.wait(0.5):
            if not context.is_active():
                context.abort(grpc.StatusCode.CANCELLED, "call ended before the push was applied")
        if push.error is not None:
            context.abort(grpc.StatusCode.INTERNAL, f"learner failed: {push.error}")
        return pb.PushReply(
            seq=seq, version=push.version, lease_valid=push.applied, weights=self._weights.get()
        )
