"""The gRPC edge of the parameter server: proto <-> domain, errors -> status codes."""

from __future__ import annotations

import concurrent.futures
import math
import queue
import threading
import uuid

import grpc
import numpy as np

from a3c import codec
from a3c.config import EVAL_SEED, TrainConfig
from a3c.envs import EnvSpec
from a3c.model import split_flat, weight_shapes
from a3c.v1 import a3c_pb2 as pb
from a3c.v1 import a3c_pb2_grpc as pb_grpc
from server.budget import Budget, Grant
from server.learner import Learner, LearnerStopped, Outcome, Push, Slot
from server.metrics import ServerMetrics
from server.workers import RESEND_WINDOW, Registry, WorkerInfo

MODES = {pb.MODE_GRADIENT: "gradient", pb.MODE_DATA: "data"}
NEXT_EVALUATION = {
    "ready": pb.NextEvaluationReply.READY,
    "wait": pb.NextEvaluationReply.WAIT,
    "done": pb.NextEvaluationReply.DONE,
}
GRANTS = {
    Grant.GRANTED: pb.StartEpisodeReply.GRANTED,
    Grant.WAIT: pb.StartEpisodeReply.WAIT,
    Grant.DONE: pb.StartEpisodeReply.DONE,
}


def weight_set(version: int, flat: np.ndarray, stats, shapes, actor_only=False) -> pb.WeightSet:
    """A model state as a WeightSet: the actor's and (unless actor_only) the critic's
    weights of a flat vector, and the running statistics (when kept)."""
    actor_shapes, critic_shapes = shapes
    n_actor = sum(math.prod(s) for s in actor_shapes)
    actor = split_flat(flat[:n_actor], actor_shapes)
    critic = [] if actor_only else split_flat(flat[n_actor:], critic_shapes)
    message = codec.weights_to_proto(version, actor, critic)
    if stats is not None:
        message.statistics.CopyFrom(codec.statistics_to_proto(stats))
    return message


def _field_prefix(field: int, length: int) -> bytes:
    """What precedes `length` bytes of protobuf field `field` (wire type 2, length
    delimited): its tag and the length, as varints."""
    out = bytearray()
    for value in ((field << 3) | 2, length):
        while value > 0x7F:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


class WeightCache:
    """The newest weights (and running statistics) serialized once per version, in both
    forms: the whole set and the actor alone (what data-mode workers use). A reply with
    weights is its other fields' bytes followed by these (a message's fields may come in
    any order), so every worker answered at one version gets the same bytes."""

    def __init__(self, learner: Learner, shapes: tuple[list, list], encodings=None):
        self._learner = learner
        self._shapes = shapes
        self._encodings = encodings  # Counter by form: WeightSets serialized
        self._lock = threading.Lock()
        self._version = -1
        self._encoded: dict[bool, bytes] = {}  # by actor_only, at _version

    def reply(self, head, actor_only: bool = False) -> bytes:
        """head (a reply message with its `weights` field unset) with the newest weights,
        serialized (server.handlers sends bytes as they are)."""
        field = head.DESCRIPTOR.fields_by_name["weights"].number
        weights = self._weights(actor_only)
        parts = (head.SerializeToString(), _field_prefix(field, len(weights)), weights)
        return b"".join(parts)

    def _weights(self, actor_only: bool) -> bytes:
        version, flat, stats = self._learner.snapshot()
        with self._lock:
            if self._version != version:
                self._encoded.clear()
                self._version = version
            encoded = self._encoded.get(actor_only)
            if encoded is None:
                message = weight_set(version, flat, stats, self._shapes, actor_only)
                encoded = self._encoded[actor_only] = message.SerializeToString()
                if self._encodings is not None:
                    self._encodings.labels("actor" if actor_only else "full").inc()
            return encoded


