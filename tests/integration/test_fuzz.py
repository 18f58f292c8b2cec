"""Property-based: random bytes and random messages at the decode path and the live server."""

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a3c import codec
from a3c.v1 import a3c_pb2 as pb
from tests.integration.test_service import connect, flat_weights, header

FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)


@st.composite
def tensors(draw, max_dims=3):
    shape = draw(st.lists(st.integers(-1, 6), max_size=max_dims))
    good = all(d >= 0 for d in shape) and draw(st.booleans())
    count = int(np.prod(shape)) if good else draw(st.integers(0, 30))
    values = draw(st.lists(FLOATS, min_size=count, max_size=count))
    data = np.asarray(values, "<f4").tobytes()
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # truncated or garbage length
    return pb.Tensor(shape=shape, data=data)


@st.composite
def rollouts(draw):
    message = pb.Rollout(
        states=draw(tensors()),
        actions=draw(tensors()),
        rewards=draw(tensors(max_dims=1)),
        next_state=draw(tensors(max_dims=1)),
        terminated=draw(st.booleans()),
    )
    if draw(st.booleans()):
        message.behaviour_log_probs.CopyFrom(draw(tensors(max_dims=1)))
    return message


@st.composite
def valid_rollouts(draw):
    steps = draw(st.integers(1, 4))
    finite = st.floats(-10, 10, width=32)

    def array(*shape):
        values = draw(st.lists(finite, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        return codec.to_tensor(np.asarray(values, np.float32).reshape(shape))

    message = pb.Rollout(
        states=array(steps, 3),
        actions=array(steps, 1),
        rewards=array(steps),
        next_state=array(3),
        terminated=draw(st.booleans()),
    )
    if draw(st.booleans()):  # any finite log-probability, however far from the policy's
        values = draw(
            st.lists(
                st.floats(width=32, allow_nan=False, allow_infinity=False),
                min_size=steps,
                max_size=steps,
            )
        )
        message.behaviour_log_probs.CopyFrom(codec.to_tensor(np.asarray(values, np.float32)))
    return message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_escape_the_decode_path(raw):
    try:
        message = pb.SamplePush.FromString(raw)
    except DecodeError:
        return
    try:
        rollout = codec.rollout_from_proto(message.rollout, 3, 1, 4)
    except codec.CodecError:
        return
    assert 1 <= rollout.steps <= 4
    assert all(np.all(np.isfinite(a)) for a in (rollout.states, rollout.actions, rollout.rewards))


@settings(max_examples=300, deadline=None)
@given(rollouts())
def test_random_rollouts_decode_or_are_refused_with_a_reason(message):
    try:
        rollout = codec.rollout_from_proto(message, 3, 1, 4)
    except codec.CodecError as err:
        assert str(err)
        return
    assert rollout.states.shape == (rollout.steps, 3)
    assert rollout.next_state.shape == (3,)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One server for every example (a server per example would take minutes), training
    with V-trace so that behaviour log-probabilities are decoded and used."""
    from a3c.config import TrainConfig
    from tests.conftest import start_live_server, stop_live_server

    cfg = TrainConfig(max_episodes=10, off_policy="vtrace")
    live = start_live_server(tmp_path_factory.mktemp("fuzz"), cfg)
    yield live
    stop_live_server(live)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=st.one_of(rollouts(), valid_rollouts()), seq_step=st.integers(1, 3))
def test_live_server_answers_random_pushes_with_ok_or_invalid_argument(
    shared_server, message, seq_step
):
    live = shared_server
    if not hasattr(live, "ids"):
        live.ids = connect(live, pb.MODE_DATA)
        live.seq = 0
    worker_id, lease = live.ids
    live.seq += seq_step
    before, weights_before = flat_weights(live)
    push = pb.SamplePush(header=header(worker_id, lease, seq=live.seq), rollout=message)
    try:
        (reply,) = list(live.stub.PushSamples(iter([push])))
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert err.details()
        after, weights_after = flat_weights(live)
        assert after == before
        np.testing.assert_array_equal(weights_after, weights_before)
        return
    assert reply.lease_valid and reply.version == before + 1
    assert codec.rollout_from_proto(message, 3, 1, 4).log_probs is not None
    assert np.all(np.isfinite(flat_weights(live)[1])), "an accepted push made weights non-finite"
    live.accepted = getattr(live, "accepted", 0) + 1


def test_the_live_fuzzing_reached_the_learner(shared_server):
    """Runs after the property test (file order): some random pushes were valid."""
    assert getattr(shared_server, "accepted", 0) > 0


def test_oversized_message_is_refused_and_server_keeps_serving(live_server_factory):
    live = live_server_factory(max_message_bytes=64 * 1024)
    worker_id, lease = connect(live, pb.MODE_GRADIENT)
    huge = pb.GradientPush(
        header=header(worker_id, lease),
        actor_grads=[codec.to_tensor(np.zeros(100_000, np.float32))],
        steps=4,
    )
    with pytest.raises(grpc.RpcError) as err:
        list(live.stub.PushGradients(iter([huge])))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert flat_weights(live)[0] == 0
    assert live.stub.PullWeights(pb.PullWeightsRequest()).weights.version == 0
