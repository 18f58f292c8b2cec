"""The A3C math, in TensorFlow, shared by the server (data mode) and gradient-mode workers.

Pure functions, top to bottom: n-step targets, V-trace, the Gaussian and categorical
log-probabilities and entropies, the losses and their gradients. The same rollout and the
same weights give the same gradients on either side, because both call `compute_gradients`
here (through a3c.trainer.Trainer, which compiles it). All functions take batches padded
to t_max (see a3c.rollout.Batch) so compiled callers trace once.
"""

from __future__ import annotations

import tensorflow as tf

from a3c.config import TrainConfig
from a3c.diagnostics import LOSS_DIAGNOSTICS
from a3c.envs import EnvSpec
from a3c.policy import LOG_2PI
from a3c.rollout import Batch


def n_step_targets(rewards, mask, bootstrap_values, gamma: float) -> tf.Tensor:
    """n-step TD targets y_t = sum_{k=t}^{T-1} gamma^(k-t) r_k + gamma^(T-t) V_boot.

    rewards: [B, T] (0 past each rollout's end), mask: [B, T] (1 for real steps),
    bootstrap_values: [B] (V(s_T), or 0 when the rollout terminated). Returns [B, T],
    0 where mask is 0.
    """
    rewards = tf.convert_to_tensor(rewards, tf.float32)
    mask = tf.convert_to_tensor(mask, tf.float32)
    bootstrap_values = tf.convert_to_tensor(bootstrap_values, tf.float32)
    t_len = rewards.shape[1]
    idx = tf.range(t_len, dtype=tf.float32)
    # discount[t, k] = gamma^(k - t) for k >= t, else 0.
    power = idx[None, :] - idx[:, None]
    discount = tf.where(power >= 0, tf.pow(gamma, tf.maximum(power, 0.0)), 0.0)
    discounted = tf.linalg.matvec(discount, rewards)  # [B, T]
    lengths = tf.reduce_sum(mask, axis=1, keepdims=True)  # [B, 1]
    boot = tf.pow(gamma, lengths - idx[None, :]) * bootstrap_values[:, None]
    return (discounted + boot) * mask


def vtrace_targets(
    rewards,
    mask,
    values,
    bootstrap_values,
    log_rhos,
    gamma: float,
    rho_clip: float,
    c_clip: float,
    lam: float = 1.0,
) -> tuple[tf.Tensor, tf.Tensor]:
    """V-trace (IMPALA, Espeholt et al. 2018) on padded rollouts: (v_s, policy advantages).

    v_s = V(x_s) + sum_{t>=s} gamma^(t-s) (c_s ... c_{t-1}) rho_t (r_t + gamma V(x_{t+1}) - V(x_t))
    and the policy-gradient advantage rho_s (r_s + gamma v_{s+1} - V(x_s)), with
    rho_t = min(rho_clip, pi/mu), c_t = lam min(c_clip, pi/mu) and, after a rollout's last
    step, V and v equal to bootstrap_values. rewards, mask, values, log_rhos
    (log pi - log mu): [B, T]; bootstrap_values: [B] (0 where terminated). Returns two
    [B, T], 0 where mask is 0. With pi = mu and clips >= 1: the n-step targets y_t and
    y_t - V(x_t), exactly as n_step_targets; with pi = mu and lam < 1, v_s are the
    TD(lam) returns and v_s - V(x_s) the GAE(lam) advantages (Schulman et al. 2016).
    """
    rewards, mask, values, bootstrap_values, log_rhos = (
        tf.convert_to_tensor(x, tf.float32)
        for x in (rewards, mask, values, bootstrap_values, log_rhos)
    )
    t_len = rewards.shape[1]
    ratios = tf.exp(log_rhos)
    rhos = tf.minimum(rho_clip, ratios)
    cs = lam * tf.minimum(c_clip, ratios)
    zero = tf.zeros_like(values[:, :1])
    boot = bootstrap_values[:, None]
    next_mask = tf.concat([mask[:, 1:], zero], 1)  # 1 where step t + 1 is real

    def after(x):  # x at t + 1 where that step is real, else the bootstrap value
        return tf.where(next_mask > 0, tf.concat([x[:, 1:], zero], 1), boot)

    deltas = rhos * (rewards + gamma * after(values) - values) * mask
    acc, diffs = tf.zeros_like(values[:, 0]), []
    for t in reversed(range(t_len)):  # v_s - V(x_s), from the last step back
        acc = deltas[:, t] + gamma * cs[:, t] * next_mask[:, t] * acc
        diffs.append(acc)
    vs = (values + tf.stack(diffs[::-1], 1)) * mask
    advantages = rhos * (rewards + gamma * after(vs) - values) * mask
    return vs, advantages


