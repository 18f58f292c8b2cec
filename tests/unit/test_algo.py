"""The A3C math against hand-computed numbers and closed forms; numpy forward == Keras."""

import dataclasses
import math

import numpy as np
import pytest

from a3c import algo
from a3c.config import TrainConfig, preset_config
from a3c.model import (
    NumpyPolicy,
    actor_forward,
    build_actor,
    build_critic,
    critic_forward,
    env_spec,
    make_env,
)
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


def vtrace_of(ratios, rho_clip, c_clip, t_max=4):
    """V-trace of one 3-step rollout (gamma 0.5, V = 0.5, 1.0, 1.5, bootstrap 2.0), padded."""
    pad_to = t_max - 3
    row = lambda xs: np.array([[*xs, *[0.0] * pad_to]], np.float32)  # noqa: E731
    vs, adv = algo.vtrace_targets(
        row([1.0, 2.0, 3.0]), row([1, 1, 1]), row([0.5, 1.0, 1.5]), np.array([2.0], np.float32),
        row(np.log(ratios)), 0.5, rho_clip, c_clip,
    )  # fmt: skip
    return vs.numpy()[0], adv.numpy()[0]


def test_vtrace_hand_computed_three_steps_with_clipping():
    # pi/mu = 2, 0.5, 1.5; rho-bar = c-bar = 1: rho = c = (1, 0.5, 1).
    # deltas: 1*(1 + .5*1 - .5) = 1; .5*(2 + .5*1.5 - 1) = .875; 1*(3 + .5*2 - 1.5) = 2.5.
    # v_2 = 1.5 + 2.5 = 4; v_1 = 1 + .875 + .5*.5*2.5 = 2.5; v_0 = .5 + 1 + .5*1*1.5 = 2.25.
    # advantages: 1*(1 + .5*2.5 - .5) = 1.75; .5*(2 + .5*4 - 1) = 1.5; 1*(3 + .5*2 - 1.5) = 2.5.
    vs, adv = vtrace_of([2.0, 0.5, 1.5], 1.0, 1.0)
    np.testing.assert_allclose(vs, [2.25, 2.5, 4.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(adv, [1.75, 1.5, 2.5, 0.0], rtol=1e-6)
    # c-bar = 0.4 cuts the traces only: v_1 = 1 + .875 + .5*.4*2.5 = 2.375,
    # v_0 = .5 + 1 + .5*.4*1.375 = 1.775; advantage_0 = 1 + .5*2.375 - .5 = 1.6875.
    vs, adv = vtrace_of([2.0, 0.5, 1.5], 1.0, 0.4)
    np.testing.assert_allclose(vs, [1.775, 2.375, 4.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(adv, [1.6875, 1.5, 2.5, 0.0], rtol=1e-6)


@pytest.mark.parametrize("clip", [1.0, 2.5])
def test_vtrace_on_policy_equals_the_n_step_targets(clip):
    """pi = mu: V-trace's targets are the n-step targets and its advantages y - V, for
    full, short and terminated rollouts alike."""
    rng = np.random.default_rng(7)
    lengths, bootstrap = [4, 2, 3], np.array([1.0, 1.0, 0.0], np.float32)
    mask = np.array([[1.0] * n + [0.0] * (4 - n) for n in lengths], np.float32)
    rewards = rng.normal(size=(3, 4)).astype(np.float32) * mask
    values = rng.normal(size=(3, 4)).astype(np.float32) * mask
    boot = rng.normal(size=3).astype(np.float32) * bootstrap
    y = algo.n_step_targets(rewards, mask, boot, GAMMA).numpy()
    vs, adv = algo.vtrace_targets(rewards, mask, values, boot, np.zeros_like(mask), GAMMA,
                                  clip, clip)  # fmt: skip
    np.testing.assert_allclose(vs.numpy(), y, atol=1e-5)
    np.testing.assert_allclose(adv.numpy(), (y - values) * mask, atol=1e-5)


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


CONFIGS = {
    "seed": preset_config("seed"),
    "default": TrainConfig(),
    "entropy+normalized": preset_config("seed", entropy_coef=0.05, normalize_advantages=True),
    "vtrace": TrainConfig(off_policy="vtrace", vtrace_rho_clip=1.2, vtrace_c_clip=0.8),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def nets(request):
    cfg = CONFIGS[request.param]
    spec = env_spec(make_env(cfg.env_id))
    return spec, cfg, build_actor(spec, cfg), build_critic(spec, cfg)


def test_numpy_forward_equals_keras(nets):
    spec, cfg, actor, critic = nets
    obs = np.random.default_rng(0).normal(size=(64, spec.obs_dim)).astype(np.float32) * 3
    mu, std = actor(obs)
    np_mu, np_std = actor_forward(actor.get_weights(), obs, cfg.std_mode)
    np.testing.assert_allclose(np_mu, mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(np_std, std.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        critic_forward(critic.get_weights(), obs), critic(obs).numpy()[:, 0], atol=1e-5
    )


def test_a_workers_log_prob_is_the_learners(nets):
    """The behaviour log-probability a worker sends (numpy) is the learner's log pi (Keras)
    at the same weights: V-trace's importance weights are 1 on-policy."""
    spec, cfg, actor, _ = nets
    policy = NumpyPolicy(spec, cfg, np.random.default_rng(3))
    policy.set_weights(actor.get_weights())
    obs = np.random.default_rng(4).normal(size=(16, spec.obs_dim)).astype(np.float32)
    sent = [policy.sample_with_log_prob(o) for o in obs]
    actions = np.stack([a for a, _ in sent])
    mu, std = algo.policy_distribution(*actor(obs), spec, cfg)
    learner = algo.gaussian_log_prob(actions, mu, std).numpy()
    np.testing.assert_allclose([lp for _, lp in sent], learner, atol=1e-4)


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
    aw, cw = actor.get_weights(), critic.get_weights()
    v = critic_forward(cw, rollout.states).astype(np.float64)
    boot = float(critic_forward(cw, rollout.next_state[None])[0])
    r = (rollout.rewards.astype(np.float64) + cfg.reward_shift) / cfg.reward_scale
    y, acc = np.zeros(3), boot
    for t in reversed(range(3)):
        acc = r[t] + cfg.gamma * acc
        y[t] = acc
    mu_raw, std_raw = actor_forward(aw, rollout.states, cfg.std_mode)
    mu, std = 2.0 * mu_raw[:, 0], np.clip(std_raw[:, 0], cfg.std_min, cfg.std_max)
    a = rollout.actions[:, 0]
    logp = -((a - mu) ** 2) / (2 * std**2) - np.log(std * np.sqrt(2 * np.pi))
    # Behaviour log-probs making pi/mu = 0.55, 1.65, 1.22: both V-trace clips bite.
    rollout = dataclasses.replace(rollout, log_probs=(logp - [-0.6, 0.5, 0.2]).astype(np.float32))
    actor_loss, critic_loss = algo.losses(actor, critic, pad([rollout], cfg.t_max), spec, cfg)
    adv = y - v
    if cfg.off_policy == "vtrace":  # the paper's sums, written out
        ratio = np.exp(logp - rollout.log_probs)
        rho, c = np.minimum(cfg.vtrace_rho_clip, ratio), np.minimum(cfg.vtrace_c_clip, ratio)
        v_next = np.append(v[1:], boot)
        delta = rho * (r + cfg.gamma * v_next - v)
        y = np.array([
            v[s] + sum(cfg.gamma ** (t - s) * np.prod(c[s:t]) * delta[t] for t in range(s, 3))
            for s in range(3)
        ])  # fmt: skip
        adv = rho * (r + cfg.gamma * np.append(y[1:], boot) - v)
    if cfg.normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-6)
    entropy = np.log(std) + 0.5 * (np.log(2 * np.pi) + 1)
    want = -np.sum(logp * adv) - cfg.entropy_coef * np.sum(entropy)
    assert actor_loss.numpy() == pytest.approx(want, rel=1e-4)
    assert critic_loss.numpy() == pytest.approx(np.mean((y - v) ** 2), rel=1e-4)
