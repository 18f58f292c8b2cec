"""The parameter server over real gRPC on loopback: both modes agree; bad input changes nothing."""

import dataclasses

import grpc
import numpy as np
import pytest

from a3c import codec
from a3c.config import TrainConfig
from a3c.model import split_flat, weight_shapes
from a3c.policy import NumpyPolicy, gaussian_log_prob
from a3c.rollout import Rollout
from a3c.v1 import a3c_pb2 as pb
from tests.pushes import gradient_push, header, rollout, sample_push
from worker.gradients import LocalGradients


def connect(live, mode):
    reply = live.stub.Connect(pb.ConnectRequest(mode=mode, name="test"))
    lease = live.stub.StartEpisode(pb.StartEpisodeRequest(worker_id=reply.worker_id))
    assert lease.status == pb.StartEpisodeReply.GRANTED
    return reply.worker_id, lease.lease_id


def flat_weights(live):
    weights = live.stub.PullWeights(pb.PullWeightsRequest()).weights
    arrays = [codec.from_tensor(t) for t in (*weights.actor, *weights.critic)]
    return weights.version, np.concatenate([a.ravel() for a in arrays])


def test_the_two_modes_make_the_same_update(live_server_factory):
    cfg = TrainConfig(max_episodes=10, seed=3)
    data_server, grad_server = live_server_factory(cfg), live_server_factory(cfg)
    v0, w0 = flat_weights(data_server)
    assert np.array_equal(w0, flat_weights(grad_server)[1]), "same seed, same initial weights"
    r = rollout(seed=5, steps=3)

    worker_id, lease = connect(data_server, pb.MODE_DATA)
    push = sample_push(worker_id, lease, r)
    (data_reply,) = list(data_server.stub.PushSamples(iter([push])))

    spec, _ = data_server.app.servicer._spec, None
    actor_g, critic_g = LocalGradients(spec, cfg).compute(v0, w0, [r])
    worker_id, lease = connect(grad_server, pb.MODE_GRADIENT)
    push = gradient_push(worker_id, lease, actor_g, critic_g, steps=r.steps)
    (grad_reply,) = list(grad_server.stub.PushGradients(iter([push])))

    assert data_reply.version == grad_reply.version == 1
    assert data_reply.lease_valid and grad_reply.lease_valid
    _, w_data = flat_weights(data_server)
    _, w_grad = flat_weights(grad_server)
    assert not np.allclose(w_data, w0), "the update changed the weights"
    np.testing.assert_allclose(w_data, w_grad, atol=1e-5)


def test_discrete_actions_make_the_same_update_in_both_modes_and_bad_ones_change_nothing(
    live_server_factory,
):
    """CartPole-v1 (Discrete(2)): a data push and the gradient push of the same rollout make
    the same update; actions that are not whole numbers 0..1 are INVALID_ARGUMENT."""
    cfg = TrainConfig(env_id="CartPole-v1", max_episodes=10, seed=3)
    data_server, grad_server = live_server_factory(cfg), live_server_factory(cfg)
    v0, w0 = flat_weights(data_server)
    rng = np.random.default_rng(2)
    r = Rollout(
        rng.normal(size=(5, 4)).astype(np.float32),
        np.array([[0], [1], [1], [0], [1]], np.float32),
        np.ones(5, np.float32),
        rng.normal(size=4).astype(np.float32),
        True,
    )
    worker_id, lease = connect(data_server, pb.MODE_DATA)
    for bad in (1.5, 2.0, -1.0):
        actions = r.actions.copy()
        actions[2, 0] = bad
        sent = sample_push(worker_id, lease, dataclasses.replace(r, actions=actions))
        with pytest.raises(grpc.RpcError) as err:
            list(data_server.stub.PushSamples(iter([sent])))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "whole numbers 0..1" in err.value.details()
    version, unchanged = flat_weights(data_server)
    assert version == v0 and np.array_equal(unchanged, w0)
    push = sample_push(worker_id, lease, r)
    (data_reply,) = list(data_server.stub.PushSamples(iter([push])))
    spec = data_server.app.servicer._spec
    assert spec.discrete and spec.n_actions == 2
    actor_g, critic_g = LocalGradients(spec, cfg).compute(v0, w0, [r])
    worker_id, lease = connect(grad_server, pb.MODE_GRADIENT)
    push = gradient_push(worker_id, lease, actor_g, critic_g, steps=r.steps)
    (grad_reply,) = list(grad_server.stub.PushGradients(iter([push])))
    assert data_reply.version == grad_reply.version == 1
    _, w_data = flat_weights(data_server)
    assert not np.allclose(w_data, w0)
    np.testing.assert_allclose(w_data, flat_weights(grad_server)[1], atol=1e-5)


