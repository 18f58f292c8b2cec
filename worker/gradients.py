"""Gradient mode: the worker's local copy of the networks and its compiled gradient step."""

from __future__ import annotations

import numpy as np

from a3c.config import TrainConfig
from a3c.envs import EnvSpec
from a3c.model import build_actor, build_critic, split_flat, weight_shapes
from a3c.rollout import Rollout, pad
from a3c.trainer import Trainer


class LocalGradients:
    """Gradients of the shared A3C loss on a local copy set to the pulled weights."""

    def __init__(self, spec: EnvSpec, cfg: TrainConfig):
        self._cfg = cfg
        self._trainer = Trainer(build_actor(spec, cfg), build_critic(spec, cfg), spec, cfg)
        self._shapes = weight_shapes(spec, cfg)
        self._version = -1

    def compute(self, version: int, flat: np.ndarray, rollouts: list[Rollout]):
        """(actor grads, critic grads) as numpy arrays, at the weights `flat` of `version`:
        one compiled call over every rollout, the sum of their gradients."""
        batch = pad(rollouts, self._cfg.t_max)
        if version != self._version:
            flat = self._trainer.gradients_at(flat, batch)
            self._version = version
        else:
            flat = self._trainer.gradients(batch)
        n_actor = self._trainer.n_actor
        return split_flat(flat[:n_actor], self._shapes[0]), split_flat(
            flat[n_actor:], self._shapes[1]
        )
