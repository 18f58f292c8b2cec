"""Rollouts (up to t_max transitions of one episode): their padding into fixed-shape batches
and the collector that steps a worker's environments.

numpy only: data-mode workers build rollouts without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Rollout:
    """T consecutive transitions of one episode, as a worker collected them."""

    states: np.ndarray  # [T, obs_dim] float32
    actions: np.ndarray  # [T, action_dim] float32 (a discrete action: its index, [T, 1])
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


class Window(NamedTuple):
    """R rollouts in the layout a batched push carries: padded to the longest (T), zeros
    past each row's steps. A Collector writes a window in place as it steps."""

    states: np.ndarray  # [R, T, obs_dim]
    actions: np.ndarray  # [R, T, action_dim]
    rewards: np.ndarray  # [R, T]
    next_states: np.ndarray  # [R, obs_dim]
    terminated: np.ndarray  # [R] bool
    log_probs: np.ndarray | None  # [R, T], None when a row has none


def window_of(rollouts: Sequence[Rollout]) -> Window:
    """rollouts as a Window (one rollout: views, no copies)."""
    terminated = np.array([r.terminated for r in rollouts], bool)
    with_log_probs = all(r.log_probs is not None for r in rollouts)
    if len(rollouts) == 1:
        (r,) = rollouts
        log_probs = r.log_probs[None] if with_log_probs else None
        return Window(r.states[None], r.actions[None], r.rewards[None], r.next_state[None],
                      terminated, log_probs)  # fmt: skip
    b = pad(rollouts, max(r.steps for r in rollouts))
    log_probs = b.behaviour_log_probs if with_log_probs else None
    return Window(b.states, b.actions, b.rewards, b.next_states, terminated, log_probs)


@dataclasses.dataclass(frozen=True)
class Piece:
    """One environment's rollout of one window, and where its episode stands after it."""

    env: int  # index of the environment in its Collector
    lease_id: int
    rollout: Rollout
    episode_end: bool  # the rollout's last step ended the episode (terminated or truncated)
    episode_return: float  # raw return of the episode so far (the whole one at its end)
    episode_length: int


def env_seeds(seed: int | None, num_envs: int) -> list[int | None]:
    """Distinct, reproducible first-reset seeds of a worker's environments: environment 0
    takes the worker's seed itself (so one environment steps as a single env always did),
    environment k > 0 one drawn from (seed, k)."""
    if seed is None:
        return [None] * num_envs
    return [seed] + [
        int(np.random.SeedSequence([seed, k]).generate_state(1)[0]) for k in range(1, num_envs)
    ]


