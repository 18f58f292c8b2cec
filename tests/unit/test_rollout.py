"""The collector: M environments stepped together, rollouts that never cross an episode's
end, termination without bootstrap and truncation with it, one environment as a single
env always stepped, windows written in place as the reference builds them."""

import gymnasium as gym
import numpy as np
import pytest

from a3c import codec
from a3c.config import TrainConfig
from a3c.envs import env_spec, make_env
from a3c.model import weight_shapes
from a3c.policy import NumpyPolicy
from a3c.rollout import Collector, Rollout, env_seeds, pad


class Countdown(gym.Env):
    """Observation = steps taken; reward = 1 per step; the episode ends after `length`
    steps, terminated or (a time limit) truncated."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, length: int, truncate: bool):
        self.length, self.truncate, self.t = length, truncate, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        obs = np.array([self.t], np.float32)
        return obs, 1.0, end and not self.truncate, end and self.truncate, {}


class ZeroPolicy:
    def sample_batch(self, obs):
        return np.zeros((len(obs), 1), np.float32), np.full(len(obs), -1.0, np.float32)

    def env_action(self, action):
        return action


def test_rollouts_stop_at_each_episode_end_and_bootstrap_only_truncations():
    envs = [Countdown(5, False), Countdown(6, True), Countdown(9, False)]
    collector = Collector(envs, ZeroPolicy(), t_max=4, seeds=[None] * 3)
    for k in range(3):
        collector.start(k, lease_id=10 + k)
    windows = []
    while collector.leases:
        windows.append({p.env: p for p in collector.collect()})
    # Env 0 (5 steps): 4 + 1; env 1 (6): 4 + 2; env 2 (9): 4 + 4 + 1.
    steps = [{k: p.rollout.steps for k, p in w.items()} for w in windows]
    assert steps == [{0: 4, 1: 4, 2: 4}, {0: 1, 1: 2, 2: 4}, {2: 1}]
    for k, length, truncated in ((0, 5, False), (1, 6, True), (2, 9, False)):
        pieces = [w[k] for w in windows if k in w]
        assert [p.episode_end for p in pieces] == [False] * (len(pieces) - 1) + [True]
        assert {p.lease_id for p in pieces} == {10 + k}
        last = pieces[-1]
        assert last.episode_length == length and last.episode_return == float(length)
        assert last.rollout.terminated is not truncated
        assert last.rollout.next_state[0] == length, "next_state: the state after the last step"
        # Consecutive states of one episode, none from another one.
        states = np.concatenate([p.rollout.states[:, 0] for p in pieces])
        np.testing.assert_array_equal(states, np.arange(length))
    batch = pad([windows[1][0].rollout, windows[1][1].rollout], 4)
    np.testing.assert_array_equal(batch.bootstrap, [0.0, 1.0])  # terminated; truncated
    np.testing.assert_array_equal(batch.mask.sum(1), [1, 2])
    assert collector.idle == [0, 1, 2]


def test_an_environment_without_a_lease_waits():
    envs = [Countdown(3, False), Countdown(3, False)]
    collector = Collector(envs, ZeroPolicy(), t_max=2, seeds=[None, None])
    collector.start(1, lease_id=7)
    pieces = collector.collect()
    assert [(p.env, p.lease_id) for p in pieces] == [(1, 7)]
    assert envs[0].t == 0, "an idle environment is not stepped"
    collector.drop([7])
    assert collector.collect() == [] and collector.idle == [0, 1]


def single_env_rollouts(env, policy, seed, t_max, episodes):
    """One environment stepped one action at a time, a rollout every t_max steps or at the
    episode's end: the single-environment worker's loop, written out."""
    out, first = [], True
    for _ in range(episodes):
        obs, _ = env.reset(seed=seed if first else None)
        first = False
        obs = np.asarray(obs, np.float32).reshape(-1)
        states, actions, rewards, log_probs = [], [], [], []
        while True:
            action, log_prob = policy.sample_with_log_prob(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            next_obs = np.asarray(next_obs, np.float32).reshape(-1)
            states.append(obs), actions.append(action), rewards.append(float(reward))
            log_probs.append(log_prob)
            obs = next_obs
            if len(rewards) == t_max or terminated or truncated:
                out.append(
                    Rollout(np.stack(states), np.stack(actions), np.asarray(rewards, np.float32),
                            next_obs, bool(terminated), np.asarray(log_probs, np.float32))
                )  # fmt: skip
                states, actions, rewards, log_probs = [], [], [], []
                if terminated or truncated:
                    break
    return out


def test_one_environment_steps_exactly_as_a_single_env_worker():
    cfg = TrainConfig()
    spec = env_spec(make_env(cfg.env_id))
    rng = np.random.default_rng(0)
    actor = [rng.normal(0, 0.3, s).astype(np.float32) for s in weight_shapes(spec, cfg)[0]]

    def policy(seed):
        p = NumpyPolicy(spec, cfg, np.random.default_rng(seed))
        p.set_weights(actor)
        return p

    want = single_env_rollouts(make_env(cfg.env_id), policy(5), 11, cfg.t_max, episodes=2)
    collector = Collector([make_env(cfg.env_id)], policy(5), cfg.t_max, env_seeds(11, 1))
    got = []
    for lease in (1, 2):
        collector.start(0, lease)
        while collector.leases:
            got += [p.rollout for p in collector.collect()]
    assert len(got) == len(want) == 100
    for g, w in zip(got, want):
        for field in ("states", "actions", "rewards", "next_state", "log_probs"):
            np.testing.assert_allclose(getattr(g, field), getattr(w, field), rtol=1e-6)
        assert g.terminated == w.terminated


def test_environment_seeds_are_distinct_and_reproducible():
    seeds = env_seeds(3, 64)
    assert seeds[0] == 3 and len(set(seeds)) == 64
    assert seeds == env_seeds(3, 64)
    assert not set(seeds[1:]) & set(env_seeds(4, 64)[1:])
    assert env_seeds(None, 2) == [None, None]


class EndAfter(gym.Wrapper):
    """Ends each episode after n steps: terminated, or truncated (a time limit)."""

    def __init__(self, env, n: int, truncate: bool):
        super().__init__(env)
        self.n, self.truncate, self.t = n, truncate, 0

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, _, _, info = self.env.step(action)
        self.t += 1
        end = self.t >= self.n
        return obs, reward, end and not self.truncate, end and self.truncate, info


def reference_windows(envs, policy, t_max, seeds, windows):
    """The collector's windows written out with per-step lists, one environment at a
    time: every environment steps up to t_max times a window, its episode's end cuts its
    rollout, and a new episode (a reset, unseeded after the first) starts next window."""
    obs = [np.asarray(e.reset(seed=s)[0], np.float32).reshape(-1) for e, s in zip(envs, seeds)]
    out = []
    for _ in range(windows):
        running, taken, ended = list(range(len(envs))), {}, {}
        for _ in range(t_max):
            if not running:
                break
            actions, log_probs = policy.sample_batch(np.stack([obs[k] for k in running]))
            still = []
            for i, k in enumerate(running):
                states, acts, rewards, logps = taken.setdefault(k, ([], [], [], []))
                states.append(obs[k]), acts.append(actions[i]), logps.append(log_probs[i])
                nxt, reward, term, trunc, _ = envs[k].step(policy.env_action(actions[i]))
                rewards.append(float(reward))
                obs[k] = np.asarray(nxt, np.float32).reshape(-1)
                if term or trunc:
                    ended[k] = bool(term)
                else:
                    still.append(k)
            running = still
        out.append({
            k: Rollout(np.stack(s), np.stack(a), np.asarray(r, np.float32), obs[k].copy(),
                       ended.get(k, False), np.asarray(lp, np.float32))
            for k, (s, a, r, lp) in taken.items()
        })  # fmt: skip
        for k in ended:
            obs[k] = np.asarray(envs[k].reset()[0], np.float32).reshape(-1)
    return out


@pytest.mark.parametrize("ends", [[(7, True)], [(6, False), (9, True), (13, True), (5, False)]])
def test_windows_written_in_place_equal_the_reference_and_go_on_the_wire_as_they_are(ends):
    """M = 1 and M = 4 Pendulums with episodes that terminate or are truncated mid-window
    and at a window's end: the collector's rollouts equal the reference's (states, actions,
    rewards, next states, termination, log-probs), and its window is their batched push."""
    cfg = TrainConfig()
    spec = env_spec(make_env(cfg.env_id))
    rng = np.random.default_rng(3)
    actor = [rng.normal(0, 0.3, s).astype(np.float32) for s in weight_shapes(spec, cfg)[0]]

    def run(collect):
        policy = NumpyPolicy(spec, cfg, np.random.default_rng(9))
        policy.set_weights(actor)
        envs = [EndAfter(make_env(cfg.env_id), n, truncate) for n, truncate in ends]
        return collect(envs, policy, env_seeds(21, len(envs)))

    t_max, windows = 4, 12
    want = run(lambda envs, policy, seeds: reference_windows(envs, policy, t_max, seeds, windows))

    def collected(envs, policy, seeds):
        collector, leases, out = Collector(envs, policy, t_max, seeds), iter(range(1, 999)), []
        for _ in range(windows):
            for k in collector.idle:
                collector.start(k, next(leases))
            pieces = collector.collect()
            wire = codec.batch_to_proto([p.rollout for p in pieces]).SerializeToString()
            assert codec.batch_to_proto(collector.window).SerializeToString() == wire
            out.append({p.env: p.rollout for p in pieces})
        return out

    got = run(collected)
    assert [sorted(w) for w in got] == [sorted(w) for w in want]
    ended = 0
    for g, w in zip(got, want):
        for k in w:
            for field in ("states", "actions", "rewards", "next_state", "log_probs"):
                np.testing.assert_array_equal(getattr(g[k], field), getattr(w[k], field))
            assert g[k].terminated is w[k].terminated
            ended += g[k].steps < t_max or g[k].terminated
    assert ended >= len(ends) * 2  # episodes did end inside the windows
