"""Property-based: random bytes and random batched pushes at the decode path and at the
live server."""

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a3c import codec
from a3c.rollout import Rollout
from a3c.v1 import a3c_pb2 as pb
from tests.integration.test_service import connect, flat_weights
from tests.pushes import gradient_push

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
def valid_rollouts(draw):
    steps = draw(st.integers(1, 4))
    finite = st.floats(-10, 10, width=32)

    def array(*shape):
        values = draw(st.lists(finite, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        return np.asarray(values, np.float32).reshape(shape)

    log_probs = None
    if draw(st.booleans()):  # any finite log-probability, however far from the policy's
        values = draw(
            st.lists(
                st.floats(width=32, allow_nan=False, allow_infinity=False),
                min_size=steps,
                max_size=steps,
            )
        )
        log_probs = np.asarray(values, np.float32)
    return Rollout(
        array(steps, 3), array(steps, 1), array(steps), array(3), draw(st.booleans()), log_probs
    )


@st.composite
def batches(draw):
    """A RolloutBatch of random tensors and the rows' steps it claims."""
    message = pb.RolloutBatch(
        states=draw(tensors()),
        actions=draw(tensors()),
        rewards=draw(tensors(max_dims=2)),
        next_states=draw(tensors(max_dims=2)),
        terminated=draw(st.lists(st.booleans(), max_size=4)),
    )
    if draw(st.booleans()):
        message.behaviour_log_probs.CopyFrom(draw(tensors(max_dims=2)))
    return message, draw(st.lists(st.integers(-1, 6), max_size=4))


@st.composite
def valid_batches(draw):
    """1-3 valid rollouts as a RolloutBatch, and their steps."""
    decoded = draw(st.lists(valid_rollouts(), min_size=1, max_size=3))
    with_log_probs = [r for r in decoded if r.log_probs is not None]
    if with_log_probs and len(with_log_probs) < len(decoded):
        decoded = with_log_probs  # a batch carries log-probs for every row or none
    return codec.batch_to_proto(decoded), [r.steps for r in decoded]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_escape_the_decode_path(raw):
    try:
        message = pb.SamplePush.FromString(raw)
    except DecodeError:
        return
    steps = [e.steps for e in message.header.envs]
    try:
        batch, _ = codec.batch_from_proto(message.rollouts, steps, 3, 1, 4)
    except codec.CodecError:
        return
    assert batch.mask.sum(1).min() >= 1 and batch.mask.sum(1).max() <= 4
    assert all(np.all(np.isfinite(a)) for a in (batch.states, batch.actions, batch.rewards))


@settings(max_examples=300, deadline=None)
@given(batches())
def test_random_batches_decode_or_are_refused_with_a_reason(drawn):
    message, steps = drawn
    try:
        batch, _ = codec.batch_from_proto(message, steps, 3, 1, 4)
    except codec.CodecError as err:
        assert str(err)
        return
    rows = len(steps)
    assert batch.states.shape == (rows, 4, 3) and batch.next_states.shape == (rows, 3)
    np.testing.assert_array_equal(batch.mask.sum(1), steps)
    for field in batch:
        assert np.all(np.isfinite(field))
    assert np.all(batch.rewards[batch.mask == 0] == 0), "padding is zeroed"


def test_live_server_answers_random_pushes_with_ok_or_invalid_argument(live_server_factory):
    """Random pushes at a server training with V-trace (so that
    behaviour log-probabilities are decoded and used): each is applied or refused with
    INVALID_ARGUMENT and nothing changed; some are valid and reach the learner."""
    from a3c.config import TrainConfig

    live = live_server_factory(TrainConfig(max_episodes=10, off_policy="vtrace"))
    reply = live.stub.Connect(pb.ConnectRequest(mode=pb.MODE_DATA, name="fuzz"))
    worker_id = reply.worker_id
    request = pb.StartEpisodeRequest(worker_id=worker_id, count=3)
    leases = list(live.stub.StartEpisode(request).lease_ids)
    state = {"seq": 0, "accepted": 0}

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        message=st.one_of(batches(), valid_batches()),
        seq_step=st.integers(1, 3),
    )
    def check(message, seq_step):
        state["seq"] += seq_step
        before, weights_before = flat_weights(live)
        rows, steps = message  # a batch and its rows' steps
        slots = [pb.EnvSlot(lease_id=lease, steps=n) for lease, n in zip(leases, steps)]
        push_header = pb.PushHeader(worker_id=worker_id, seq=state["seq"], envs=slots)
        push = pb.SamplePush(header=push_header, rollouts=rows)
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
        assert np.all(np.isfinite(flat_weights(live)[1])), "an accepted push made weights NaN"
        state["accepted"] += 1

    check()
    assert state["accepted"] > 0, "no random push was valid: the fuzzing never reached the learner"


def test_oversized_message_is_refused_and_server_keeps_serving(live_server_factory):
    live = live_server_factory(max_message_bytes=64 * 1024)
    worker_id, lease = connect(live, pb.MODE_GRADIENT)
    huge = gradient_push(worker_id, lease, [np.zeros(100_000, np.float32)], [])
    with pytest.raises(grpc.RpcError) as err:
        list(live.stub.PushGradients(iter([huge])))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert flat_weights(live)[0] == 0
    assert live.stub.PullWeights(pb.PullWeightsRequest()).weights.version == 0