class CallEnd:
    """The end of one push stream, told by gRPC (context.add_callback), so that a push
    waiting for the learner wakes when either its result or the stream's end comes."""

    def __init__(self, context):
        self._lock = threading.Lock()
        self._waiting: set[threading.Event] = set()
        self.ended = not context.add_callback(self._end)  # False: already over

    def _end(self) -> None:
        with self._lock:
            self.ended = True
            for wake in self._waiting:
                wake.set()

    def wait(self, future: concurrent.futures.Future) -> bool:
        """Until future is done (True) or the stream has ended first (False)."""
        wake = threading.Event()
        future.add_done_callback(lambda _: wake.set())
        with self._lock:
            if self.ended:
                return future.done()
            self._waiting.add(wake)
        wake.wait()
        with self._lock:
            self._waiting.discard(wake)
        return future.done()


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
        evaluations=None,
    ):
        self._cfg, self._spec = cfg, spec
        self._learner, self._budget, self._registry = learner, budget, registry
        self._m = metrics
        self._shapes = weight_shapes(spec, cfg)
        self._weights = WeightCache(learner, self._shapes, metrics.weight_encodings)
        self._queue_timeout = queue_timeout
        self._episode_wait = episode_wait
        self._incarnation = uuid.uuid4().hex
        self._evaluations = evaluations  # server.evaluations.Evaluations

    def _refuse(self, context, code: grpc.StatusCode, reason: str, message: str):
        """Counts a refused push by reason and ends the call with code and message."""
        self._m.refused.labels(reason).inc()
        context.abort(code, message)

    def _worker(self, worker_id: str, context, push_mode: str = "") -> WorkerInfo:
        """The registered worker, or NOT_FOUND; for a push (push_mode set), counted as
        refused when unknown, and FAILED_PRECONDITION when it connected in the other mode."""
        info = self._registry.get(worker_id)
        if info is None:
            if push_mode:
                self._m.refused.labels("unknown_worker").inc()
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown worker id {worker_id!r}; Connect")
        if push_mode and info.mode != push_mode:
            self._refuse(
                context, grpc.StatusCode.FAILED_PRECONDITION, "wrong_mode",
                f"worker {worker_id!r} connected in {info.mode} mode; it cannot push "
                f"{'samples' if push_mode == 'data' else 'gradients'}",
            )  # fmt: skip
        return info

    def Connect(self, request, context):
        if request.mode == pb.MODE_EVALUATOR:  # pushes nothing: not a worker of the registry
            return pb.ConnectReply(
                config_json=self._cfg.to_json(), obs_dim=self._spec.obs_dim,
                action_dim=self._spec.action_dim, incarnation=self._incarnation,
            )  # fmt: skip
        if request.mode not in MODES:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "mode must be GRADIENT, DATA or EVALUATOR"
            )
        if len(request.worker_id) > 128:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "worker_id longer than 128 characters")
        info = self._registry.add(
            request.name,
            MODES[request.mode],
            request.worker_id,
            request.num_envs or self._cfg.num_envs,
        )
        return pb.ConnectReply(
            worker_id=info.worker_id,
            config_json=self._cfg.to_json(),
            obs_dim=self._spec.obs_dim,
            action_dim=self._spec.action_dim,
            incarnation=self._incarnation,
        )

    def StartEpisode(self, request, context):
        self._worker(request.worker_id, context)
        held = list(request.held_lease_ids)
        grant, leases = self._budget.request_limited(
            request.worker_id,
            wait=0.0 if held else self._episode_wait,  # one that trains on must not wait
            count=max(1, request.count),
            held=held,
        )
        if grant is Grant.DONE:
            self._registry.mark_done(request.worker_id)
        ids = [lease_id for lease_id, _ in leases]
        return pb.StartEpisodeReply(
            status=GRANTS[grant], lease_id=ids[0] if ids else 0, lease_ids=ids,
            step_limits=[limit for _, limit in leases],
        )  # fmt: skip

    def Leave(self, request, context):
        self._budget.release_worker(request.worker_id)
        self._registry.remove(request.worker_id)
        return pb.LeaveReply()

    def PullWeights(self, request, context):
        if request.known_version and request.known_version == self._learner.version:
            return pb.PullWeightsReply(unchanged=True)
        return self._weights.reply(pb.PullWeightsReply(), request.actor_only)

    def NextEvaluation(self, request, context):
        evaluations = self._evaluations
        if evaluations is None or not evaluations.every:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this server evaluates nothing (--eval-every 0)",
            )
        status, point = evaluations.next(request.after_env_steps)
        reply = pb.NextEvaluationReply(status=NEXT_EVALUATION[status])
        if point is not None:
            reply.env_steps = point.env_steps
            reply.weights.CopyFrom(
                weight_set(point.version, point.flat, point.statistics, self._shapes, True)
            )
            reply.episodes, reply.seed = self._cfg.eval_episodes, EVAL_SEED
        return reply

    def ReportEvaluation(self, request, context):
        returns, lengths = list(request.returns), list(request.lengths)
        want = self._cfg.eval_episodes
        if len(returns) != want or len(lengths) != want:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"an evaluation reports {want} returns and lengths (--eval-episodes); "
                f"got {len(returns)} and {len(lengths)}",
            )
        if not all(math.isfinite(r) for r in returns) or min(lengths) < 1:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "returns must be finite and lengths >= 1"
            )
        if self._evaluations is None or not self._evaluations.report(
            request.env_steps, request.version, returns, lengths
        ):
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no evaluation of version {request.version} at {request.env_steps} env steps "
                "is waiting (reported already, or never given out)",
            )
        return pb.EvaluationReportReply()

    def PushSamples(self, request_iterator, context):
        obs_dim, action_dim, t_max = self._spec.obs_dim, self._spec.action_dim, self._cfg.t_max
        end = CallEnd(context)
        for message in request_iterator:
            header = message.header
            info = self._worker(header.worker_id, context, "data")
            if not message.HasField("rollouts"):
                self._refuse(
                    context, grpc.StatusCode.INVALID_ARGUMENT, "single_rollout",
                    "SamplePush.rollouts (a RolloutBatch, one row per header.envs slot) is "
                    "required; the single-rollout form (SamplePush.rollout) is retired",
                )  # fmt: skip
            slots = self._slots(header, context)
            try:
                batch, has_log_probs = codec.batch_from_proto(
                    message.rollouts, [s.steps for s in slots], obs_dim, action_dim, t_max
                )
                wrong = self._spec.invalid_actions(batch.actions)
                if wrong:
                    raise codec.CodecError(f"rollout actions: {wrong}")
            except codec.CodecError as err:
                self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid_tensor", str(err))
            if not has_log_probs and self._cfg.off_policy == "vtrace":
                self._refuse(
                    context, grpc.StatusCode.INVALID_ARGUMENT, "missing_log_probs",
                    "rollouts.behaviour_log_probs is required: the server trains with V-trace",
                )  # fmt: skip
            push = self._push("data", info, header, slots, context)
            push.batch, push.has_log_probs = batch, has_log_probs
            yield self._apply(info, push, header.seq, context, end)

    def PushGradients(self, request_iterator, context):
        actor_shapes, critic_shapes = self._shapes
        end = CallEnd(context)
        for message in request_iterator:
            header = message.header
            info = self._worker(header.worker_id, context, "gradient")
            try:
                actor = codec.from_tensors(message.actor_grads, actor_shapes, "actor_grads")
                critic = codec.from_tensors(message.critic_grads, critic_shapes, "critic_grads")
            except codec.CodecError as err:
                self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid_tensor", str(err))
            slots = self._slots(header, context)
            push = self._push("gradient", info, header, slots, context)
            push.grads = np.concatenate([g.ravel() for g in (*actor, *critic)])
            yield self._apply(info, push, header.seq, context, end)

    def _slots(self, header, context) -> list[Slot]:
        """The push's rows, header.envs; INVALID_ARGUMENT for any that is wrong."""
        t_max = self._cfg.t_max
        if not header.envs:
            self._refuse(
                context, grpc.StatusCode.INVALID_ARGUMENT, "single_rollout",
                "a push names its rows in header.envs (one EnvSlot per rollout); the "
                "single-rollout form (header.lease_id and episode_*) is retired",
            )  # fmt: skip
        slots = [
            Slot(e.lease_id, e.steps, e.episode_end, e.episode_return, e.episode_length)
            for e in header.envs
        ]
        for slot in slots:
            if not 1 <= slot.steps <= t_max:
                self._refuse(
                    context, grpc.StatusCode.INVALID_ARGUMENT, "bad_steps",
                    f"steps is {slot.steps}; expected 1..{t_max} (t_max)",
                )  # fmt: skip
            if slot.episode_end and not (
                slot.episode_length >= 1 and np.isfinite(slot.episode_return)
            ):
                self._refuse(
                    context, grpc.StatusCode.INVALID_ARGUMENT, "bad_episode",
                    "episode_end needs a positive episode_length and a finite episode_return",
                )  # fmt: skip
            if not self._budget.granted(slot.lease_id):
                self._refuse(
                    context, grpc.StatusCode.INVALID_ARGUMENT, "bad_lease",
                    f"lease {slot.lease_id} was never granted; StartEpisode first",
                )  # fmt: skip
        if len({slot.lease_id for slot in slots}) < len(slots):
            self._refuse(
                context, grpc.StatusCode.INVALID_ARGUMENT, "bad_lease",
                "a lease appears in two rows of one push",
            )  # fmt: skip
        return slots

    def _push(self, mode: str, info: WorkerInfo, header, slots: list[Slot], context) -> Push:
        if header.base_version > self._learner.version:
            self._refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "future_version",
                f"base_version {header.base_version} is newer than the server's "
                f"{self._learner.version}",
            )
        push = Push(mode, info.worker_id, info.name, header.base_version, slots)
        push.increments = self._increments(header, context)
        return push

    def _increments(self, header, context):
        """The push's statistic increments: required with running normalization (refused
        when malformed), refused without it."""
        sent = header.HasField("increments")
        if not self._cfg.running_normalization:
            if sent:
                self._refuse(
                    context, grpc.StatusCode.INVALID_ARGUMENT, "bad_statistics",
                    "header.increments sent, but the server keeps no running statistics",
                )  # fmt: skip
            return None
        if not sent:
            self._refuse(
                context, grpc.StatusCode.INVALID_ARGUMENT, "bad_statistics",
                "header.increments is required: the server keeps running statistics "
                "(--obs-normalization or --reward-normalization running)",
            )  # fmt: skip
        try:
            return codec.statistics_from_proto(
                header.increments, self._spec.obs_dim, "header.increments"
            )
        except codec.CodecError as err:
            self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "bad_statistics", str(err))

    def _apply(self, info: WorkerInfo, push: Push, seq: int, context, end: CallEnd) -> pb.PushReply:
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
            except LearnerStopped:  # not applied: every lease of it is answered as lost
                lost = tuple(slot.lease_id for slot in push.slots)
                push.result.set_result(Outcome(self._learner.version, lost))
            except queue.Full:
                self._registry.forget_seq(info, seq)
                self._refuse(
                    context, grpc.StatusCode.RESOURCE_EXHAUSTED, "queue_full",
                    "learner queue full; back off",
                )  # fmt: skip
        if not end.wait(push.result):
            context.abort(grpc.StatusCode.CANCELLED, "call ended before the push was applied")
        try:
            outcome = push.result.result()
        except Exception as err:  # noqa: BLE001 - the learner's failure, reported
            context.abort(grpc.StatusCode.INTERNAL, f"learner failed: {err}")
        head = pb.PushReply(
            seq=seq, version=outcome.version, lease_valid=not outcome.lost,
            lost_lease_ids=outcome.lost,
        )  # fmt: skip
        return self._weights.reply(head, actor_only=push.mode == "data")
