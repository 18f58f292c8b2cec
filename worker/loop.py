"""The worker's loop: lease episodes for its environments, step them, push every t_max steps
for all of them at once, take the new weights."""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from time import perf_counter

import grpc
import numpy as np

from a3c import codec
from a3c.config import TrainConfig, WorkerConfig
from a3c.envs import env_of, env_spec
from a3c.model import weight_shapes
from a3c.normalization import Normalizer
from a3c.policy import NumpyPolicy
from a3c.rollout import Collector, Piece, Window, env_seeds
from a3c.v1 import a3c_pb2 as pb
from worker.client import Backoff, Client, PushStream, is_transient, retry
from worker.metrics import WorkerMetrics

log = logging.getLogger("worker")


class BudgetSpent(Exception):
    """The server says every episode of the budget is trained."""


class ServerRestarted(Exception):
    """A reconnect found a new server process: pushes of the old one are void."""


class Identity:
    """What outlives a connection: the worker's id and the seq of its last push."""

    def __init__(self) -> None:
        self.worker_id = uuid.uuid4().hex[:12]
        self.seq = 0


class Session:
    """One connection's worth of state: worker id, config, policy, push stream, pushes in
    flight. The environments outlive it (made by the first session, passed to the next)."""

    def __init__(
        self,
        client: Client,
        wcfg: WorkerConfig,
        identity: Identity,
        reply: pb.ConnectReply,
        rng: np.random.Generator,
        metrics: WorkerMetrics,
        envs: list | None = None,
    ):
        self.client, self.wcfg, self.metrics = client, wcfg, metrics
        self.identity = identity
        self.worker_id = reply.worker_id
        self.incarnation = reply.incarnation
        self.cfg = TrainConfig.from_json(reply.config_json)
        self.num_envs = wcfg.num_envs or self.cfg.num_envs  # 0: as the server's preset says
        self.envs = envs or [env_of(self.cfg) for _ in range(self.num_envs)]
        self.spec = env_spec(self.envs[0], self.cfg.env_id)
        self.shapes = weight_shapes(self.spec, self.cfg)
        self.policy = NumpyPolicy(self.spec, self.cfg, rng)
        self.normalizer = (
            Normalizer(
                self.spec.obs_dim,
                self.num_envs,
                self.cfg.gamma,
                observations=self.cfg.obs_normalization == "running",
                rewards=self.cfg.reward_normalization == "running",
                obs_clip=self.cfg.obs_clip,
                reward_clip=self.cfg.reward_clip,
            )  # fmt: skip
            if self.cfg.running_normalization
            else None
        )
        self.version = 0
        self.flat = np.zeros(0, np.float32)
        self.gradients = None
        if wcfg.mode == "gradient":
            from a3c.trainer import configure_threads  # TensorFlow: gradient mode only
            from worker.gradients import LocalGradients

            configure_threads(wcfg.tf_threads)
            self.gradients = LocalGradients(self.spec, self.cfg)
        self.stream: PushStream | None = client.push_stream(wcfg.mode)  # None: broken
        self.backoff = Backoff()
        self.pending: collections.deque = collections.deque()  # pushes sent, not answered
        self.lost: set[int] = set()  # leases the server said are lost, not yet dropped

    def take_weights(self, message: pb.WeightSet) -> None:
        actor_shapes, critic_shapes = self.shapes
        critic_shapes = critic_shapes if self.gradients is not None else None
        version, actor, critic = codec.weights_from_proto(message, actor_shapes, critic_shapes)
        self.version = version
        self.policy.set_weights(actor)
        if self.normalizer is not None:
            self.normalizer.set(
                codec.statistics_from_proto(message.statistics, self.spec.obs_dim, "statistics")
            )
        if self.gradients is not None:
            self.flat = np.concatenate([w.ravel() for w in (*actor, *critic)])

    def pull(self) -> None:
        self.take_weights(self.client.pull(actor_only=self.gradients is None).weights)

    def push(self, pieces: list[Piece], window: Window | None = None) -> None:
        """Sends one push of every piece (window: theirs, as the Collector wrote them);
        waits for replies while max_in_flight pushes are unanswered."""
        self.identity.seq += 1
        header = pb.PushHeader(
            worker_id=self.worker_id,
            seq=self.identity.seq,
            base_version=self.version,
            envs=[
                pb.EnvSlot(
                    lease_id=p.lease_id,
                    steps=p.rollout.steps,
                    episode_end=p.episode_end,
                    episode_return=p.episode_return if p.episode_end else 0.0,
                    episode_length=p.episode_length if p.episode_end else 0,
                )
                for p in pieces
            ],
        )
        if self.normalizer is not None:
            header.increments.CopyFrom(codec.statistics_to_proto(self.normalizer.take()))
        rollouts = [p.rollout for p in pieces]
        if self.gradients is None:
            rows = rollouts if window is None else window
            message = pb.SamplePush(header=header, rollouts=codec.batch_to_proto(rows))
        else:
            start = perf_counter()
            actor, critic = self.gradients.compute(self.version, self.flat, rollouts)
            message = pb.GradientPush(
                header=header,
                actor_grads=codec.to_tensors(actor),
                critic_grads=codec.to_tensors(critic),
            )
            self.metrics.seconds.labels("gradients").inc(perf_counter() - start)
        start = perf_counter()
        self.pending.append((message, [p for p in pieces if p.episode_end]))
        self.stream.put(message)  # a broken stream shows in _receive, which resends
        while len(self.pending) >= self.wcfg.max_in_flight:
            self._receive()
        self.metrics.seconds.labels("rpc").inc(perf_counter() - start)

    def drain(self) -> None:
        """Waits for every push in flight."""
        start = perf_counter()
        while self.pending:
            self._receive()
        self.metrics.seconds.labels("rpc").inc(perf_counter() - start)

    def _receive(self) -> None:
        """Takes the reply of the oldest push in flight, and its weights."""
        timeout = self.wcfg.connect_timeout  # from the first failure: a reply may take long
        reply = retry(self._next_reply, None, self.backoff, "push", self.worker_id, timeout)
        _, ended = self.pending.popleft()
        lost = set(reply.lost_lease_ids)
        self.lost |= lost
        for piece in ended:
            if piece.lease_id not in lost:
                self.metrics.episodes.inc()
        if reply.weights.version:
            self.take_weights(reply.weights)

    def _next_reply(self) -> pb.PushReply:
        """One try, for `retry`: the oldest push's reply. After a broken stream it first
        reconnects and sends every push in flight again, in order (same seqs: the server
        applies each at most once); a new server process raises ServerRestarted."""
        try:
            if self.stream is None:
                reply = self.client.connect(
                    self.wcfg.mode, self.wcfg.name, self.worker_id, self.wcfg.num_envs
                )
                if reply.incarnation != self.incarnation:
                    raise ServerRestarted
                self.stream = self.client.push_stream(self.wcfg.mode)
                log.info(
                    "role=worker id=%s reconnected; resending %d pushes in flight",
                    self.worker_id, len(self.pending),
                )  # fmt: skip
                for message, _ in self.pending:
                    self.stream.put(message)
            return self.stream.next_reply()
        except grpc.RpcError as err:
            self.metrics.rpc_errors.labels(err.code().name).inc()
            if self.stream is not None:
                self.stream.close()
                self.stream = None
            raise

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def lease(session: Session, collector: Collector) -> bool:
    """Asks for a lease for each idle environment and starts their episodes; False when
    the server granted none."""
    idle = collector.idle
    start = perf_counter()
    reply = session.client.start_episode(session.worker_id, len(idle), collector.leases)
    session.metrics.seconds.labels("rpc").inc(perf_counter() - start)
    if reply.status == pb.StartEpisodeReply.DONE:
        raise BudgetSpent
    granted = list(reply.lease_ids) if reply.status == pb.StartEpisodeReply.GRANTED else []
    limits = list(reply.step_limits) or [0] * len(granted)
    for k, lease_id, limit in zip(idle, granted, limits):
        collector.start(k, lease_id, limit)
    return bool(granted)


