"""Running statistics over real gRPC: merged by the server, versioned and sent with the
weights, checkpointed and resumed; bad increments refused and changing nothing."""

import grpc
import numpy as np
import pytest

from a3c import codec
from a3c.config import ServerConfig, TrainConfig
from a3c.envs import env_spec, make_env
from a3c.normalization import Moments, Statistics, merge_all
from a3c.v1 import a3c_pb2 as pb
from server import checkpoints
from server.app import App
from tests.integration.test_service import connect
from tests.pushes import rollout

RUNNING = {"obs_normalization": "running", "reward_normalization": "running"}


def increments(seed: int) -> Statistics:
    rng = np.random.default_rng(seed)
    return Statistics(
        Moments.of(rng.normal(size=(4, 3)) * [1, 1, 5]), Moments.of(rng.normal(size=(4, 1)))
    )


def push(worker_id, lease, seq, stats=None, end=False):
    ended = {"episode_return": -1.0, "episode_length": 8} if end else {}
    slot = pb.EnvSlot(lease_id=lease, steps=4, episode_end=end, **ended)
    head = pb.PushHeader(worker_id=worker_id, seq=seq, envs=[slot])
    if stats is not None:
        head.increments.CopyFrom(codec.statistics_to_proto(stats))
    return pb.SamplePush(header=head, rollouts=codec.batch_to_proto([rollout(seed=seq)]))


def served(live) -> tuple[int, Statistics]:
    weights = live.stub.PullWeights(pb.PullWeightsRequest(actor_only=True)).weights
    return weights.version, codec.statistics_from_proto(weights.statistics, 3, "statistics")


def assert_same(a: Statistics, b: Statistics, rtol=1e-6):
    for x, y in ((a.obs, b.obs), (a.returns, b.returns)):
        assert x.count == y.count
        np.testing.assert_allclose(x.mean, y.mean, rtol=rtol, atol=1e-6)
        np.testing.assert_allclose(x.m2, y.m2, rtol=rtol, atol=1e-6)


def test_the_server_merges_versions_checkpoints_and_resumes_the_statistics(live_server_factory):
    cfg = TrainConfig(max_episodes=4, **RUNNING)
    live = live_server_factory(cfg)
    version, stats = served(live)
    assert version == 0 and stats.obs.count == 0 and stats.returns.count == 0
    worker_id, lease = connect(live, pb.MODE_DATA)
    sent = [increments(1), increments(2)]
    replies = list(live.stub.PushSamples(iter(
        [push(worker_id, lease, 1, sent[0]), push(worker_id, lease, 2, sent[1], end=True)]
    )))  # fmt: skip
    # Each reply's weights carry the statistics of exactly the pushes trained into them.
    for i, reply in enumerate(replies):
        assert reply.weights.version == i + 1
        got = codec.statistics_from_proto(reply.weights.statistics, 3, "statistics")
        assert_same(got, merge_all(sent[: i + 1]), rtol=1e-5)  # float32 on the wire
    live.app.learner.stop()
    live.app.save()
    saved = live.app.learner.snapshot()[2]
    assert_same(saved, merge_all(sent))
    assert_same(checkpoints.read_statistics(live.app.run_dir), saved)

    run_dir = live.app.run_dir
    scfg = ServerConfig(port=0, metrics_port=0, run_dir=str(run_dir))
    resumed = App(cfg, scfg, env_spec(make_env(cfg.env_id)), run_dir)
    try:
        assert resumed.learner.version == 2
        assert_same(resumed.learner.snapshot()[2], saved)
    finally:
        resumed.runlog.close()
        resumed.summaries.close()


def bad_increments():
    good = increments(0)
    nan_mean = Statistics(Moments(4.0, np.array([np.nan, 0, 0]), good.obs.m2), good.returns)
    negative = Statistics(Moments(-4.0, good.obs.mean, good.obs.m2), good.returns)
    negative_m2 = Statistics(good.obs, Moments(4.0, good.returns.mean, np.array([-1.0])))
    yield "NaN", codec.statistics_to_proto(nan_mean)
    yield "count", codec.statistics_to_proto(negative)
    yield "m2", codec.statistics_to_proto(negative_m2)
    wrong_shape = codec.statistics_to_proto(good)
    wrong_shape.obs.mean.CopyFrom(codec.to_tensor(np.zeros(2)))
    yield "shape", wrong_shape
    infinite_count = codec.statistics_to_proto(good)
    infinite_count.returns.count = float("inf")
    yield "count", infinite_count


def test_bad_or_missing_increments_are_refused_and_change_nothing(live_server_factory):
    live = live_server_factory(TrainConfig(max_episodes=4, **RUNNING))
    worker_id, lease = connect(live, pb.MODE_DATA)
    before = live.app.learner.snapshot()
    for needle, message in bad_increments():
        bad = push(worker_id, lease, 1)
        bad.header.increments.CopyFrom(message)
        with pytest.raises(grpc.RpcError) as err:
            list(live.stub.PushSamples(iter([bad])))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert needle in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        list(live.stub.PushSamples(iter([push(worker_id, lease, 1)])))  # none at all
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "increments is required" in err.value.details()
    after = live.app.learner.snapshot()
    assert after[0] == before[0] and np.array_equal(after[1], before[1])
    assert after[2] is before[2]
    # The server keeps serving: a good push is trained.
    (reply,) = list(live.stub.PushSamples(iter([push(worker_id, lease, 1, increments(3))])))
    assert reply.version == 1
    # A server without running statistics refuses increments.
    plain = live_server_factory(TrainConfig(max_episodes=4))
    worker_id, lease = connect(plain, pb.MODE_DATA)
    with pytest.raises(grpc.RpcError) as err:
        list(plain.stub.PushSamples(iter([push(worker_id, lease, 1, increments(3))])))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert plain.app.learner.version == 0
