"""Running statistics: the parallel merge, the worker's normalizer, the collector with it."""

import gymnasium as gym
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from a3c.normalization import EPSILON, Moments, Normalizer, Statistics, merge_all
from a3c.rollout import Collector


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300),
    cuts=st.lists(st.integers(0, 300), max_size=8),
    seed=st.integers(0, 2**16),
    scale=st.floats(1e-3, 1e3),
)
def test_merging_any_split_gives_the_moments_of_the_whole(n, cuts, seed, scale):
    x = np.random.default_rng(seed).normal(5.0, scale, size=(n, 3))
    bounds = sorted({0, n, *(c % (n + 1) for c in cuts)})
    parts = [Moments.of(x[a:b]) for a, b in zip(bounds, bounds[1:])]
    merged = merge_all([Statistics(p, Moments.zeros(1)) for p in parts]).obs
    whole = Moments.of(x)
    assert merged.count == n
    np.testing.assert_allclose(merged.mean, x.mean(0), rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(merged.var, x.var(0), rtol=1e-6)
    np.testing.assert_allclose(merged.m2, whole.m2, rtol=1e-6)


def test_moments_of_nothing_merge_as_nothing_and_bad_increments_say_why():
    m = Moments.of(np.arange(6.0).reshape(3, 2))
    assert Moments.zeros(2).merge(m) == m and m.merge(Moments.zeros(2)) == m
    np.testing.assert_array_equal(Moments.zeros(2).var, [1.0, 1.0])
    assert m.invalid(2) is None
    assert "count" in Moments(-1.0, m.mean, m.m2).invalid(2)
    assert "count" in Moments(float("nan"), m.mean, m.m2).invalid(2)
    assert "finite" in Moments(3.0, np.array([np.inf, 0.0]), m.m2).invalid(2)
    assert ">= 0" in Moments(3.0, m.mean, np.array([-1.0, 0.0])).invalid(2)
    assert "shape" in m.invalid(3)
    assert "zeros" in Moments(0.0, m.mean, m.m2).invalid(2)


def test_the_normalizer_normalizes_with_its_statistics_and_counts_raw_values():
    norm = Normalizer(2, num_envs=2, gamma=0.5, observations=True, rewards=True, obs_clip=3.0)
    seen = np.array([[0.0, 10.0], [2.0, 30.0], [4.0, 20.0]])
    stats = Statistics(Moments.of(seen), Moments.of(np.array([[1.0], [3.0]])))
    norm.set(stats)
    raw = np.array([[2.0, 20.0], [100.0, 20.0]], np.float32)
    want = (raw - seen.mean(0)) / np.sqrt(seen.var(0) + EPSILON)
    np.testing.assert_allclose(norm.obs(raw), np.clip(want, -3, 3), rtol=1e-6)
    assert norm.obs(raw)[1, 0] == 3.0  # clipped
    norm.see_obs(raw)
    norm.start_episode(0)
    assert norm.reward(0, 2.0) == np.float32(2.0 / np.sqrt(1.0 + EPSILON))
    norm.reward(0, 4.0)  # discounted return 0.5 * 2 + 4 = 5
    taken = norm.take()
    np.testing.assert_allclose(taken.obs.mean, raw.mean(0))
    np.testing.assert_allclose(taken.returns.mean, [3.5])
    assert taken.obs.count == 2 and taken.returns.count == 2
    assert norm.take().obs.count == 0  # taken once
    off = Normalizer(2, 1, 0.9, observations=False, rewards=False)
    assert off.take() is None and off.reward(0, 7.0) == 7.0 and off.obs(raw) is raw


class FixedPolicy:
    def sample_batch(self, obs):
        self.seen = obs
        return np.zeros((len(obs), 1), np.float32), np.zeros(len(obs), np.float32)

    def env_action(self, action):
        return action


def test_the_collector_puts_normalized_observations_and_scaled_rewards_into_rollouts():
    """What the policy saw is what the rollout holds; returns stay raw; the normalizer
    counts the raw observations."""
    envs = [gym.make("Pendulum-v1") for _ in range(2)]
    norm = Normalizer(3, 2, 0.9, observations=True, rewards=True)
    stats = Statistics(
        Moments(10.0, np.array([0.5, -0.5, 1.0]), np.array([10.0, 40.0, 90.0])),
        Moments(10.0, np.array([-5.0]), np.array([160.0])),
    )
    norm.set(stats)
    plain = Collector([gym.make("Pendulum-v1") for _ in range(2)], FixedPolicy(), 4, [1, 2])
    scaled = Collector(envs, FixedPolicy(), 4, [1, 2], normalizer=norm)
    for c in (plain, scaled):
        c.start(0, 1)
        c.start(1, 2)
    raw, normed = plain.collect(), scaled.collect()
    std = np.sqrt(np.array([1.0, 4.0, 9.0]) + EPSILON)
    mean = stats.obs.mean
    for a, b in zip(raw, normed):
        want = (a.rollout.states - mean) / std, (a.rollout.next_state - mean) / std
        np.testing.assert_allclose(b.rollout.states, want[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.rollout.next_state, want[1], rtol=1e-5, atol=1e-6)
        want_rewards = a.rollout.rewards / np.sqrt(16 + EPSILON)
        np.testing.assert_allclose(b.rollout.rewards, want_rewards, rtol=1e-5)
        assert b.episode_return == a.episode_return
    taken = norm.take()
    all_raw = np.concatenate([p.rollout.states for p in raw])
    assert taken.obs.count == 8
    np.testing.assert_allclose(taken.obs.mean, all_raw.mean(0), rtol=1e-5)
