"""Gradient mode: the worker's local copy of the networks and its compiled gradient step."""

from __future__ import annotations

import numpy as np

from a3c.algo import Trainer
from a3c.config import TrainConfig
from a3c.model import EnvSpec, build_actor, build_critic
from a3c.rollout import Rollout, pad


class LocalGradients:
    """Gradients of the shared A3C loss on a local copy set to the pulled weights."""

    def __init__(self, spec: EnvSpec, cfg: TrainConfig):
        self._cfg = cfg
        self._trainer = Trainer(build_actor(spec, cfg), build_critic(spec, cfg), spec, cfg)
        self._version = -1

    def compute(self, version: int, flat: np.ndarray, rollout: Rollout):
        """(actor grads, critic grads) as numpy arrays, at the weights `flat` of `version`."""
        if version != self._version:
            self._trainer.assign_flat(flat)
            self._version = version
        actor, critic = self._trainer.gradients(pad([rollout], self._cfg.t_max))
        return [g.numpy() for g in actor], [g.numpy() for g in critic]
