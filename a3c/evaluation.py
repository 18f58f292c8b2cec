"""The deterministic policy's episodes: what the evaluator reports and a3c-play shows
(numpy only: no TensorFlow)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def deterministic_episode(
    env, policy, seed: int, normalizer=None, observe: Callable | None = None
) -> tuple[float, int]:
    """Plays one episode from env.reset(seed=seed) with policy.act_deterministic (the mean
    action; the argmax for discrete actions) on observations normalized by `normalizer`
    (a3c.normalization.Normalizer, or None); observe(t, raw obs, action) before each step.
    Returns the raw return and the length."""
    obs, _ = env.reset(seed=seed)
    ret, t, done = 0.0, 0, False
    while not done:
        raw = np.asarray(obs, np.float32).reshape(-1)
        action = policy.act_deterministic(raw if normalizer is None else normalizer.obs(raw))
        if observe is not None:
            observe(t, raw, action)
        obs, reward, terminated, truncated, _ = env.step(policy.env_action(action))
        ret += float(reward)
        done, t = terminated or truncated, t + 1
    return ret, t


def evaluate(env, policy, seed: int, episodes: int, normalizer=None) -> tuple[list, list]:
    """Episodes seed, seed + 1, ...: their returns and lengths."""
    out = [deterministic_episode(env, policy, seed + k, normalizer) for k in range(episodes)]
    return [r for r, _ in out], [n for _, n in out]
