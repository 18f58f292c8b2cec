"""Server metrics over real gRPC: exact counts, and an exposition promtool accepts."""

import shutil
import subprocess

import grpc
import pytest
from prometheus_client import generate_latest

from a3c.config import TrainConfig
from a3c.v1 import a3c_pb2 as pb
from tests.integration.test_service import connect
from tests.pushes import rollout, sample_push


def value(live, name, **labels):
    got = live.app.metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_counts_are_exact(live_server_factory):
    live = live_server_factory(TrainConfig(max_episodes=2))
    for _ in range(2):
        worker_id, lease = connect(live, pb.MODE_DATA)
        pushes = [
            sample_push(worker_id, lease, rollout(seed=i, steps=3), seq=i + 1, **end)
            for i, end in enumerate(
                [{}, {}, {"episode_end": True, "episode_return": -500.0, "episode_length": 9}]
            )
        ]
        replies = list(live.stub.PushSamples(iter(pushes)))
        assert all(r.lease_valid for r in replies)
    bad = sample_push(worker_id, lease, pb.RolloutBatch())
    with pytest.raises(grpc.RpcError):
        list(live.stub.PushSamples(iter([bad])))

    assert value(live, "a3c_server_updates_total", mode="data") == 6
    assert value(live, "a3c_server_updates_total", mode="gradient") == 0
    assert value(live, "a3c_server_rpc_requests_total", method="PushSamples", code="OK") == 6
    assert (
        value(live, "a3c_server_rpc_requests_total", method="PushSamples", code="INVALID_ARGUMENT")
        == 1
    )
    assert value(live, "a3c_server_pushes_refused_total", reason="invalid_tensor") == 1
    assert value(live, "a3c_server_episodes_total") == 2 == live.app.budget.completed
    assert value(live, "a3c_server_episode_budget") == 2
    assert value(live, "a3c_server_env_steps_total") == 18
    assert value(live, "a3c_server_weights_version") == 6
    assert value(live, "a3c_server_episode_return_mean20") == -500.0
    assert value(live, "a3c_server_learner_queue_wait_seconds_count", mode="data") == 6
    assert value(live, "a3c_server_learner_update_seconds_count", mode="data") == 6
    # Compute and apply are timed apart on 1 data-mode update in 20, the first included.
    assert value(live, "a3c_server_learner_compute_seconds_count", mode="data") == 1
    # Diagnostics: the first update not timed apart (the second), then at most 2 a second.
    diagnosed = value(live, "a3c_server_learner_diagnosed_updates_total", mode="data")
    assert 1 <= diagnosed <= 5
    assert value(live, "a3c_server_learner_entropy") != 0.0
    assert value(live, "a3c_server_learner_learning_rate", network="actor") > 0
    assert value(live, "a3c_server_learner_apply_seconds_count", mode="data") == 1
    assert value(live, "a3c_server_policy_lag_versions_count", mode="data") == 6
    # Each stream's pushes were based on version 0: lags 0,1,2 then 3,4,5.
    assert value(live, "a3c_server_policy_lag_versions_sum", mode="data") == 15
    assert value(live, "a3c_server_learner_busy_seconds_total") > 0
    assert value(live, "a3c_server_rpc_received_bytes_total", method="PushSamples") > 0
    # Every data-mode reply carries the actor's weights, and only the actor's.
    actor_bytes = 4 * live.app.trainer.n_actor
    weight_bytes = 4 * live.app.learner.snapshot()[1].size
    sent = value(live, "a3c_server_rpc_sent_bytes_total", method="PushSamples")
    assert 6 * actor_bytes < sent < 6 * weight_bytes


def test_a_weights_reply_is_serialized_once_per_version_and_form(live_server_factory):
    """Every reply with weights at one version carries the same bytes, serialized once
    per form: the whole set (gradient workers, pulls) and the actor alone (data mode)."""
    live = live_server_factory()
    pulls = [live.stub.PullWeights(pb.PullWeightsRequest(actor_only=a)) for a in (0, 1) * 3]
    assert value(live, "a3c_server_weight_encodings_total", form="full") == 1
    assert value(live, "a3c_server_weight_encodings_total", form="actor") == 1
    full, actor = pulls[0].weights, pulls[1].weights
    assert all(p.weights == full for p in pulls[0::2]) and all(
        p.weights == actor for p in pulls[1::2]
    )
    assert actor.actor == full.actor and full.critic and not actor.critic
    worker_id, lease = connect(live, pb.MODE_DATA)
    (reply,) = live.stub.PushSamples(iter([sample_push(worker_id, lease, rollout())]))
    assert reply.version == reply.weights.version == 1 and reply.lease_valid
    assert live.stub.PullWeights(pb.PullWeightsRequest(actor_only=True)).weights == reply.weights
    assert reply.weights.actor != actor.actor  # the update's
    assert value(live, "a3c_server_weight_encodings_total", form="actor") == 2
    assert value(live, "a3c_server_weight_encodings_total", form="full") == 1


def test_exposition_passes_promtool(live_server_factory):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make test installs it)")
    live = live_server_factory()
    worker_id, lease = connect(live, pb.MODE_DATA)
    push = sample_push(worker_id, lease, rollout())
    list(live.stub.PushSamples(iter([push])))
    text = generate_latest(live.app.metrics.registry)
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