def test_vtrace_weighs_samples_by_their_log_probs_and_requires_them(live_server_factory):
    """A V-trace server given the current policy's log-probs makes the plain server's
    update; given other log-probs, another; given none, INVALID_ARGUMENT and no change."""
    plain = live_server_factory(TrainConfig(max_episodes=10, seed=3))
    cfg = TrainConfig(max_episodes=10, seed=3, off_policy="vtrace")
    on_policy, stale = live_server_factory(cfg), live_server_factory(cfg)
    spec = plain.app.servicer._spec
    _, w0 = flat_weights(plain)
    actor_shapes = weight_shapes(spec, cfg)[0]
    policy = NumpyPolicy(spec, cfg, np.random.default_rng(0))
    policy.set_weights(split_flat(w0, actor_shapes))
    r = rollout(seed=5, steps=3)
    log_probs = policy.log_prob_batch(r.states, r.actions)
    assert log_probs[0] == pytest.approx(gaussian_log_prob(r.actions[0], *(
        x[0] for x in policy.mean_std_batch(r.states[:1])
    )))  # fmt: skip

    def push(live, sent):
        worker_id, lease = connect(live, pb.MODE_DATA)
        message = sample_push(worker_id, lease, sent)
        return list(live.stub.PushSamples(iter([message])))

    push(plain, r)
    push(on_policy, dataclasses.replace(r, log_probs=log_probs))
    # pi/mu = e^-1, e^1 and e^-0.5, as if the samples came from older weights.
    push(stale, dataclasses.replace(r, log_probs=log_probs + np.float32([1.0, -1.0, 0.5])))
    with pytest.raises(grpc.RpcError) as err:
        push(stale, r)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "behaviour_log_probs is required" in err.value.details()
    _, want = flat_weights(plain)
    np.testing.assert_allclose(flat_weights(on_policy)[1], want, atol=1e-5)
    version, got = flat_weights(stale)
    assert version == 1
    assert not np.allclose(got, want, atol=1e-5), "the importance weights changed the update"


def test_pull_weights_unchanged_and_empty_request(live_server_factory):
    live = live_server_factory()
    reply = live.stub.PullWeights(pb.PullWeightsRequest())
    # The default actor: 4 Dense layers (kernel, bias) and one log-std vector.
    assert not reply.unchanged and len(reply.weights.actor) == 9
    version = reply.weights.version
    assert version == 0
    worker_id, lease = connect(live, pb.MODE_DATA)
    push = sample_push(worker_id, lease, rollout())
    list(live.stub.PushSamples(iter([push])))
    assert live.stub.PullWeights(pb.PullWeightsRequest(known_version=1)).unchanged
    assert live.stub.PullWeights(pb.PullWeightsRequest()).weights.version == 1


def bad_sample_pushes(worker_id, lease):
    def batch(**fields):
        message = codec.batch_to_proto([rollout()])
        for name, value in fields.items():
            getattr(message, name).CopyFrom(value)
        return message

    garbage = batch()
    garbage.actions.data = b"\x01\x02\x03"
    return {
        "wrong shape": sample_push(
            worker_id, lease, batch(states=codec.to_tensor(np.zeros((1, 4, 2))))
        ),
        "NaN": sample_push(
            worker_id, lease, batch(rewards=codec.to_tensor(np.array([[0, np.nan, 0, 0]])))
        ),
        "too long": sample_push(worker_id, lease, rollout(steps=5)),
        "garbage bytes": sample_push(worker_id, lease, garbage),
        "no rollouts": pb.SamplePush(header=header(worker_id, lease)),
        "no rows": pb.SamplePush(
            header=pb.PushHeader(worker_id=worker_id, seq=1), rollouts=batch()
        ),
        "future version": sample_push(worker_id, lease, rollout(), base_version=99),
    }