def gaussian_log_prob(actions, mu, std) -> tf.Tensor:
    """log N(actions; mu, std), summed over the action dimension: [..., A] -> [...]."""
    z = (actions - mu) / std
    return tf.reduce_sum(-0.5 * tf.square(z) - tf.math.log(std) - 0.5 * LOG_2PI, axis=-1)


def gaussian_entropy(std) -> tf.Tensor:
    """Entropy of N(mu, std), summed over the action dimension: [..., A] -> [...]."""
    return tf.reduce_sum(tf.math.log(std) + 0.5 * (LOG_2PI + 1.0), axis=-1)


def categorical_log_prob(actions, logits) -> tf.Tensor:
    """log softmax(logits)[a] for actions [..., 1] holding indices as floats: [...]."""
    index = tf.cast(actions[..., 0], tf.int32)
    return tf.gather(tf.nn.log_softmax(logits), index, batch_dims=len(logits.shape) - 1)


def categorical_entropy(logits) -> tf.Tensor:
    """Entropy of the categorical distribution of logits [..., N] -> [...]."""
    logp = tf.nn.log_softmax(logits)
    return -tf.reduce_sum(tf.exp(logp) * logp, axis=-1)


def normalize(advantages, mask) -> tf.Tensor:
    """Advantages scaled to zero mean and unit std over the real (mask 1) steps."""
    n = tf.reduce_sum(mask)
    mean = tf.reduce_sum(advantages * mask) / n
    var = tf.reduce_sum(tf.square(advantages - mean) * mask) / n
    return (advantages - mean) / (tf.sqrt(var) + 1e-6) * mask


def policy_distribution(mu_raw, std_raw, spec: EnvSpec, cfg: TrainConfig):
    """The actor's raw outputs -> (mu in env units, std clipped to [std_min, std_max])."""
    mu = spec.action_center + spec.action_half_range * mu_raw
    std = tf.clip_by_value(std_raw, cfg.std_min, cfg.std_max)
    return mu, std


def log_prob_entropy(outputs, actions, spec: EnvSpec, cfg: TrainConfig):
    """(log pi(a|s), entropy of pi(.|s)) from the actor's outputs on N states and actions
    [N, action_dim]: each [N]. Categorical for discrete actions (outputs: logits),
    Gaussian otherwise (outputs: mu_raw, std_raw)."""
    if spec.discrete:
        logits = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        return categorical_log_prob(actions, logits), categorical_entropy(logits)
    mu, std = policy_distribution(*outputs, spec, cfg)
    return gaussian_log_prob(actions, mu, std), gaussian_entropy(std)


