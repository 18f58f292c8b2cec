"""Pushes as tests send them: the batched wire form (one header.envs row per rollout)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from a3c import codec
from a3c.rollout import Rollout
from a3c.v1 import a3c_pb2 as pb


def rollout(seed=0, steps=4, terminated=False) -> Rollout:
    """A Pendulum-shaped rollout (observations of 3, actions of 1) of random numbers."""
    rng = np.random.default_rng(seed)
    return Rollout(
        rng.normal(size=(steps, 3)).astype(np.float32),
        rng.uniform(-2, 2, size=(steps, 1)).astype(np.float32),
        rng.uniform(-16, 0, size=steps).astype(np.float32),
        rng.normal(size=3).astype(np.float32),
        terminated,
    )


def header(worker_id, lease_id, steps=4, seq=1, base_version=0, **episode) -> pb.PushHeader:
    """A one-row header: lease_id's rollout of `steps` steps; episode_end, episode_return and
    episode_length as keywords."""
    slot = pb.EnvSlot(lease_id=lease_id, steps=steps, **episode)
    return pb.PushHeader(worker_id=worker_id, seq=seq, base_version=base_version, envs=[slot])


def sample_push(
    worker_id, lease_id, sent: Rollout | pb.RolloutBatch, seq=1, base_version=0, **episode
) -> pb.SamplePush:
    """A data push of one rollout (or of a RolloutBatch message as it is, of 4 steps)."""
    if isinstance(sent, Rollout):
        steps, rows = sent.steps, codec.batch_to_proto([sent])
    else:
        steps, rows = 4, sent
    head = header(worker_id, lease_id, steps, seq, base_version, **episode)
    return pb.SamplePush(header=head, rollouts=rows)


def gradient_push(
    worker_id,
    lease_id,
    actor: Sequence[np.ndarray],
    critic: Sequence[np.ndarray],
    steps=4,
    seq=1,
    base_version=0,
) -> pb.GradientPush:
    """A gradient push of one rollout's `steps` steps."""
    return pb.GradientPush(
        header=header(worker_id, lease_id, steps, seq, base_version),
        actor_grads=codec.to_tensors(actor),
        critic_grads=codec.to_tensors(critic),
    )
