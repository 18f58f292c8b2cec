"""The policy evaluated with numpy (no TensorFlow): Gaussian and categorical log-densities,
entropies and sampling, and NumpyPolicy, what data-mode workers, the evaluator and a3c-play
act with. The network it evaluates is a3c.model's description."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from a3c.model import networks

if TYPE_CHECKING:
    from a3c.config import TrainConfig
    from a3c.envs import EnvSpec

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(action: np.ndarray, mu: np.ndarray, std: np.ndarray) -> np.ndarray:
    """log N(action; mu, std) summed over the action dimension: [..., A] -> [...] (numpy)."""
    z = (action - mu) / std
    return -0.5 * np.sum(z * z, -1) - np.sum(np.log(std), -1) - 0.5 * LOG_2PI * z.shape[-1]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log of the softmax over the last axis (numpy, stable)."""
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def categorical_log_prob(actions: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log softmax(logits)[a] of actions [..., 1] (indices as floats) -> [...] (numpy)."""
    index = actions[..., 0].astype(np.int64)[..., None]
    return np.take_along_axis(log_softmax(logits), index, -1)[..., 0]


def categorical_entropy(logits: np.ndarray) -> np.ndarray:
    """Entropy of the categorical distribution of logits [..., N] -> [...] (numpy)."""
    logp = log_softmax(logits)
    return -np.sum(np.exp(logp) * logp, -1)


class NumpyPolicy:
    """The policy of a weight set, evaluated with numpy (no TensorFlow): Gaussian for
    continuous actions, categorical for discrete ones.

    Batched: observations [M, obs_dim] give actions [M, action_dim], one forward pass for
    M environments. The single-observation methods are the batch of one."""

    def __init__(self, spec: EnvSpec, cfg: TrainConfig, rng: np.random.Generator):
        self._spec = spec
        self._cfg = cfg
        self._rng = rng
        self._actor = networks(spec, cfg)[0]
        self._weights: list[np.ndarray] = []

    def set_weights(self, actor_weights: Sequence[np.ndarray]) -> None:
        self._weights = list(actor_weights)

    def env_action(self, action: np.ndarray):
        """A sampled action row as env.step takes it (an int for discrete actions)."""
        return self._spec.env_action(action)

    def outputs(self, obs: np.ndarray) -> list[np.ndarray]:
        """The actor's raw heads for obs [M, obs_dim]."""
        return self._actor.forward(self._weights, np.asarray(obs, np.float32))

    def logits_batch(self, obs: np.ndarray) -> np.ndarray:
        """Discrete actions: obs [M, obs_dim] -> logits [M, n_actions]."""
        return self.outputs(obs)[0]

    def mean_std_batch(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """obs [M, obs_dim] -> (mu, std), each [M, action_dim]: mu in env units, std clipped."""
        mu_raw, std_raw = self.outputs(obs)
        mu = self._spec.action_center + self._spec.action_half_range * mu_raw
        return mu, np.clip(std_raw, self._cfg.std_min, self._cfg.std_max)

    def sample_batch(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Actions for obs [M, obs_dim] ([M, action_dim] float32: Gaussian, clipped to the
        action space; or a discrete action's index) and each action's log-probability as
        the learner evaluates it ([M] float32): what V-trace's importance weights divide by."""
        if self._spec.discrete:
            logp = log_softmax(self.logits_batch(obs).astype(np.float64))
            gumbel = -np.log(-np.log(self._rng.uniform(1e-12, 1.0, logp.shape)))
            index = np.argmax(logp + gumbel, -1)
            chosen = np.take_along_axis(logp, index[:, None], -1)[:, 0]
            return index[:, None].astype(np.float32), chosen.astype(np.float32)
        mu, std = self.mean_std_batch(obs)
        action = mu + std * self._rng.standard_normal(mu.shape)
        action = np.clip(action, self._spec.action_low, self._spec.action_high).astype(np.float32)
        return action, gaussian_log_prob(action, mu, std).astype(np.float32)

    def log_prob_batch(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """log pi(a|s) of actions [M, action_dim] at obs [M, obs_dim]: [M] float32."""
        if self._spec.discrete:
            return categorical_log_prob(actions, self.logits_batch(obs)).astype(np.float32)
        return gaussian_log_prob(actions, *self.mean_std_batch(obs)).astype(np.float32)

    def sample(self, obs: np.ndarray) -> np.ndarray:
        """An action for one observation: [action_dim] float32."""
        return self.sample_with_log_prob(obs)[0]

    def sample_with_log_prob(self, obs: np.ndarray) -> tuple[np.ndarray, float]:
        actions, log_probs = self.sample_batch(obs.reshape(1, -1))
        return actions[0], float(log_probs[0])

    def act_deterministic(self, obs: np.ndarray) -> np.ndarray:
        """The most likely action (Gaussian: the mean, clipped; discrete: the argmax)."""
        if self._spec.discrete:
            return np.array([np.argmax(self.logits_batch(obs.reshape(1, -1))[0])], np.float32)
        mu, _ = self.mean_std_batch(obs.reshape(1, -1))
        return np.clip(mu[0], self._spec.action_low, self._spec.action_high).astype(np.float32)
