"""The learner's diagnostics, computed in the compiled update, against numpy on a fixed batch."""

import math

import numpy as np
import pytest

from a3c.config import TrainConfig
from a3c.envs import env_spec, make_env
from a3c.model import build_actor, build_critic, networks
from a3c.rollout import Rollout, pad
from a3c.trainer import Trainer
from tests.unit.test_algo import np_log_prob_entropy, np_values_targets


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
    aw, cw = trainer.actor.get_weights(), trainer.critic.get_weights()
    grads = trainer.gradients(batch)  # at the same weights as the diagnosed update
    _, d = trainer.data_step(batch, diagnostics=True)

    v, y, _ = np_values_targets(spec, cfg, cw, rollout)
    heads = networks(spec, cfg)[0].forward(aw, rollout.states)
    logp, entropy = np_log_prob_entropy(spec, cfg, heads, actions)
    if spec.discrete:
        assert math.isnan(d["policy_std"])
    else:
        std = np.clip(heads[1][:, 0], cfg.std_min, cfg.std_max)
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
