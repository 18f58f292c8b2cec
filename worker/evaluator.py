"""The evaluator (a3c-worker --role evaluator): at each of the server's evaluation points,
plays the deterministic policy of that point's weights on fixed seeds and reports the
returns. It trains nothing and holds no lease: the budget never counts its steps.

numpy only, and niced: on a shared machine it yields the cores to the learner and the
workers, whose time it must not take.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

import grpc
import numpy as np

from a3c import codec
from a3c.config import TrainConfig, WorkerConfig
from a3c.envs import env_of, env_spec
from a3c.evaluation import evaluate
from a3c.model import weight_shapes
from a3c.normalization import Normalizer
from a3c.policy import NumpyPolicy
from a3c.v1 import a3c_pb2 as pb
from worker.client import Backoff, Client, is_transient, retry

log = logging.getLogger("worker.evaluator")

POLL_SECONDS = 0.2
"""How often to ask again while the next point is not trained yet."""


def run_evaluator(wcfg: WorkerConfig, stop: threading.Event) -> int:
    """Evaluates every point until the server says DONE (0), or stop is set."""
    with contextlib.suppress(OSError):  # a container may forbid it
        os.nice(10)
    client = Client(wcfg)
    backoff = Backoff()
    name = wcfg.name or "evaluator"
    try:
        deadline = time.monotonic() + wcfg.connect_timeout
        reply = retry(lambda: client.connect("evaluator", name, ""), deadline, backoff,
                      "connect", name)  # fmt: skip
        cfg = TrainConfig.from_json(reply.config_json)
        if not cfg.eval_every:
            log.info("role=evaluator the server evaluates nothing (--eval-every 0); exiting")
            return 0
        env = env_of(cfg)
        spec = env_spec(env, cfg.env_id)
        actor_shapes = weight_shapes(spec, cfg)[0]
        policy = NumpyPolicy(spec, cfg, np.random.default_rng(0))  # the mean: no noise
        normalizer = Normalizer.of_config(spec.obs_dim, 1, cfg)
        log.info("role=evaluator connected to %s: every %d env steps, %d episodes",
                 wcfg.server, cfg.eval_every, cfg.eval_episodes)  # fmt: skip
        after = 0
        while not stop.is_set():
            try:
                point = client.next_evaluation(after)
            except grpc.RpcError as err:
                if not is_transient(err) or time.monotonic() > deadline:
                    raise
                stop.wait(backoff.next_delay())
                continue
            deadline = time.monotonic() + wcfg.connect_timeout
            backoff.reset()
            if point.status == pb.NextEvaluationReply.DONE:
                if not wcfg.exit_when_done:
                    log.info("role=evaluator every evaluation point reported; idle until stopped")
                    stop.wait()
                    return 0
                log.info("role=evaluator every evaluation point reported; exiting")
                return 0
            if point.status != pb.NextEvaluationReply.READY:
                stop.wait(POLL_SECONDS)
                continue
            version, actor, _ = codec.weights_from_proto(point.weights, actor_shapes, None)
            policy.set_weights(actor)
            if normalizer is not None:
                stats = codec.statistics_from_proto(point.weights.statistics, spec.obs_dim, "")
                normalizer.set(stats)
            returns, lengths = evaluate(env, policy, point.seed, point.episodes, normalizer)
            report = pb.EvaluationReport(
                env_steps=point.env_steps, version=version, returns=returns, lengths=lengths
            )
            try:
                client.report_evaluation(report)
            except grpc.RpcError as err:  # transient: the point is given out again
                if not is_transient(err):
                    raise
                continue
            after = point.env_steps
        return 0
    except grpc.RpcError as err:
        log.error("role=evaluator %s: %s", err.code().name, err.details())
        return 1
    finally:
        client.close()
