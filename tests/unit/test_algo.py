"""The A3C math against hand-computed numbers and closed forms; numpy forward == Keras."""

import dataclasses
import math

import numpy as np
import pytest

from a3c import algo
from a3c.config import TrainConfig, preset_config
from a3c.envs import env_spec, make_env
from a3c.model import build_actor, build_critic, networks
from a3c.policy import NumpyPolicy
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
    "discrete": TrainConfig(env_id="CartPole-v1", entropy_coef=0.05),
    "discrete vtrace": TrainConfig(
        env_id="Acrobot-v1", off_policy="vtrace", vtrace_rho_clip=1.2, vtrace_c_clip=0.8
    ),
    "gae, bounds": TrainConfig(gae_lambda=0.9, obs_normalization="bounds"),
    "vtrace lambda": TrainConfig(
        off_policy="vtrace", vtrace_rho_clip=1.2, vtrace_c_clip=0.8, gae_lambda=0.9
    ),
    "tanh, orthogonal": TrainConfig(activation="tanh", weight_init="orthogonal"),
    "discrete tanh, orthogonal": TrainConfig(
        env_id="Acrobot-v1", activation="tanh", weight_init="orthogonal"
    ),
}


def outputs(model, obs) -> list[np.ndarray]:
    """A Keras model's outputs as a list of numpy arrays (one head: a list of one)."""
    out = model(obs)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def np_values_targets(spec, cfg, critic_weights, rollout):
    """(V(s_t), n-step targets y_t, V(s_T)) of an unterminated rollout, in numpy (float64)."""
    critic_net = networks(spec, cfg)[1]
    v = critic_net.forward(critic_weights, rollout.states)[0][:, 0].astype(np.float64)
    boot = float(critic_net.forward(critic_weights, rollout.next_state[None])[0][0, 0])
    r = (rollout.rewards.astype(np.float64) + cfg.reward_shift) / cfg.reward_scale
    y, acc = np.zeros(len(r)), boot
    for t in reversed(range(len(r))):
        acc = r[t] + cfg.gamma * acc
        y[t] = acc
    return v, y, boot


def np_log_prob_entropy(spec, cfg, heads, actions):
    """log pi(a|s) and the entropy, written out in numpy (float64) from the raw heads."""
    if spec.discrete:
        logits = heads[0].astype(np.float64)
        log_z = np.log(np.sum(np.exp(logits), -1))
        logp_all = logits - log_z[:, None]
        logp = logp_all[np.arange(len(actions)), actions[:, 0].astype(int)]
        return logp, -np.sum(np.exp(logp_all) * logp_all, -1)
    mu = spec.action_center + spec.action_half_range * heads[0]
    std = np.clip(heads[1], cfg.std_min, cfg.std_max)
    z = (actions - mu) / std
    logp = np.sum(-0.5 * z**2 - np.log(std * np.sqrt(2 * np.pi)), -1)
    return logp, np.sum(np.log(std) + 0.5 * (np.log(2 * np.pi) + 1), -1)


@pytest.fixture(scope="module", params=list(CONFIGS))
def nets(request):
    cfg = CONFIGS[request.param]
    spec = env_spec(make_env(cfg.env_id))
    return spec, cfg, build_actor(spec, cfg), build_critic(spec, cfg)


def test_numpy_forward_equals_keras(nets):
    """One description (a3c.model.networks) makes the Keras models, their weight shapes
    and the numpy forward pass: all three agree."""
    spec, cfg, actor, critic = nets
    actor_net, critic_net = networks(spec, cfg)
    assert [w.shape for w in actor.get_weights()] == actor_net.shapes(spec.obs_dim)
    assert [w.shape for w in critic.get_weights()] == critic_net.shapes(spec.obs_dim)
    obs = np.random.default_rng(0).normal(size=(64, spec.obs_dim)).astype(np.float32) * 3
    for net, model in ((actor_net, actor), (critic_net, critic)):
        want = outputs(model, obs)
        got = net.forward(model.get_weights(), obs)
        assert len(got) == len(want) == len(net.heads)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, atol=1e-5)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Acrobot-v1"])