class Collector:
    """Steps M environments with one batched policy forward per step; each window yields
    one rollout per environment that trains an episode: up to t_max steps, cut at the
    episode's end (terminated or truncated), so no rollout crosses an episode boundary.

    Each environment trains the episode of its own lease (start); one without a lease
    waits, and one whose episode ended waits for the rest of the window. Only the first
    reset of each environment is seeded (env_seeds); later resets continue its stream.
    `policy` has sample_batch(obs [R, obs_dim]) -> (actions [R, A], log-probs [R]) and
    env_action(action row) -> the action as env.step takes it (a3c.policy.NumpyPolicy).
    With a `normalizer` (a3c.normalization.Normalizer) the policy sees, and the rollouts
    hold, normalized observations and training rewards, and the normalizer counts the raw
    ones; episode returns stay raw.

    A window is written in place into fresh [R, t_max, ...] arrays (R: the environments
    with an episode), `window` after collect(); each Piece's rollout is a view of its row.
    """

    def __init__(
        self, envs: Sequence, policy, t_max: int, seeds: Sequence[int | None], normalizer=None
    ):
        self.envs, self.policy, self.t_max = list(envs), policy, t_max
        self.normalizer = normalizer
        m = len(self.envs)
        self._seeds = list(seeds)
        self._obs: np.ndarray | None = None  # [M, obs_dim], each environment's last one
        self._lease: list[int | None] = [None] * m
        self._limit = [0] * m
        self._ret, self._len = [0.0] * m, [0] * m
        self.env_seconds = self.inference_seconds = 0.0  # accumulated; callers read and reset
        self.window: Window | None = None  # the last collect's, its rows its pieces'

    @property
    def idle(self) -> list[int]:
        """Environments without an episode to train."""
        return [k for k, lease in enumerate(self._lease) if lease is None]

    @property
    def leases(self) -> list[int]:
        """Leases of the episodes being trained."""
        return [lease for lease in self._lease if lease is not None]

    def start(self, k: int, lease_id: int, limit: int = 0) -> None:
        """Resets environment k for the episode of lease_id; with a limit, the episode
        ends after that many steps (the budget's, as a time limit: it bootstraps)."""
        obs, _ = self.envs[k].reset(seed=self._seeds[k])
        self._seeds[k] = None
        if self.normalizer is not None:
            self.normalizer.start_episode(k)
        obs = np.asarray(obs, np.float32).reshape(-1)
        if self._obs is None:
            self._obs = np.zeros((len(self.envs), obs.size), np.float32)
        self._obs[k] = obs
        self._lease[k], self._ret[k], self._len[k] = lease_id, 0.0, 0
        self._limit[k] = limit

    def drop(self, lease_ids) -> None:
        """Abandons the episodes of these leases (lost to the server, or stopping)."""
        lost = set(lease_ids)
        for k, lease in enumerate(self._lease):
            if lease in lost:
                self._lease[k] = None

    def collect(self) -> list[Piece]:
        """Steps every environment with an episode up to t_max times; one Piece each."""
        running = [k for k, lease in enumerate(self._lease) if lease is not None]
        if not running:
            self.window = None
            return []
        r, t_max, norm, to_env = len(running), self.t_max, self.normalizer, self.policy.env_action
        states = np.zeros((r, t_max, self._obs.shape[1]), np.float32)
        rewards = np.zeros((r, t_max), np.float32)
        log_probs = np.zeros((r, t_max), np.float32)
        actions = None  # [r, t_max, action_dim] once the policy has said action_dim
        steps = np.full(r, t_max)
        terminated, ended = np.zeros(r, bool), np.zeros(r, bool)
        rows, envs = list(range(r)), list(running)  # the rows still stepping, their envs
        for t in range(t_max):
            t0 = time.perf_counter()
            obs = self._obs[envs]
            if norm is not None:
                norm.see_obs(obs)
                obs = norm.obs(obs)
            acts, logps = self.policy.sample_batch(obs)
            if actions is None:
                actions = np.zeros((r, t_max, acts.shape[1]), np.float32)
            states[rows, t], actions[rows, t], log_probs[rows, t] = obs, acts, logps
            t1 = time.perf_counter()
            still = []
            for j, (i, k) in enumerate(zip(rows, envs, strict=True)):
                next_obs, reward, term, trunc, _ = self.envs[k].step(to_env(acts[j]))
                reward = float(reward)
                rewards[i, t] = reward if norm is None else norm.reward(k, reward)
                self._obs[k] = np.ravel(next_obs)
                self._ret[k] += reward
                self._len[k] += 1
                if term or trunc or self._len[k] == self._limit[k]:
                    steps[i], terminated[i], ended[i] = t + 1, bool(term), True
                else:
                    still.append(i)
            self.inference_seconds += t1 - t0
            self.env_seconds += time.perf_counter() - t1
            if not still:
                break
            rows, envs = still, [running[i] for i in still]
        t = int(steps.max())
        next_states = self._obs[running]
        if norm is not None:
            next_states = norm.obs(next_states)
        self.window = Window(states[:, :t], actions[:, :t], rewards[:, :t], next_states,
                             terminated, log_probs[:, :t])  # fmt: skip
        pieces = []
        for i, k in enumerate(running):
            n = int(steps[i])
            rollout = Rollout(states[i, :n], actions[i, :n], rewards[i, :n], next_states[i],
                              bool(terminated[i]), log_probs[i, :n])  # fmt: skip
            end = bool(ended[i])
            pieces.append(Piece(k, self._lease[k], rollout, end, self._ret[k], self._len[k]))
            if end:
                self._lease[k] = None
        return pieces
