"""The A3C math against hand-computed numbers and closed forms; numpy forward == Keras."""

import math

import numpy as np
import pytest

from a3c import algo
from a3c.config import TrainConfig
from a3c.model import actor_forward, build_actor, build_critic, critic_forward, env_spec, make_env
from a3c.rollout import Rollout, pad

GAMMA = 0.9


def targets_of(rewards, terminated, v_next, t_max=4):
    rollout = Rollout(
        states=np.zeros((len(rewards), 3), np.float32),
        actions=np.zeros((len(rewards), 1), np.float32),
        rewards=np.asarray(rewards, np.float32),
        next_state=np.zeros(3, np.float32),
        terminated=terminated,
    )
    batch = pad([rollout], t_max)
    out = algo.n_step_targets(batch.rewards, batch.mask, batch.bootstrap * v_next, GAMMA)
    return out.numpy()[0]


def test_targets_bootstrap_mid_episode():
    # y_0 = 1 + .9*2 + .81*3 + .729*4 + .6561*10; y_3 = 4 + .9*10
    y = targets_of([1, 2, 3, 4], terminated=False, v_next=10.0)
    expected = [
        1 + 0.9 * 2 + 0.81 * 3 + 0.729 * 4 + 0.6561 * 10,
        2 + 0.9 * 3 + 0.81 * 4 + 0.729 * 10,
        3 + 0.9 * 4 + 0.81 * 10,
        4 + 0.9 * 10,
    ]
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_targets_terminated_do_not_bootstrap():
    y = targets_of([1, 2, 3, 4], terminated=True, v_next=10.0)
    np.testing.assert_allclose(y, [1 + 1.8 + 2.43 + 2.916, 2 + 2.7 + 3.24, 3 + 3.6, 4], rtol=1e-6)


def test_targets_truncated_short_rollout_bootstraps_and_pads_zero():
    # Truncation (time limit) is not termination: V(s_T) still counts; 2 real steps of 4.
    y = targets_of([1, 2], terminated=False, v_next=10.0)
    np.testing.assert_allclose(y, [1 + 0.9 * 2 + 0.81 * 10, 2 + 0.9 * 10, 0, 0], rtol=1e-6)


def test_gaussian_log_prob_closed_form():
    a, mu, std = np.array([[0.3, -1.0]]), np.array([[0.1, 0.5]]), np.array([[0.5, 2.0]])
    expected = sum(
        -((x - m) ** 2) / (2 * s**2) - math.log(s * math.sqrt(2 * math.pi))
        for x, m, s in zip(a[0], mu[0], std[0])
    )
    got = algo.gaussian_log_prob(
        a.astype(np.float32), mu.astype(np.float32), std.astype(np.float32)
    )
    assert got.numpy()[0] == pytest.approx(expected, rel=1e-6)


@pytest.fixture(scope="module")
def nets():
    cfg = TrainConfig()
    spec = env_spec(make_env(cfg.env_id))
    return spec, cfg, build_actor(spec, cfg), build_critic(spec, cfg)


def test_numpy_forward_equals_keras(nets):
    spec, cfg, actor, critic = nets
    obs = np.random.default_rng(0).normal(size=(64, spec.obs_dim)).astype(np.float32) * 3
    mu, std = actor(obs)
    np_mu, np_std = actor_forward(actor.get_weights(), obs)
    np.testing.assert_allclose(np_mu, mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(np_std, std.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        critic_forward(critic.get_weights(), obs), critic(obs).numpy()[:, 0], atol=1e-5
    )


def test_policy_distribution_scales_and_clips(nets):
    spec, cfg, _, _ = nets
    mu, std = algo.policy_distribution(
        np.array([[0.5]], np.float32), np.array([[5.0]], np.float32), spec, cfg
    )
    assert np.asarray(mu)[0, 0] == pytest.approx(1.0)  # tanh output 0.5 x action bound 2.0
    assert std.numpy()[0, 0] == pytest.approx(cfg.std_max)


def test_losses_match_numpy_ground_truth(nets):
    spec, cfg, actor, critic = nets
    rng = np.random.default_rng(1)
    rollout = Rollout(
        rng.normal(size=(3, 3)).astype(np.float32),
        rng.uniform(-2, 2, size=(3, 1)).astype(np.float32),
        rng.uniform(-16, 0, size=3).astype(np.float32),
        rng.normal(size=3).astype(np.float32),
        False,
    )
    actor_loss, critic_loss = algo.losses(actor, critic, pad([rollout], cfg.t_max), spec, cfg)
    aw, cw = actor.get_weights(), critic.get_weights()
    v = critic_forward(cw, rollout.states).astype(np.float64)
    boot = float(critic_forward(cw, rollout.next_state[None])[0])
    r = (rollout.rewards.astype(np.float64) + cfg.reward_shift) / cfg.reward_scale
    y, acc = np.zeros(3), boot
    for t in reversed(range(3)):
        acc = r[t] + cfg.gamma * acc
        y[t] = acc
    mu_raw, std_raw = actor_forward(aw, rollout.states)
    mu, std = 2.0 * mu_raw[:, 0], np.clip(std_raw[:, 0], cfg.std_min, cfg.std_max)
    a = rollout.actions[:, 0]
    logp = -((a - mu) ** 2) / (2 * std**2) - np.log(std * np.sqrt(2 * np.pi))
    assert actor_loss.numpy() == pytest.approx(-np.sum(logp * (y - v)), rel=1e-4)
    assert critic_loss.numpy() == pytest.approx(np.mean((y - v) ** 2), rel=1e-4)
