"""The worker's loop: lease an episode, step it, push every t_max steps, take the new weights."""

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
from a3c.model import NumpyPolicy, env_spec, make_env, weight_shapes
from a3c.rollout import Rollout
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
    """One connection's worth of state: worker id, config, env, policy and push stream."""

    def __init__(
        self,
        client: Client,
        wcfg: WorkerConfig,
        identity: Identity,
        reply: pb.ConnectReply,
        rng: np.random.Generator,
        metrics: WorkerMetrics,
        env=None,
    ):
        self.client, self.wcfg, self.metrics = client, wcfg, metrics
        self.identity = identity
        self.worker_id = reply.worker_id
        self.incarnation = reply.incarnation
        self.cfg = TrainConfig.from_json(reply.config_json)
        self.env = env if env is not None else make_env(self.cfg.env_id)
        self.spec = env_spec(self.env, self.cfg.env_id)
        self.shapes = weight_shapes(self.spec, self.cfg)
        self.policy = NumpyPolicy(self.spec, self.cfg, rng)
        self.version = 0
        self.flat = np.zeros(0, np.float32)
        self.gradients = None
        if wcfg.mode == "gradient":
            from a3c.algo import configure_threads  # TensorFlow: gradient mode only
            from worker.gradients import LocalGradients

            configure_threads(wcfg.tf_threads)
            self.gradients = LocalGradients(self.spec, self.cfg)
        self.stream: PushStream = client.push_stream(wcfg.mode)
        self.backoff = Backoff()
        self.pending: collections.deque = collections.deque()  # pushes sent, not answered
        self.lease_valid = True

    def take_weights(self, message: pb.WeightSet) -> None:
        version, actor, critic = codec.weights_from_proto(message, *self.shapes)
        self.version = version
        self.policy.set_weights(actor)
        if self.gradients is not None:
            self.flat = np.concatenate([w.ravel() for w in (*actor, *critic)])

    def push(self, rollout: Rollout, lease_id: int, end: bool, ret: float, length: int) -> None:
        """Sends a push; waits for replies while max_in_flight pushes are unanswered."""
        self.identity.seq += 1
        header = pb.PushHeader(
            worker_id=self.worker_id,
            seq=self.identity.seq,
            base_version=self.version,
            lease_id=lease_id,
            episode_end=end,
            episode_return=ret if end else 0.0,
            episode_length=length if end else 0,
        )
        if self.gradients is None:
            message = pb.SamplePush(header=header, rollout=codec.rollout_to_proto(rollout))
        else:
            start = perf_counter()
            actor, critic = self.gradients.compute(self.version, self.flat, rollout)
            message = pb.GradientPush(
                header=header,
                actor_grads=codec.to_tensors(actor),
                critic_grads=codec.to_tensors(critic),
                steps=rollout.steps,
            )
            self.metrics.seconds.labels("gradients").inc(perf_counter() - start)
        start = perf_counter()
        self.pending.append(message)
        self.stream.put(message)  # a broken stream shows in _receive, which resends
        while len(self.pending) >= self.wcfg.max_in_flight:
            self._receive()
        self.metrics.seconds.labels("rpc").inc(perf_counter() - start)

    def drain(self) -> bool:
        """Waits for every push in flight; False if a push found its lease lost."""
        start = perf_counter()
        while self.pending:
            self._receive()
        self.metrics.seconds.labels("rpc").inc(perf_counter() - start)
        valid, self.lease_valid = self.lease_valid, True
        return valid

    def _receive(self) -> None:
        """Takes the reply of the oldest push in flight, and its weights."""
        reply = self._resend_on_failure(lambda: self.stream.next_reply())
        self.pending.popleft()
        self.lease_valid &= reply.lease_valid
        if reply.weights.version:
            self.take_weights(reply.weights)

    def _resend_on_failure(self, call):
        """call(), reading the push stream; on a transient failure reconnects and sends every
        push in flight again, in order (same seqs: the server applies each at most once)."""
        deadline: float | None = None
        while True:
            try:
                result = call()
                self.backoff.reset()
                return result
            except grpc.RpcError as err:
                if not is_transient(err):
                    raise
                self.metrics.rpc_errors.labels(err.code().name).inc()
                deadline = deadline or time.monotonic() + self.wcfg.connect_timeout
                if time.monotonic() > deadline:
                    raise
                self.stream.close()
                delay = self.backoff.next_delay()
                log.info(
                    "role=worker id=%s push failed (%s); resending in %.2fs",
                    self.worker_id, err.code().name, delay,
                )  # fmt: skip
                time.sleep(delay)
                reply = retry(
                    lambda: self.client.connect(self.wcfg.mode, self.wcfg.name, self.worker_id),
                    deadline, self.backoff, "reconnect",
                )  # fmt: skip
                if reply.incarnation != self.incarnation:
                    raise ServerRestarted from err
                self.stream = self.client.push_stream(self.wcfg.mode)
                for message in self.pending:
                    self.stream.put(message)

    def close(self) -> None:
        self.stream.close()