def test_orthogonal_init_has_the_baselines_gains(env_id):
    """weight_init orthogonal: hidden kernels orthogonal with gain sqrt 2, the policy's
    heads 0.01 (a near-uniform first policy, mean actions near the centre), the value 1;
    every bias 0."""
    cfg = TrainConfig(env_id=env_id, weight_init="orthogonal", hidden_sizes=(64, 64))
    spec = env_spec(make_env(env_id))
    actor, critic = build_actor(spec, cfg), build_critic(spec, cfg)
    for model, head_gain in ((actor, 0.01), (critic, 1.0)):
        for layer in model.layers:
            if not hasattr(layer, "kernel"):
                continue
            kernel, bias = (np.asarray(w) for w in layer.get_weights())
            gain = head_gain if layer.name in ("mu", "std", "logits", "value") else np.sqrt(2)
            small = min(kernel.shape)
            gram = kernel.T @ kernel if kernel.shape[0] >= kernel.shape[1] else kernel @ kernel.T
            np.testing.assert_allclose(gram, gain**2 * np.eye(small), atol=1e-5 * gain**2 + 1e-6)
            assert not bias.any()
    glorot = build_actor(spec, TrainConfig(env_id=env_id, hidden_sizes=(64, 64)))
    head = glorot.get_layer("logits" if spec.discrete else "mu").get_weights()[0]
    assert np.abs(head).max() > 0.05  # the default keeps Keras's glorot


def test_bounds_normalization_divides_each_observation_by_its_bound():
    spec = env_spec(make_env("Pendulum-v1"))
    assert spec.obs_bound == (1.0, 1.0, 8.0)
    cart = env_spec(make_env("CartPole-v1")).obs_bound  # velocities are unbounded
    assert cart == pytest.approx((4.8, 1.0, 0.41887903, 1.0))
    scaled = networks(spec, TrainConfig(obs_normalization="bounds"))[0]
    plain = networks(spec, TrainConfig())[0]
    weights = [np.asarray(w) for w in build_actor(spec, TrainConfig()).get_weights()]
    obs = np.array([[0.6, -0.8, 8.0], [1.0, 0.0, -4.0]], np.float32)
    np.testing.assert_allclose(
        scaled.forward(weights, obs)[0],
        plain.forward(weights, obs / [1, 1, 8])[0],
        rtol=1e-6,
        atol=1e-7,  # float32: x * (1/8) and x / 8 differ in the last bit
    )
    assert not np.allclose(scaled.forward(weights, obs)[0], plain.forward(weights, obs)[0])


def test_a_workers_log_prob_is_the_learners(nets):
    """The behaviour log-probability a worker sends (numpy) is the learner's log pi (Keras)
    at the same weights: V-trace's importance weights are 1 on-policy."""
    spec, cfg, actor, _ = nets
    policy = NumpyPolicy(spec, cfg, np.random.default_rng(3))
    policy.set_weights(actor.get_weights())
    obs = np.random.default_rng(4).normal(size=(16, spec.obs_dim)).astype(np.float32)
    sent = [policy.sample_with_log_prob(o) for o in obs]
    actions = np.stack([a for a, _ in sent])
    learner, _ = algo.log_prob_entropy(actor(obs), actions, spec, cfg)
    np.testing.assert_allclose([lp for _, lp in sent], learner.numpy(), atol=1e-4)
    np.testing.assert_allclose(policy.log_prob_batch(obs, actions), learner.numpy(), atol=1e-4)
    if spec.discrete:
        assert set(np.unique(actions)) <= set(range(spec.n_actions))


def test_categorical_log_prob_and_entropy_on_fixed_logits():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, -5.0, 0.0]], np.float32)
    actions = np.array([[2.0], [1.0], [1.0]], np.float32)
    e = np.exp(logits.astype(np.float64))
    p = e / e.sum(1, keepdims=True)
    want_logp = np.log(p[np.arange(3), [2, 1, 1]])
    want_entropy = -np.sum(p * np.log(p), 1)
    np.testing.assert_allclose(algo.categorical_log_prob(actions, logits), want_logp, rtol=1e-5)
    np.testing.assert_allclose(algo.categorical_entropy(logits), want_entropy, rtol=1e-5)
    assert want_entropy[1] == pytest.approx(math.log(3))  # uniform over 3: log 3


def test_a_discrete_policy_samples_its_probabilities():
    """The numpy categorical sampler's frequencies are softmax(logits), within 4 sigma."""
    cfg = TrainConfig(env_id="CartPole-v1", hidden_sizes=(4,))
    spec = env_spec(make_env(cfg.env_id))
    policy = NumpyPolicy(spec, cfg, np.random.default_rng(0))
    actor_net, _ = networks(spec, cfg)
    weights = [np.zeros(s, np.float32) for s in actor_net.shapes(spec.obs_dim)]
    weights[-1][:] = [0.0, np.log(3.0)]  # logits bias: p = 1/4, 3/4 for every state
    policy.set_weights(weights)
    actions, log_probs = policy.sample_batch(np.zeros((20000, spec.obs_dim), np.float32))
    share = float(np.mean(actions[:, 0] == 1.0))
    assert abs(share - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 20000)
    np.testing.assert_allclose(log_probs, np.where(actions[:, 0] == 1, np.log(0.75), np.log(0.25)),
                               rtol=1e-5)  # fmt: skip
    assert policy.act_deterministic(np.zeros(spec.obs_dim, np.float32))[0] == 1.0
    assert policy.env_action(actions[0]) in (0, 1) and isinstance(
        policy.env_action(actions[0]), int
    )