def test_bad_pushes_are_refused_and_change_nothing(live_server_factory):
    live = live_server_factory()
    worker_id, lease = connect(live, pb.MODE_DATA)
    before = flat_weights(live)
    for what, push in bad_sample_pushes(worker_id, lease).items():
        with pytest.raises(grpc.RpcError) as err:
            list(live.stub.PushSamples(iter([push])))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert err.value.details(), what

    spec, cfg = live.app.servicer._spec, TrainConfig()
    actor_shapes, critic_shapes = weight_shapes(spec, cfg)
    zeros = [np.zeros(s, np.float32) for s in actor_shapes]
    good_grads = gradient_push(
        worker_id, lease, zeros, [np.zeros(s, np.float32) for s in critic_shapes]
    )
    with pytest.raises(grpc.RpcError) as err:  # a data-mode worker pushing gradients
        list(live.stub.PushGradients(iter([good_grads])))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    data_worker = worker_id, lease
    worker_id, lease = connect(live, pb.MODE_GRADIENT)
    bad_grads = {
        "missing tensor": gradient_push(worker_id, lease, zeros[:-1], []),
        "Inf": gradient_push(
            worker_id,
            lease,
            [np.full(s, np.inf, np.float32) for s in actor_shapes],
            [np.zeros(s, np.float32) for s in critic_shapes],
        ),  # fmt: skip
    }
    for what, push in bad_grads.items():
        with pytest.raises(grpc.RpcError) as err:
            list(live.stub.PushGradients(iter([push])))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what

    after = flat_weights(live)
    assert after[0] == before[0]
    np.testing.assert_array_equal(after[1], before[1])
    assert live.app.runlog.env_steps == 0

    # Still serving: a good push is applied.
    push = sample_push(*data_worker, rollout())
    (reply,) = list(live.stub.PushSamples(iter([push])))
    assert reply.version == 1 and reply.lease_valid


def field(number: int, payload: bytes | int) -> bytes:
    """One protobuf field on the wire: a varint (int) or length-delimited bytes."""

    def varint(n: int) -> bytes:
        out = b""
        while True:
            out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                return out

    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_the_retired_single_rollout_form_is_refused_naming_the_batched_one(live_server_factory):
    """Bytes as a client of the single-rollout form sends them (SamplePush.rollout = 2,
    PushHeader.lease_id = 4 and episode_* = 5-7; GradientPush.steps = 4): INVALID_ARGUMENT
    naming the batched message, counted by reason, nothing applied."""
    live = live_server_factory()
    r = rollout()
    # A Rollout's fields 1-4 were tensors numbered as RolloutBatch's: its bytes are these.
    old_rollout = pb.RolloutBatch(
        states=codec.to_tensor(r.states), actions=codec.to_tensor(r.actions),
        rewards=codec.to_tensor(r.rewards), next_states=codec.to_tensor(r.next_state),
    ).SerializeToString()  # fmt: skip
    worker_id, lease = connect(live, pb.MODE_DATA)
    old_header = pb.PushHeader(worker_id=worker_id, seq=1).SerializeToString() + field(4, lease)
    old_push = field(1, old_header) + field(2, old_rollout)
    push_samples = live.channel.stream_stream(
        "/a3c.v1.ParameterServer/PushSamples", response_deserializer=pb.PushReply.FromString
    )
    with pytest.raises(grpc.RpcError) as err:
        list(push_samples(iter([old_push])))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "SamplePush.rollouts (a RolloutBatch" in err.value.details()

    spec, cfg = live.app.servicer._spec, TrainConfig()
    grads = [codec.to_tensor(np.zeros(s, np.float32)) for s in sum(weight_shapes(spec, cfg), [])]
    worker_id, lease = connect(live, pb.MODE_GRADIENT)
    old_header = pb.PushHeader(worker_id=worker_id, seq=1).SerializeToString() + field(4, lease)
    n_actor = len(weight_shapes(spec, cfg)[0])
    old_push = (
        field(1, old_header)
        + field(4, 4)
        + b"".join(
            field(2 if i < n_actor else 3, g.SerializeToString()) for i, g in enumerate(grads)
        )
    )
    push_gradients = live.channel.stream_stream(
        "/a3c.v1.ParameterServer/PushGradients", response_deserializer=pb.PushReply.FromString
    )
    with pytest.raises(grpc.RpcError) as err:
        list(push_gradients(iter([old_push])))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header.envs (one EnvSlot per rollout)" in err.value.details()
    refused = live.app.metrics.registry.get_sample_value(
        "a3c_server_pushes_refused_total", {"reason": "single_rollout"}
    )
    assert refused == 2
    assert live.app.learner.version == 0 and live.app.runlog.env_steps == 0


