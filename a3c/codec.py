"""numpy <-> protobuf: tensors as raw little-endian float32 bytes plus a shape.

Decoding checks everything a peer could get wrong (byte count, shape, finiteness) and
raises CodecError with a message that says what was wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from a3c.rollout import Rollout
from a3c.v1 import a3c_pb2 as pb

WIRE_DTYPE = np.dtype("<f4")


class CodecError(ValueError):
    """A message does not hold what it claims or what the receiver expects."""


def to_tensor(array: np.ndarray) -> pb.Tensor:
    a = np.asarray(array, dtype=WIRE_DTYPE)
    return pb.Tensor(shape=a.shape, data=a.tobytes())


def from_tensor(
    tensor: pb.Tensor,
    expected_shape: Sequence[int | None] | None = None,
    name: str = "tensor",
) -> np.ndarray:
    """The tensor as a float32 array; None in expected_shape matches any size."""
    shape = tuple(int(d) for d in tensor.shape)
    if any(d < 0 for d in shape):
        raise CodecError(f"{name}: negative dimension in shape {shape}")
    count = math.prod(shape)
    size = count * WIRE_DTYPE.itemsize
    if len(tensor.data) != size:
        raise CodecError(f"{name}: shape {shape} needs {size} bytes, got {len(tensor.data)}")
    if expected_shape is not None and (
        len(shape) != len(expected_shape)
        or any(e is not None and e != d for e, d in zip(expected_shape, shape))
    ):
        want = tuple("*" if e is None else e for e in expected_shape)
        raise CodecError(f"{name}: expected shape {want}, got {shape}")
    array = np.frombuffer(tensor.data, dtype=WIRE_DTYPE).reshape(shape).astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise CodecError(f"{name}: contains NaN or Inf")
    return array


def to_tensors(arrays: Sequence[np.ndarray]) -> list[pb.Tensor]:
    return [to_tensor(a) for a in arrays]


def from_tensors(
    tensors: Sequence[pb.Tensor], shapes: Sequence[Sequence[int]], name: str
) -> list[np.ndarray]:
    """A list of tensors that must match shapes one for one."""
    if len(tensors) != len(shapes):
        raise CodecError(f"{name}: expected {len(shapes)} tensors, got {len(tensors)}")
    return [from_tensor(t, s, f"{name}[{i}]") for i, (t, s) in enumerate(zip(tensors, shapes))]


def weights_to_proto(
    version: int, actor: Sequence[np.ndarray], critic: Sequence[np.ndarray]
) -> pb.WeightSet:
    return pb.WeightSet(version=version, actor=to_tensors(actor), critic=to_tensors(critic))


def weights_from_proto(
    message: pb.WeightSet, actor_shapes, critic_shapes
) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
    """(version, actor weights, critic weights) of a WeightSet."""
    actor = from_tensors(message.actor, actor_shapes, "actor")
    critic = from_tensors(message.critic, critic_shapes, "critic")
    return int(message.version), actor, critic


def rollout_to_proto(rollout: Rollout) -> pb.Rollout:
    message = pb.Rollout(
        states=to_tensor(rollout.states),
        actions=to_tensor(rollout.actions),
        rewards=to_tensor(rollout.rewards),
        next_state=to_tensor(rollout.next_state),
        terminated=rollout.terminated,
    )
    if rollout.log_probs is not None:
        message.behaviour_log_probs.CopyFrom(to_tensor(rollout.log_probs))
    return message


def rollout_from_proto(message: pb.Rollout, obs_dim: int, action_dim: int, t_max: int) -> Rollout:
    """A Rollout of 1..t_max steps with the given dimensions, or CodecError. Behaviour
    log-probabilities are optional (None when absent)."""
    rewards = from_tensor(message.rewards, (None,), "rollout.rewards")
    steps = rewards.shape[0]
    if not 1 <= steps <= t_max:
        raise CodecError(f"rollout has {steps} steps; expected 1..{t_max} (t_max)")
    return Rollout(
        states=from_tensor(message.states, (steps, obs_dim), "rollout.states"),
        actions=from_tensor(message.actions, (steps, action_dim), "rollout.actions"),
        rewards=rewards,
        next_state=from_tensor(message.next_state, (obs_dim,), "rollout.next_state"),
        terminated=bool(message.terminated),
        log_probs=from_tensor(message.behaviour_log_probs, (steps,), "rollout.behaviour_log_probs")
        if message.HasField("behaviour_log_probs")
        else None,
    )
