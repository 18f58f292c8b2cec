"""The learner's diagnostics, computed in the compiled update, against numpy on a fixed batch."""

import math

import numpy as np
import pytest

from a3c.config import TrainConfig
from a3c.model import build_actor, build_critic, env_spec, make_env, networks
from a3c.rollout import Rollout, pad
from a3c.trainer import Trainer


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_diagnostics_match_numpy(env_id):
    cfg = TrainConfig(env_id=env_id, t_max=4, grad_clip_norm=0.5, lr_schedule="constant")
    spec = env_spec(make_env(env_id))
    trainer = Trainer(build_actor(spec, cfg), build_critic(spec, cfg), spec, cfg)
    rng = np.random.default_rng(7)
    if spec.discrete:
        actions = rng.integers(0, spec.n_actions, size=(3, 1)).astype(np.float32)
    else:
        actions = rng.uniform(-2, 2, size=(3, 1)).astype(np.float32)
    rollout = Rollout(
        rng.normal(size=(3, spec.obs_dim)).astype(np.float32), actions,
        rng.uniform(-3, 1, size=3).astype(np.float32),
        rng.normal(size=spec.obs_dim).astype(np.float32), False,
        log_probs=rng.normal(-1.0, 0.5, size=3).astype(np.float32),
    )  # fmt: skip
    batch = pad([rollout], cfg.t_max)
    actor_net, critic_net = networks(spec, cfg)
    aw, cw = trainer.actor.get_weights(), trainer.critic.get_weights()
    grads = trainer.gradients(batch)  # at the same weights as the diagnosed update
    _, d = trainer.data_step(batch, diagnostics=True)

    v = critic_net.forward(cw, rollout.states)[0][:, 0].astype(np.float64)
    boot = float(critic_net.forward(cw, rollout.next_state[None])[0][0, 0])
    r = (rollout.rewards.astype(np.float64) + cfg.reward_shift) / cfg.reward_scale
    y, acc = np.zeros(3), boot
    for t in reversed(range(3)):
        acc = r[t] + cfg.gamma * acc
        y[t] = acc
    heads = [h.astype(np.float64) for h in actor_net.forward(aw, rollout.states)]
    if spec.discrete:
        logp_all = heads[0] - np.log(np.exp(heads[0]).sum(1, keepdims=True))
        entropy = -np.sum(np.exp(logp_all) * logp_all, 1)
        logp = logp_all[np.arange(3), actions[:, 0].astype(int)]
        assert math.isnan(d["policy_std"])
    else:
        std = np.clip(heads[1][:, 0], cfg.std_min, cfg.std_max)
        mu = 2.0 * heads[0][:, 0]
        entropy = np.log(std) + 0.5 * (np.log(2 * np.pi) + 1)
        logp = -((actions[:, 0] - mu) ** 2) / (2 * std**2) - np.log(std * np.sqrt(2 * np.pi))
        assert d["policy_std"] == pytest.approx(std.mean(), rel=1e-4)
    assert d["entropy"] == pytest.approx(entropy.mean(), rel=1e-4)
    assert d["explained_variance"] == pytest.approx(1 - np.var(y - v) / np.var(y), rel=1e-3)
    assert d["value_mean"] == pytest.approx(v.mean(), rel=1e-4)
    assert d["value_loss"] == pytest.approx(np.mean((y - v) ** 2), rel=1e-4)
    assert d["advantage_mean"] == pytest.approx(np.mean(y - v), rel=1e-4, abs=1e-6)
    assert d["advantage_std"] == pytest.approx(np.std(y - v), rel=1e-4)
    assert d["policy_loss"] == pytest.approx(np.mean(-logp * (y - v)), rel=1e-3, abs=1e-6)
    log_rho = logp - rollout.log_probs
    assert d["log_ratio_abs_mean"] == pytest.approx(np.mean(np.abs(log_rho)), rel=1e-4)
    assert d["vtrace_truncated_ratio"] == pytest.approx(np.mean(log_rho > 0.0))
    n_actor = trainer.n_actor
    assert d["actor_grad_norm"] == pytest.approx(np.linalg.norm(grads[:n_actor]), rel=1e-4)
    assert d["critic_grad_norm"] == pytest.approx(np.linalg.norm(grads[n_actor:]), rel=1e-4)
    assert (d["actor_lr"], d["critic_lr"]) == pytest.approx((cfg.actor_lr, cfg.critic_lr))
    _, applied = trainer.gradient_step(grads, diagnostics=True)
    assert set(applied) == {"actor_grad_norm", "critic_grad_norm", "actor_lr", "critic_lr"}
    assert applied["actor_grad_norm"] == pytest.approx(d["actor_grad_norm"], rel=1e-4)
    assert max(trainer.trace_counts().values()) == 1
