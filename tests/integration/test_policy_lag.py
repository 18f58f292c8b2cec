"""--max-policy-lag: pushes made from weights more than K versions old are acknowledged,
counted and not trained on; the rest are trained as usual."""

import numpy as np

from a3c.config import TrainConfig
from a3c.v1 import a3c_pb2 as pb
from tests.integration.test_service import connect, flat_weights
from tests.pushes import rollout, sample_push


def push_all(live, bases: list[int]) -> list[pb.PushReply]:
    """One data push per base version, in order, from one worker; the replies."""
    worker_id, lease = connect(live, pb.MODE_DATA)
    replies = []
    for seq, base in enumerate(bases, start=1):
        push = sample_push(worker_id, lease, rollout(seed=seq), seq=seq, base_version=base)
        (reply,) = list(live.stub.PushSamples(iter([push])))
        replies.append(reply)
    return replies


def sample(live, name, **labels):
    return live.app.metrics.registry.get_sample_value(name, labels or None)


def test_pushes_older_than_the_bound_are_dropped_and_counted(live_server_factory):
    live = live_server_factory(TrainConfig(max_episodes=5, max_policy_lag=1))
    # Lags at arrival (version now - base): 0, 1, 2 (dropped), 2 (dropped), 0, 1.
    replies = push_all(live, [0, 0, 0, 0, 2, 2])
    assert [r.version for r in replies] == [1, 2, 2, 2, 3, 4]
    assert all(r.lease_valid for r in replies), "a dropped push is still acknowledged"
    assert sample(live, "a3c_server_pushes_stale_total", mode="data") == 2
    assert sample(live, "a3c_server_updates_total", mode="data") == 4
    assert sample(live, "a3c_server_pushes_applied_total", mode="data") == 4
    assert sample(live, "a3c_server_env_steps_total") == 6 * 4, "their steps still count"


def test_a_large_bound_drops_nothing(live_server_factory):
    bases = [0, 0, 0, 0, 2, 2]
    bounded = live_server_factory(TrainConfig(max_episodes=5, max_policy_lag=4, seed=1))
    unbounded = live_server_factory(TrainConfig(max_episodes=5, max_policy_lag=0, seed=1))
    for live in (bounded, unbounded):
        assert [r.version for r in push_all(live, bases)] == [1, 2, 3, 4, 5, 6]
        assert sample(live, "a3c_server_pushes_stale_total", mode="data") == 0
    np.testing.assert_array_equal(flat_weights(bounded)[1], flat_weights(unbounded)[1])
