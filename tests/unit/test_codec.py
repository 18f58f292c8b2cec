"""Tensor and rollout-batch codec: round trips, and every malformed input refused with a reason."""

import dataclasses

import numpy as np
import pytest

from a3c import codec
from a3c.rollout import Rollout
from a3c.v1 import a3c_pb2 as pb


def test_tensor_round_trip_is_exact_little_endian_float32():
    a = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    message = codec.to_tensor(a)
    assert list(message.shape) == [4, 3]
    assert message.data == a.astype("<f4").tobytes()
    np.testing.assert_array_equal(codec.from_tensor(message, (4, 3)), a)


def test_weights_round_trip():
    actor = [np.ones((3, 2), np.float32), np.zeros(2, np.float32)]
    critic = [np.full((3, 1), 2.0, np.float32)]
    message = codec.weights_to_proto(7, actor, critic)
    again = pb.WeightSet.FromString(message.SerializeToString())
    version, a, c = codec.weights_from_proto(again, [(3, 2), (2,)], [(3, 1)])
    assert version == 7
    np.testing.assert_array_equal(a[0], actor[0])
    np.testing.assert_array_equal(c[0], critic[0])


def test_rollout_round_trip_as_a_batch_of_one_row():
    r = Rollout(
        np.arange(12, dtype=np.float32).reshape(4, 3),
        np.ones((4, 1), np.float32),
        np.array([-1, -2, -3, -4], np.float32),
        np.array([9, 8, 7], np.float32),
        True,
        np.array([-0.5, -1, -1.5, -2], np.float32),
    )
    wire = pb.RolloutBatch.FromString(codec.batch_to_proto([r]).SerializeToString())
    back, has_log_probs = codec.batch_from_proto(wire, [4], 3, 1, 4)
    assert has_log_probs
    for name, field in (
        ("states", "states"),
        ("actions", "actions"),
        ("rewards", "rewards"),
        ("next_states", "next_state"),
        ("behaviour_log_probs", "log_probs"),
    ):
        np.testing.assert_array_equal(getattr(back, name)[0], getattr(r, field))  # fmt: skip
    assert back.bootstrap[0] == 0.0, "terminated: no bootstrap"
    without = codec.batch_to_proto([dataclasses.replace(r, log_probs=None)])
    assert not codec.batch_from_proto(without, [4], 3, 1, 4)[1]
    wrong = codec.batch_to_proto([dataclasses.replace(r, log_probs=np.zeros(3, np.float32))])
    with pytest.raises(codec.CodecError, match="behaviour_log_probs: expected shape"):
        codec.batch_from_proto(wrong, [4], 3, 1, 4)


@pytest.mark.parametrize(
    "message, expected, needle",
    [
        (pb.Tensor(shape=[2, 2], data=b"\0" * 12), (2, 2), "needs 16 bytes"),
        (pb.Tensor(shape=[2, 2], data=b"\0" * 16), (2, 3), "expected shape"),
        (pb.Tensor(shape=[4], data=b"\0" * 16), (2, 2), "expected shape"),
        (pb.Tensor(shape=[-1], data=b""), None, "negative"),
        (codec.to_tensor(np.array([1.0, np.nan])), (2,), "NaN or Inf"),
        (codec.to_tensor(np.array([np.inf])), (1,), "NaN or Inf"),
    ],
)
def test_bad_tensors_are_refused(message, expected, needle):
    with pytest.raises(codec.CodecError, match=needle):
        codec.from_tensor(message, expected)


def test_rollout_longer_than_t_max_or_empty_is_refused():
    def rollout(t):
        return Rollout(
            np.zeros((t, 3), np.float32),
            np.zeros((t, 1), np.float32),
            np.zeros(t, np.float32),
            np.zeros(3, np.float32),
            False,
        )

    with pytest.raises(codec.CodecError, match="5 steps"):
        codec.batch_from_proto(codec.batch_to_proto([rollout(5)]), [5], 3, 1, 4)
    with pytest.raises(codec.CodecError, match="0 steps"):
        codec.batch_from_proto(codec.batch_to_proto([rollout(0)]), [1], 3, 1, 4)


def test_tensor_count_mismatch_is_refused():
    with pytest.raises(codec.CodecError, match="expected 2 tensors, got 1"):
        codec.from_tensors([codec.to_tensor(np.zeros(2))], [(2,), (2,)], "grads")
