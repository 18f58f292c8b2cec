"""numpy <-> protobuf: tensors as raw little-endian float32 bytes plus a shape.

Decoding checks everything a peer could get wrong (byte count, shape, finiteness) and
raises CodecError with a message that says what was wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from a3c.normalization import Moments, Statistics
from a3c.rollout import Batch, Rollout, Window, window_of
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
    """A WeightSet; an empty critic list leaves the critic out (an actor-only reply)."""
    return pb.WeightSet(version=version, actor=to_tensors(actor), critic=to_tensors(critic))


def weights_from_proto(
    message: pb.WeightSet, actor_shapes, critic_shapes
) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
    """(version, actor weights, critic weights) of a WeightSet; critic_shapes None reads an
    actor-only set (critic [])."""
    actor = from_tensors(message.actor, actor_shapes, "actor")
    critic = [] if critic_shapes is None else from_tensors(message.critic, critic_shapes, "critic")
    return int(message.version), actor, critic


def statistics_to_proto(stats: Statistics) -> pb.Statistics:
    def moments(m: Moments) -> pb.Moments:
        return pb.Moments(count=m.count, mean=to_tensor(m.mean), m2=to_tensor(m.m2))

    return pb.Statistics(obs=moments(stats.obs), returns=moments(stats.returns))


def statistics_from_proto(message: pb.Statistics, obs_dim: int, name: str) -> Statistics:
    """The Statistics of a message (observations of obs_dim, returns of 1), or CodecError
    when a count is negative or not finite, a shape is wrong or a value not finite."""
    parts = {}
    for part, dim in (("obs", obs_dim), ("returns", 1)):
        m = getattr(message, part)
        label = f"{name}.{part}"
        moments = Moments(
            float(m.count),
            from_tensor(m.mean, (dim,), f"{label}.mean").astype(np.float64),
            from_tensor(m.m2, (dim,), f"{label}.m2").astype(np.float64),
        )
        wrong = moments.invalid(dim)
        if wrong:
            raise CodecError(f"{label}: {wrong}")
        parts[part] = moments
    return Statistics(**parts)


def batch_to_proto(rows: Sequence[Rollout] | Window) -> pb.RolloutBatch:
    """R rollouts as one RolloutBatch, padded to the longest (T = its steps); a
    Collector's window goes as it is."""
    w = rows if isinstance(rows, Window) else window_of(rows)
    states, actions, rewards, next_states = (
        to_tensor(f) for f in (w.states, w.actions, w.rewards, w.next_states)
    )
    message = pb.RolloutBatch(
        states=states, actions=actions, rewards=rewards, next_states=next_states,
        terminated=w.terminated.tolist(),
    )  # fmt: skip
    if w.log_probs is not None:
        message.behaviour_log_probs.CopyFrom(to_tensor(w.log_probs))
    return message


def batch_from_proto(
    message: pb.RolloutBatch, steps: Sequence[int], obs_dim: int, action_dim: int, t_max: int
) -> tuple[Batch, bool]:
    """The Batch (padded to t_max, padding zeroed) of a RolloutBatch whose rows have
    `steps` steps each, and whether it carried behaviour log-probabilities; or CodecError."""
    rows = len(steps)
    if rows < 1:
        raise CodecError("a batched push needs at least one row (header.envs)")
    if len(message.terminated) != rows:
        raise CodecError(f"rollouts.terminated has {len(message.terminated)} rows; envs {rows}")
    rewards = from_tensor(message.rewards, (rows, None), "rollouts.rewards")
    t = rewards.shape[1]
    if not 1 <= t <= t_max:
        raise CodecError(f"rollouts have {t} steps; expected 1..{t_max} (t_max)")
    lengths = np.asarray(steps)
    if np.any(lengths < 1) or np.any(lengths > t):
        raise CodecError(f"envs[].steps must each be 1..{t} (the rollouts' T); got {list(steps)}")
    fields = {
        "states": from_tensor(message.states, (rows, t, obs_dim), "rollouts.states"),
        "actions": from_tensor(message.actions, (rows, t, action_dim), "rollouts.actions"),
        "rewards": rewards,
    }
    has_log_probs = message.HasField("behaviour_log_probs")
    if has_log_probs:
        fields["log_probs"] = from_tensor(
            message.behaviour_log_probs, (rows, t), "rollouts.behaviour_log_probs"
        )
    next_states = from_tensor(message.next_states, (rows, obs_dim), "rollouts.next_states")
    mask = (np.arange(t_max)[None, :] < lengths[:, None]).astype(np.float32)
    full = t == t_max and bool(np.all(lengths == t))  # the common case: nothing to pad
    padded = {}
    for name, value in fields.items():
        if full:
            padded[name] = value
            continue
        out = np.zeros((rows, t_max, *value.shape[2:]), np.float32)
        out[:, :t] = value
        padded[name] = out * mask.reshape(mask.shape + (1,) * (out.ndim - 2))
    bootstrap = 1.0 - np.asarray(message.terminated, np.float32)
    log_probs = padded.get("log_probs", np.zeros((rows, t_max), np.float32))
    batch = Batch(
        padded["states"], padded["actions"], padded["rewards"], mask, next_states, bootstrap,
        log_probs,
    )  # fmt: skip
    return batch, has_log_probs