def test_policy_distribution_scales_and_clips():
    cfg = TrainConfig()
    spec = env_spec(make_env(cfg.env_id))
    mu, std = algo.policy_distribution(
        np.array([[0.5]], np.float32), np.array([[5.0]], np.float32), spec, cfg
    )
    assert np.asarray(mu)[0, 0] == pytest.approx(1.0)  # tanh output 0.5 x action bound 2.0
    assert std.numpy()[0, 0] == pytest.approx(cfg.std_max)


def test_losses_match_numpy_ground_truth(nets):
    spec, cfg, actor, critic = nets
    rng = np.random.default_rng(1)
    if spec.discrete:
        actions = rng.integers(0, spec.n_actions, size=(3, 1)).astype(np.float32)
    else:
        actions = rng.uniform(-2, 2, size=(3, 1)).astype(np.float32)
    rollout = Rollout(
        rng.normal(size=(3, spec.obs_dim)).astype(np.float32),
        actions,
        rng.uniform(-16, 0, size=3).astype(np.float32),
        rng.normal(size=spec.obs_dim).astype(np.float32),
        False,
    )
    actor_net = networks(spec, cfg)[0]
    aw = actor.get_weights()
    v, y, boot = np_values_targets(spec, cfg, critic.get_weights(), rollout)
    r = (rollout.rewards.astype(np.float64) + cfg.reward_shift) / cfg.reward_scale
    logp, entropy = np_log_prob_entropy(
        spec, cfg, actor_net.forward(aw, rollout.states), rollout.actions
    )
    # Behaviour log-probs making pi/mu = 0.55, 1.65, 1.22: both V-trace clips bite.
    rollout = dataclasses.replace(rollout, log_probs=(logp - [-0.6, 0.5, 0.2]).astype(np.float32))
    actor_loss, critic_loss = algo.losses(actor, critic, pad([rollout], cfg.t_max), spec, cfg)
    adv = y - v
    v_next = np.append(v[1:], boot)
    lam = cfg.gae_lambda
    if cfg.off_policy == "vtrace":  # the paper's sums, written out
        ratio = np.exp(logp - rollout.log_probs)
        rho = np.minimum(cfg.vtrace_rho_clip, ratio)
        c = lam * np.minimum(cfg.vtrace_c_clip, ratio)
        delta = rho * (r + cfg.gamma * v_next - v)
        y = np.array([
            v[s] + sum(cfg.gamma ** (t - s) * np.prod(c[s:t]) * delta[t] for t in range(s, 3))
            for s in range(3)
        ])  # fmt: skip
        adv = rho * (r + cfg.gamma * np.append(y[1:], boot) - v)
    elif lam < 1:  # GAE(lambda) advantages, TD(lambda) returns
        delta = r + cfg.gamma * v_next - v
        adv = np.array([sum((cfg.gamma * lam) ** (t - s) * delta[t] for t in range(s, 3))
                        for s in range(3)])  # fmt: skip
        y = adv + v
    if cfg.normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-6)
    want = -np.sum(logp * adv) - cfg.entropy_coef * np.sum(entropy)
    assert actor_loss.numpy() == pytest.approx(want, rel=1e-4)
    assert critic_loss.numpy() == pytest.approx(np.mean((y - v) ** 2), rel=1e-4)


def test_action_spaces_other_than_box_and_discrete_are_refused_in_one_line():
    import gymnasium as gym
    from gymnasium import spaces

    from a3c.envs import EnvSpecError

    class Env(gym.Env):
        def __init__(self, action_space, observation_space):
            self.action_space, self.observation_space = action_space, observation_space

    box = spaces.Box(-1.0, 1.0, (3,), np.float32)
    for space in (spaces.MultiDiscrete([2, 3]), spaces.Dict({"a": spaces.Discrete(2)})):
        with pytest.raises(EnvSpecError) as err:
            env_spec(Env(space, box), "Custom-v0")
        message = str(err.value)
        assert type(space).__name__ in message and "\n" not in message
        assert "supported: Box observations and a Box (continuous) or Discrete" in message
    spec = env_spec(Env(spaces.Discrete(5), box), "Custom-v0")
    assert (spec.discrete, spec.n_actions, spec.action_dim, spec.obs_dim) == (True, 5, 1, 3)
    assert spec.invalid_actions(np.array([[0.0], [4.0]])) is None
    for bad in ([[5.0]], [[-1.0]], [[1.5]]):
        assert "whole numbers 0..4" in spec.invalid_actions(np.array(bad))