def train(session: Session, collector: Collector, stop: threading.Event) -> None:
    """Trains episodes until the budget is spent (BudgetSpent) or stop is set.

    Idle environments ask for leases before a window; a window that ends an episode, or
    stopping, waits for every push in flight, since an episode counts once its last push
    is answered and a new lease must not be asked for before (budget.py)."""
    m = session.metrics
    ask = True  # the last ask for leases was granted, or episodes ended since
    while not stop.is_set():
        if collector.idle and (ask or not collector.leases):
            ask = lease(session, collector)
        if not collector.leases:
            continue
        pieces = collector.collect()
        m.env_steps.inc(sum(p.rollout.steps for p in pieces))
        m.seconds.labels("env").inc(collector.env_seconds)
        m.seconds.labels("inference").inc(collector.inference_seconds)
        collector.env_seconds = collector.inference_seconds = 0.0
        session.push(pieces, collector.window)
        if any(p.episode_end for p in pieces) or stop.is_set():
            session.drain()
            ask = True
        if session.lost:
            log.info(
                "role=worker id=%s leases %s lost; new episodes",
                session.worker_id, sorted(session.lost),
            )  # fmt: skip
            collector.drop(session.lost)
            session.lost.clear()
            ask = True
    collector.drop(collector.leases)


def run(wcfg: WorkerConfig, stop: threading.Event, metrics: WorkerMetrics) -> int:
    """The whole worker: connect, train, reconnect on transient errors; the exit code."""
    client = Client(wcfg)
    identity = Identity()
    worker_id = identity.worker_id
    backoff = Backoff()
    rng = np.random.default_rng(wcfg.seed)
    collector: Collector | None = None
    failing_since: float | None = None  # start of the current run of failures
    log.info("role=worker id=%s connecting to %s", worker_id, wcfg.server)
    try:
        while not stop.is_set():
            deadline = (failing_since or time.monotonic()) + wcfg.connect_timeout
            try:
                reply = retry(
                    lambda: client.connect(wcfg.mode, wcfg.name, worker_id, wcfg.num_envs),
                    deadline, backoff, "connect", worker_id,
                )  # fmt: skip
                failing_since = None
                session = Session(
                    client, wcfg, identity, reply, rng, metrics,
                    collector.envs if collector else None,
                )  # fmt: skip
                if collector is None:
                    seeds = env_seeds(wcfg.seed, session.num_envs)
                    metrics.envs.set(session.num_envs)
                    collector = Collector(session.envs, session.policy, session.cfg.t_max, seeds)
                # A new session starts every episode over: its first lease request (holding
                # none) gives back what this worker held.
                collector.policy, collector.t_max = session.policy, session.cfg.t_max
                collector.normalizer = session.normalizer
                collector.drop(collector.leases)
                log.info(
                    "role=worker id=%s connected to %s mode=%s envs=%d",
                    worker_id, wcfg.server, wcfg.mode, len(collector.envs),
                )  # fmt: skip
                try:
                    session.pull()
                    train(session, collector, stop)
                finally:
                    session.close()
                if stop.is_set():
                    client.leave(worker_id)
                    log.info("role=worker id=%s stopped by signal", worker_id)
            except BudgetSpent:
                if not wcfg.exit_when_done:
                    log.info("role=worker id=%s budget spent; idle until stopped", worker_id)
                    stop.wait()
                    return 0
                log.info("role=worker id=%s budget spent; exiting", worker_id)
                return 0
            except ServerRestarted:
                log.info("role=worker id=%s the server restarted; starting over", worker_id)
            except grpc.RpcError as err:
                metrics.rpc_errors.labels(err.code().name).inc()
                failing_since = failing_since or time.monotonic()
                if not is_transient(err) or time.monotonic() > deadline:
                    log.error("role=worker id=%s %s: %s", worker_id, err.code().name, err.details())
                    return 1
                delay = backoff.next_delay()
                log.info(
                    "role=worker id=%s lost the server (%s); reconnecting in %.2fs",
                    worker_id, err.code().name, delay,
                )  # fmt: skip
                stop.wait(delay)
        return 0
    finally:
        client.close()
