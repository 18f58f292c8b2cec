"""Batched pushes (one row per environment, each under its own lease) over real gRPC: bad
ones are refused and change nothing; a lost lease voids the push but not the others'
episodes; a batch trains as its rollouts' summed gradients."""

import time

import grpc
import numpy as np
import pytest

from a3c import codec
from a3c.config import TrainConfig
from a3c.rollout import pad
from a3c.v1 import a3c_pb2 as pb
from tests.integration.test_service import flat_weights
from tests.pushes import rollout


def leases(live, count, mode=pb.MODE_DATA):
    reply = live.stub.Connect(pb.ConnectRequest(mode=mode, name="test", num_envs=count))
    granted = live.stub.StartEpisode(pb.StartEpisodeRequest(worker_id=reply.worker_id, count=count))
    assert granted.status == pb.StartEpisodeReply.GRANTED
    assert len(granted.lease_ids) == count and granted.lease_id == granted.lease_ids[0]
    return reply.worker_id, list(granted.lease_ids)


def batched(worker_id, slots, rollouts, seq=1):
    header = pb.PushHeader(worker_id=worker_id, seq=seq, base_version=0, envs=slots)
    return pb.SamplePush(header=header, rollouts=codec.batch_to_proto(rollouts))


def slot(lease, steps=4, **kw):
    return pb.EnvSlot(lease_id=lease, steps=steps, **kw)


def bad_batched_pushes(worker_id, ids):
    a, b = ids
    two = [rollout(seed=1), rollout(seed=2)]
    nan = [rollout(seed=1), rollout(seed=2)]
    nan[1].states[2, 0] = np.nan
    short = [rollout(seed=1, steps=3), rollout(seed=2, steps=3)]
    no_rows = pb.SamplePush(
        header=pb.PushHeader(worker_id=worker_id, seq=1), rollouts=codec.batch_to_proto(two)
    )
    lost_terminated = batched(worker_id, [slot(a), slot(b)], two)
    del lost_terminated.rollouts.terminated[1]
    return {
        "more rows than slots": batched(worker_id, [slot(a)], two),
        "more slots than rows": batched(worker_id, [slot(a), slot(b), slot(a)], two),
        "steps beyond t_max": batched(worker_id, [slot(a, 5), slot(b)], two),
        "steps beyond the rows' T": batched(worker_id, [slot(a, 4), slot(b, 3)], short),
        "zero steps": batched(worker_id, [slot(a, 0), slot(b)], two),
        "NaN": batched(worker_id, [slot(a), slot(b)], nan),
        "terminated of one row missing": lost_terminated,
        "episode end with no length": batched(worker_id, [slot(a, episode_end=True), slot(b)], two),
        "a lease never granted": batched(worker_id, [slot(a), slot(999)], two),
        "one lease in two rows": batched(worker_id, [slot(a), slot(a)], two),
        "rollouts with no envs": no_rows,
    }


def test_bad_batched_pushes_are_refused_and_change_nothing(live_server_factory):
    live = live_server_factory()
    worker_id, ids = leases(live, 2)
    before = flat_weights(live)
    for what, push in bad_batched_pushes(worker_id, ids).items():
        with pytest.raises(grpc.RpcError) as err:
            list(live.stub.PushSamples(iter([push])))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert err.value.details(), what
    after = flat_weights(live)
    assert after[0] == before[0]
    np.testing.assert_array_equal(after[1], before[1])
    assert live.app.runlog.env_steps == 0

    # Still serving: a good batch of two rows (3 and 4 steps) is one update.
    good = batched(worker_id, [slot(ids[0], 3), slot(ids[1], 4)], [rollout(1, 3), rollout(2)])
    (reply,) = list(live.stub.PushSamples(iter([good])))
    assert reply.version == 1 and reply.lease_valid and not reply.lost_lease_ids
    assert live.app.runlog.env_steps == 7
    assert len(reply.weights.actor) > 0 and len(reply.weights.critic) == 0, "actor only"


def test_a_batch_trains_as_the_sum_of_its_rollouts(live_server_factory):
    cfg = TrainConfig(max_episodes=10, seed=3)
    live = live_server_factory(cfg)
    rollouts = [rollout(seed=s, steps=2 + s, terminated=s == 1) for s in range(3)]
    trainer = live.app.trainer
    want = trainer.gradients(pad(rollouts, cfg.t_max))
    np.testing.assert_allclose(
        want, np.sum([trainer.gradients(pad([r], cfg.t_max)) for r in rollouts], 0), atol=1e-5
    )
    worker_id, ids = leases(live, 3)
    _, w0 = flat_weights(live)
    slots = [slot(lease, r.steps) for lease, r in zip(ids, rollouts)]
    (reply,) = list(live.stub.PushSamples(iter([batched(worker_id, slots, rollouts)])))
    _, w1 = flat_weights(live)
    # A twin server (same seed, same weights) given the summed gradients by hand makes w1.
    twin = live_server_factory(cfg)
    np.testing.assert_array_equal(flat_weights(twin)[1], w0)
    np.testing.assert_allclose(twin.app.trainer.gradient_step(want), w1, atol=1e-5)
    assert reply.version == 1


def test_a_lost_lease_voids_the_push_but_the_other_episodes_count(live_server_factory):
    timeout = 0.3
    live = live_server_factory(TrainConfig(max_episodes=2), lease_timeout=timeout)
    worker_id, (a, b) = leases(live, 2)
    # a falls silent past the lease timeout while b is renewed; the budget is full, so
    # another worker's request reclaims a.
    time.sleep(timeout * 1.5)
    assert live.app.budget.renew(b, worker_id)
    other = live.stub.Connect(pb.ConnectRequest(mode=pb.MODE_DATA, name="other")).worker_id
    got = live.stub.StartEpisode(pb.StartEpisodeRequest(worker_id=other, count=2))
    assert len(got.lease_ids) == 1, "only a was given out again"
    end = slot(b, 4, episode_end=True, episode_return=-50.0, episode_length=200)
    push = batched(worker_id, [slot(a), end], [rollout(1), rollout(2, terminated=True)])
    (reply,) = list(live.stub.PushSamples(iter([push])))
    assert not reply.lease_valid and list(reply.lost_lease_ids) == [a]
    assert reply.version == 0, "nothing of a push with a lost lease is trained"
    assert live.app.budget.completed == 1, "b's episode still counts"
    assert live.app.runlog.env_steps == 4, "b's steps count, a's do not"
