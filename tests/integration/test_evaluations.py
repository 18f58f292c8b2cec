"""The evaluator's RPCs over real gRPC: points at the promised env steps with the weights of
the update that reached them, each reported once; bad reports refused, changing nothing."""

import csv
import math

import grpc
import gymnasium as gym
import numpy as np
import pytest

from a3c import codec
from a3c.config import EVAL_SEED, TrainConfig
from a3c.envs import env_spec
from a3c.evaluation import evaluate
from a3c.model import weight_shapes
from a3c.policy import NumpyPolicy
from a3c.v1 import a3c_pb2 as pb
from tests.integration.test_normalization import push
from tests.integration.test_service import connect


def test_points_are_given_out_at_their_env_steps_and_reported_once(live_server_factory):
    live = live_server_factory(TrainConfig(max_episodes=4, eval_every=8, eval_episodes=2))
    stub = live.stub
    assert stub.NextEvaluation(pb.NextEvaluationRequest()).status == pb.NextEvaluationReply.WAIT
    worker_id, lease = connect(live, pb.MODE_DATA)
    list(stub.PushSamples(iter([push(worker_id, lease, seq) for seq in (1, 2, 3)])))  # 12 steps
    point = stub.NextEvaluation(pb.NextEvaluationRequest())
    assert point.status == pb.NextEvaluationReply.READY
    assert (point.env_steps, point.weights.version) == (8, 2)  # the update that reached 8
    assert (point.episodes, point.seed) == (2, EVAL_SEED)
    assert not point.weights.critic  # the actor is all it plays
    later = stub.NextEvaluation(pb.NextEvaluationRequest(after_env_steps=8))
    assert later.status == pb.NextEvaluationReply.WAIT

    def report(**fields):
        values = {"env_steps": 8, "version": 2, "returns": [-1.0, -2.0], "lengths": [5, 6]}
        return stub.ReportEvaluation(pb.EvaluationReport(**{**values, **fields}))

    for bad, code in (
        ({"returns": [-1.0]}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"returns": [math.nan, 1.0]}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"lengths": [0, 6]}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"version": 3}, grpc.StatusCode.FAILED_PRECONDITION),
        ({"env_steps": 16}, grpc.StatusCode.FAILED_PRECONDITION),
    ):
        with pytest.raises(grpc.RpcError) as err:
            report(**bad)
        assert err.value.code() == code, bad
    assert live.app.evaluations.pending == 1
    report()
    with pytest.raises(grpc.RpcError) as err:
        report()  # once
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert live.app.metrics.eval_return._value.get() == -1.5
    with open(live.app.run_dir / "evals.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["env_steps"], r["version"], r["mean"], r["episodes"]) for r in table] == [
        ("8", "2", "-1.5000", "2")
    ]
    # Two evaluations of the same weights on the same seeds play the same episodes.
    spec = env_spec(gym.make("Pendulum-v1"))
    cfg = TrainConfig()
    _, actor, _ = codec.weights_from_proto(point.weights, weight_shapes(spec, cfg)[0], None)
    results = []
    for _ in range(2):
        policy = NumpyPolicy(spec, cfg, np.random.default_rng())
        policy.set_weights(actor)
        results.append(evaluate(gym.make("Pendulum-v1"), policy, point.seed, 2))
    assert results[0] == results[1]


def test_a_server_that_evaluates_nothing_says_so(live_server_factory):
    live = live_server_factory(TrainConfig(max_episodes=2))
    with pytest.raises(grpc.RpcError) as err:
        live.stub.NextEvaluation(pb.NextEvaluationRequest())
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "--eval-every 0" in err.value.details()


def test_an_evaluator_far_behind_costs_at_most_max_pending_points(live_server_factory):
    """eval_every 4 and 24 pushes of 4 steps with no evaluator playing: the server holds
    MAX_PENDING points, not 24, keeps the one handed out, and counts those it skipped."""
    from server.evaluations import MAX_PENDING

    live = live_server_factory(TrainConfig(max_episodes=8, eval_every=4, eval_episodes=1))
    stub = live.stub
    worker_id, lease = connect(live, pb.MODE_DATA)
    list(stub.PushSamples(iter([push(worker_id, lease, 1)])))
    given = stub.NextEvaluation(pb.NextEvaluationRequest())
    assert given.env_steps == 4
    list(stub.PushSamples(iter([push(worker_id, lease, seq) for seq in range(2, 25)])))
    assert live.app.evaluations.pending == MAX_PENDING
    skipped = live.app.metrics.registry.get_sample_value("a3c_server_evaluations_skipped_total")
    assert skipped == 24 - MAX_PENDING
    stub.ReportEvaluation(
        pb.EvaluationReport(env_steps=4, version=given.weights.version, returns=[-1.0],
                            lengths=[200])
    )  # fmt: skip
    after = stub.NextEvaluation(pb.NextEvaluationRequest(after_env_steps=4))
    assert after.env_steps == 4 * (24 - MAX_PENDING + 2), "the oldest ones were dropped"
