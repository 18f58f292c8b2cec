"""Rollouts (up to t_max transitions of one episode) and their padding into fixed-shape batches.

numpy only: data-mode workers build rollouts without TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Rollout:
    """T consecutive transitions of one episode, as a worker collected them."""

    states: np.ndarray  # [T, obs_dim] float32
    actions: np.ndarray  # [T, action_dim] float32, as passed to env.step
    rewards: np.ndarray  # [T] float32, raw env rewards
    next_state: np.ndarray  # [obs_dim] float32, the state after the last step
    terminated: bool  # the last step terminated the episode: no bootstrap
    log_probs: np.ndarray | None = None  # [T] float32, log mu(a_t|s_t) of the behaviour policy

    @property
    def steps(self) -> int:
        return int(self.rewards.shape[0])


class Batch(NamedTuple):
    """B rollouts padded to t_max steps, so compiled steps never retrace."""

    states: np.ndarray  # [B, t_max, obs_dim]
    actions: np.ndarray  # [B, t_max, action_dim]
    rewards: np.ndarray  # [B, t_max], 0 where mask is 0
    mask: np.ndarray  # [B, t_max], 1 for real steps
    next_states: np.ndarray  # [B, obs_dim]
    bootstrap: np.ndarray  # [B], 0 where the rollout terminated, else 1
    behaviour_log_probs: np.ndarray  # [B, t_max], log mu(a|s) (0 where mask is 0 or unknown)


def pad(rollouts: Sequence[Rollout], t_max: int) -> Batch:
    """Stacks rollouts of T <= t_max steps into a Batch (zero padding, mask)."""
    b = len(rollouts)
    obs_dim = rollouts[0].states.shape[1]
    act_dim = rollouts[0].actions.shape[1]
    states = np.zeros((b, t_max, obs_dim), np.float32)
    actions = np.zeros((b, t_max, act_dim), np.float32)
    rewards = np.zeros((b, t_max), np.float32)
    mask = np.zeros((b, t_max), np.float32)
    log_probs = np.zeros((b, t_max), np.float32)
    for i, r in enumerate(rollouts):
        t = r.steps
        if not 1 <= t <= t_max:
            raise ValueError(f"rollout has {t} steps; expected 1..{t_max}")
        states[i, :t] = r.states
        actions[i, :t] = r.actions
        rewards[i, :t] = r.rewards
        mask[i, :t] = 1.0
        if r.log_probs is not None:
            log_probs[i, :t] = r.log_probs
    next_states = np.stack([r.next_state for r in rollouts]).astype(np.float32)
    bootstrap = np.array([0.0 if r.terminated else 1.0 for r in rollouts], np.float32)
    return Batch(states, actions, rewards, mask, next_states, bootstrap, log_probs)