def masked_mean(x, mask):
    return tf.reduce_sum(x * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def losses(actor, critic, batch: Batch, spec: EnvSpec, cfg: TrainConfig, diagnostics=False):
    """(actor_loss, critic_loss) of a padded batch, as the seed defines them; with
    diagnostics, also the LOSS_DIAGNOSTICS vector, from the same forward pass.

    actor_loss = -sum_t log pi(a_t|s_t) * A_t with A_t = y_t - V(s_t) held constant;
    critic_loss = mean_t (y_t - V(s_t))^2 over real steps; both summed over the batch's
    rollouts (the loss of B rollouts is the sum of their losses); y_t are n-step targets of the
    training reward (r + reward_shift) / reward_scale. With off_policy vtrace, y_t and A_t
    are V-trace's v_t and policy advantages (vtrace_targets).
    """
    states, actions, rewards, mask, next_states, bootstrap, behaviour_log_probs = batch
    b, t_len, obs_dim = states.shape
    flat_states = tf.reshape(states, (-1, obs_dim))
    values = tf.reshape(critic(flat_states), (-1, t_len))
    next_values = tf.stop_gradient(critic(next_states)[:, 0])
    train_rewards = (rewards + cfg.reward_shift) / cfg.reward_scale * mask
    outputs = actor(flat_states)
    flat_log_prob, flat_entropy = log_prob_entropy(
        outputs, tf.reshape(actions, (-1, spec.action_dim)), spec, cfg
    )
    log_prob = tf.reshape(flat_log_prob, (-1, t_len))
    if cfg.off_policy == "vtrace":
        log_rhos = tf.stop_gradient(log_prob - behaviour_log_probs) * mask
        targets, advantages = vtrace_targets(
            train_rewards, mask, tf.stop_gradient(values), next_values * bootstrap, log_rhos,
            cfg.gamma, cfg.vtrace_rho_clip, cfg.vtrace_c_clip, cfg.gae_lambda,
        )  # fmt: skip
        targets, advantages = tf.stop_gradient(targets), tf.stop_gradient(advantages)
    elif cfg.gae_lambda < 1:  # on-policy: ratios 1, so v_s are TD(lambda) returns
        targets, _ = vtrace_targets(
            train_rewards, mask, tf.stop_gradient(values), next_values * bootstrap,
            tf.zeros_like(values), cfg.gamma, 1.0, 1.0, cfg.gae_lambda,
        )  # fmt: skip
        targets = tf.stop_gradient(targets)
        advantages = tf.stop_gradient(targets - values)
    else:
        targets = tf.stop_gradient(
            n_step_targets(train_rewards, mask, next_values * bootstrap, cfg.gamma)
        )
        advantages = tf.stop_gradient(targets - values)
    raw_advantages = advantages
    if cfg.normalize_advantages:
        advantages = normalize(advantages, mask)
    actor_loss = -tf.reduce_sum(log_prob * advantages * mask)
    if cfg.entropy_coef:
        entropy = tf.reshape(flat_entropy, (-1, t_len))
        actor_loss -= cfg.entropy_coef * tf.reduce_sum(entropy * mask)
    # Per rollout, the mean over its steps; over rollouts, the sum: a batch of rollouts
    # (a vectorized worker's push, merged pushes) weighs each as it would weigh alone.
    squared = tf.reduce_sum(tf.square(targets - values) * mask, axis=1)
    critic_loss = tf.reduce_sum(squared / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0))
    if not diagnostics:
        return actor_loss, critic_loss
    values = tf.stop_gradient(values)
    entropy = tf.reshape(flat_entropy, (-1, t_len))
    if spec.discrete:
        std = tf.constant(float("nan"))
    else:
        step_std = tf.reduce_mean(policy_distribution(*outputs, spec, cfg)[1], axis=-1)
        std = masked_mean(tf.reshape(step_std, (-1, t_len)), mask)
    target_mean = masked_mean(targets, mask)
    error = targets - values
    error_var = masked_mean(tf.square(error - masked_mean(error, mask)), mask)
    target_var = masked_mean(tf.square(targets - target_mean), mask)
    adv_mean = masked_mean(raw_advantages, mask)
    log_rho = tf.stop_gradient(log_prob) - behaviour_log_probs
    stats = {
        "policy_loss": masked_mean(-tf.stop_gradient(log_prob) * advantages, mask),
        "value_loss": masked_mean(tf.square(error), mask),
        "entropy": masked_mean(tf.stop_gradient(entropy), mask),
        "policy_std": std,
        "explained_variance": 1.0 - error_var / tf.maximum(target_var, 1e-8),
        "value_mean": masked_mean(values, mask),
        "advantage_mean": adv_mean,
        "advantage_std": tf.sqrt(masked_mean(tf.square(raw_advantages - adv_mean), mask)),
        "log_ratio_abs_mean": masked_mean(tf.abs(log_rho), mask),
        "vtrace_truncated_ratio": masked_mean(
            tf.cast(log_rho > tf.math.log(cfg.vtrace_rho_clip), tf.float32), mask
        ),
    }
    return actor_loss, critic_loss, tf.stack([stats[name] for name in LOSS_DIAGNOSTICS])


def compute_gradients(
    actor, critic, batch: Batch, spec: EnvSpec, cfg: TrainConfig, diagnostics=False
):
    """Gradients of the losses: (actor grads, critic grads), in trainable_variables order;
    with diagnostics, also losses' LOSS_DIAGNOSTICS vector."""
    with tf.GradientTape(persistent=True) as tape:
        out = losses(actor, critic, batch, spec, cfg, diagnostics)
    actor_grads = tape.gradient(out[0], actor.trainable_variables)
    critic_grads = tape.gradient(out[1], critic.trainable_variables)
    del tape
    return (actor_grads, critic_grads, *out[2:])