def run_episode(
    session: Session, lease_id: int, seed: int | None, stop: threading.Event
) -> tuple[float, int] | None:
    """Steps one leased episode, pushing every t_max steps; None if the lease was lost or
    stop was set (checked after each push)."""
    env, cfg = session.env, session.cfg
    obs, _ = env.reset(seed=seed)
    obs = np.asarray(obs, np.float32).reshape(-1)
    states, actions, rewards, log_probs = [], [], [], []
    ret, length = 0.0, 0
    env_seconds = inference_seconds = 0.0
    m = session.metrics
    while True:
        t0 = perf_counter()
        action, log_prob = session.policy.sample_with_log_prob(obs)
        t1 = perf_counter()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        inference_seconds += t1 - t0
        env_seconds += perf_counter() - t1
        next_obs = np.asarray(next_obs, np.float32).reshape(-1)
        states.append(obs)
        actions.append(action)
        rewards.append(float(reward))
        log_probs.append(log_prob)
        ret += float(reward)
        length += 1
        obs = next_obs
        end = bool(terminated or truncated)
        if len(rewards) == cfg.t_max or end:
            m.env_steps.inc(len(rewards))
            m.seconds.labels("env").inc(env_seconds)
            m.seconds.labels("inference").inc(inference_seconds)
            env_seconds = inference_seconds = 0.0
            rollout = Rollout(
                np.stack(states),
                np.stack(actions),
                np.asarray(rewards, np.float32),
                next_obs,
                bool(terminated),
                np.asarray(log_probs, np.float32),
            )
            session.push(rollout, lease_id, end, ret, length)
            settle = end or not session.lease_valid or stop.is_set()
            # An episode counts once its last push is answered: wait before leasing more.
            if settle and (not session.drain() or not end):
                return None
            states, actions, rewards, log_probs = [], [], [], []
            if end:
                m.episodes.inc()
                return ret, length


def train(session: Session, stop: threading.Event, first_seed: int | None) -> None:
    """Leases and trains episodes until the budget is spent (BudgetSpent) or stop is set."""
    seed = first_seed
    while not stop.is_set():
        start = perf_counter()
        reply = session.client.start_episode(session.worker_id)
        session.metrics.seconds.labels("rpc").inc(perf_counter() - start)
        if reply.status == pb.StartEpisodeReply.DONE:
            raise BudgetSpent
        if reply.status != pb.StartEpisodeReply.GRANTED:
            continue
        result = run_episode(session, reply.lease_id, seed, stop)
        seed = None  # seed the first reset only; later resets continue the env's stream
        if result is None and not stop.is_set():
            log.info(
                "role=worker id=%s lease %d lost; next episode", session.worker_id, reply.lease_id
            )


def run(wcfg: WorkerConfig, stop: threading.Event, metrics: WorkerMetrics) -> int:
    """The whole worker: connect, train, reconnect on transient errors; the exit code."""
    client = Client(wcfg)
    identity = Identity()
    worker_id = identity.worker_id
    backoff = Backoff()
    rng = np.random.default_rng(wcfg.seed)
    env = None
    first_seed: int | None = wcfg.seed
    failing_since: float | None = None  # start of the current run of failures
    try:
        while not stop.is_set():
            deadline = (failing_since or time.monotonic()) + wcfg.connect_timeout
            try:
                reply = retry(
                    lambda: client.connect(wcfg.mode, wcfg.name, worker_id),
                    deadline,
                    backoff,
                    "connect",
                )
                failing_since = None
                session = Session(client, wcfg, identity, reply, rng, metrics, env)
                env = session.env
                log.info(
                    "role=worker id=%s connected to %s mode=%s",
                    session.worker_id,
                    wcfg.server,
                    wcfg.mode,
                )
                try:
                    session.take_weights(client.pull().weights)
                    train(session, stop, first_seed)
                finally:
                    session.close()
                if stop.is_set():
                    client.leave(worker_id)
                    log.info("role=worker id=%s stopped by signal", worker_id)
                first_seed = None
            except BudgetSpent:
                if not wcfg.exit_when_done:
                    log.info("role=worker id=%s budget spent; idle until stopped", worker_id)
                    stop.wait()
                    return 0
                log.info("role=worker id=%s budget spent; exiting", session.worker_id)
                return 0
            except ServerRestarted:
                log.info("role=worker id=%s the server restarted; starting over", worker_id)
            except grpc.RpcError as err:
                metrics.rpc_errors.labels(err.code().name).inc()
                failing_since = failing_since or time.monotonic()
                if not is_transient(err) or time.monotonic() > deadline:
                    log.error("role=worker %s: %s", err.code().name, err.details())
                    return 1
                delay = backoff.next_delay()
                log.info(
                    "role=worker lost the server (%s); reconnecting in %.2fs",
                    err.code().name,
                    delay,
                )
                stop.wait(delay)
        return 0
    finally:
        client.close()