def test_unknown_worker_and_mode(live_server_factory):
    live = live_server_factory()
    with pytest.raises(grpc.RpcError) as err:
        live.stub.StartEpisode(pb.StartEpisodeRequest(worker_id="nobody"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        live.stub.Connect(pb.ConnectRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_connect_tells_the_servers_hyperparameters(live_server_factory):
    cfg = TrainConfig(max_episodes=3, gamma=0.9, t_max=8)
    live = live_server_factory(cfg)
    reply = live.stub.Connect(pb.ConnectRequest(mode=pb.MODE_GRADIENT))
    assert TrainConfig.from_json(reply.config_json) == cfg
    assert (reply.obs_dim, reply.action_dim) == (3, 1)


def test_episode_end_counts_exactly_once_and_budget_closes(live_server_factory):
    live = live_server_factory(TrainConfig(max_episodes=1))
    worker_id, lease = connect(live, pb.MODE_DATA)
    ended = {"episode_end": True, "episode_return": -100.0, "episode_length": 4}
    push = sample_push(worker_id, lease, rollout(terminated=True), **ended)
    (reply,) = list(live.stub.PushSamples(iter([push])))
    assert reply.lease_valid
    # Resent (same seq, as after a lost reply): answered as before, not applied again.
    (again,) = list(live.stub.PushSamples(iter([push])))
    assert again.lease_valid and again.version == reply.version == 1
    assert live.app.metrics.registry.get_sample_value("a3c_server_pushes_resent_total") == 1
    # A new push under the used-up lease is not applied.
    push.header.seq = 2
    (late,) = list(live.stub.PushSamples(iter([push])))
    assert not late.lease_valid and late.version == 1
    # Seqs are remembered for the last 16 pushes; one older than that is refused.
    later = []
    for seq in range(3, 19):
        late = pb.SamplePush()
        late.CopyFrom(push)
        late.header.seq = seq
        later.append(late)
    list(live.stub.PushSamples(iter(later)))
    push.header.seq = 1
    with pytest.raises(grpc.RpcError) as err:
        list(live.stub.PushSamples(iter([push])))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "older" in err.value.details()
    assert live.app.learner.version == 1
    done = live.stub.StartEpisode(pb.StartEpisodeRequest(worker_id=worker_id))
    assert done.status == pb.StartEpisodeReply.DONE
    assert live.app.budget.completed == 1
    rows = (live.app.run_dir / "returns.csv").read_text().splitlines()
    assert rows[0].startswith("episode,worker,return,length,version")
    assert len(rows) == 2 and rows[1].startswith("1,test,-100.000,4,1")


def test_calls_while_loading_get_unavailable(tmp_path):
    """The port opens before the networks exist: calls get UNAVAILABLE, and workers retry."""
    from grpc_health.v1 import health

    from a3c.config import ServerConfig
    from a3c.v1 import a3c_pb2_grpc
    from server.__main__ import Deferred, build_grpc_server
    from server.metrics import ServerMetrics

    scfg = ServerConfig(host="127.0.0.1", port=0, metrics_port=0, run_dir=str(tmp_path))
    server, port = build_grpc_server(Deferred(), health.HealthServicer(), scfg, ServerMetrics())
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = a3c_pb2_grpc.ParameterServerStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.Connect(pb.ConnectRequest(mode=pb.MODE_DATA), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "starting" in err.value.details()
    finally:
        server.stop(grace=None)


def test_pushes_in_flight_resent_on_a_new_stream_are_applied_once(live_server_factory):
    """A worker with two pushes in flight loses its stream and sends both again."""
    live = live_server_factory()
    worker_id, lease = connect(live, pb.MODE_DATA)
    pushes = [sample_push(worker_id, lease, rollout(seq), seq=seq) for seq in (1, 2)]
    first = list(live.stub.PushSamples(iter(pushes)))
    again = list(live.stub.PushSamples(iter(pushes)))
    assert [r.version for r in first] == [r.version for r in again] == [1, 2]
    assert live.app.learner.version == 2
    resent = live.app.metrics.registry.get_sample_value("a3c_server_pushes_resent_total")
    assert resent == 2
