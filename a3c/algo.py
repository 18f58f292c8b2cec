"""The A3C math, in TensorFlow, shared by the server (data mode) and gradient-mode workers.

The same rollout and the same weights give the same gradients on either side, because
both call `compute_gradients` here. All functions take batches padded to t_max (see
a3c.rollout.Batch) so compiled callers trace once.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from a3c.config import TrainConfig
from a3c.model import EnvSpec
from a3c.rollout import Batch

LOG_2PI = math.log(2.0 * math.pi)


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


def gaussian_log_prob(actions, mu, std) -> tf.Tensor:
    """log N(actions; mu, std), summed over the action dimension: [..., A] -> [...]."""
    z = (actions - mu) / std
    return tf.reduce_sum(-0.5 * tf.square(z) - tf.math.log(std) - 0.5 * LOG_2PI, axis=-1)


def policy_distribution(mu_raw, std_raw, spec: EnvSpec, cfg: TrainConfig):
    """The actor's raw outputs -> (mu in env units, std clipped to [std_min, std_max])."""
    mu = spec.action_center + spec.action_half_range * mu_raw
    std = tf.clip_by_value(std_raw, cfg.std_min, cfg.std_max)
    return mu, std


def losses(actor, critic, batch: Batch, spec: EnvSpec, cfg: TrainConfig):
    """(actor_loss, critic_loss) of a padded batch, as the seed defines them.

    actor_loss = -sum_t log pi(a_t|s_t) * A_t with A_t = y_t - V(s_t) held constant;
    critic_loss = mean_t (y_t - V(s_t))^2 over real steps; y_t are n-step targets of the
    training reward (r + reward_shift) / reward_scale.
    """
    states, actions, rewards, mask, next_states, bootstrap = batch
    b, t_len, obs_dim = states.shape
    flat_states = tf.reshape(states, (-1, obs_dim))
    values = tf.reshape(critic(flat_states), (-1, t_len))
    next_values = tf.stop_gradient(critic(next_states)[:, 0])
    train_rewards = (rewards + cfg.reward_shift) / cfg.reward_scale * mask
    targets = tf.stop_gradient(
        n_step_targets(train_rewards, mask, next_values * bootstrap, cfg.gamma)
    )
    advantages = tf.stop_gradient(targets - values)
    mu_raw, std_raw = actor(flat_states)
    mu, std = policy_distribution(mu_raw, std_raw, spec, cfg)
    log_prob = tf.reshape(
        gaussian_log_prob(tf.reshape(actions, tf.shape(mu)), mu, std), (-1, t_len)
    )
    actor_loss = -tf.reduce_sum(log_prob * advantages * mask)
    critic_loss = tf.reduce_sum(tf.square(targets - values) * mask) / tf.reduce_sum(mask)
    return actor_loss, critic_loss


def compute_gradients(actor, critic, batch: Batch, spec: EnvSpec, cfg: TrainConfig):
    """Gradients of the losses: (actor grads, critic grads), in trainable_variables order."""
    with tf.GradientTape(persistent=True) as tape:
        actor_loss, critic_loss = losses(actor, critic, batch, spec, cfg)
    actor_grads = tape.gradient(actor_loss, actor.trainable_variables)
    critic_grads = tape.gradient(critic_loss, critic.trainable_variables)
    del tape
    return actor_grads, critic_grads


def batch_signature(spec: EnvSpec, t_max: int) -> Batch:
    """tf.TensorSpecs of a Batch with any batch size and t_max steps."""
    return Batch(
        tf.TensorSpec((None, t_max, spec.obs_dim), tf.float32),
        tf.TensorSpec((None, t_max, spec.action_dim), tf.float32),
        tf.TensorSpec((None, t_max), tf.float32),
        tf.TensorSpec((None, t_max), tf.float32),
        tf.TensorSpec((None, spec.obs_dim), tf.float32),
        tf.TensorSpec((None,), tf.float32),
    )


def flat_weights(models) -> tf.Tensor:
    """Every weight of the models, flattened and concatenated: [n_params]."""
    return tf.concat([tf.reshape(v, (-1,)) for m in models for v in m.weights], axis=0)


def split_flat(flat: np.ndarray, shapes) -> list[np.ndarray]:
    """Inverse of flat_weights for one list of shapes, from the start of flat."""
    out, pos = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(flat[pos : pos + n].reshape(shape))
        pos += n
    return out


class Trainer:
    """Global actor and critic with their Adam optimizers, and the compiled update steps.

    Gradients and weights cross the compiled boundary as one flat float32 vector each
    (actor variables, then critic variables, in order; see flat_weights): one tensor per
    call instead of one per variable is most of what a call of these tiny networks costs.

    `data_step(batch)` differentiates and applies in one call; `gradients(batch)` only
    differentiates; `gradient_step(flat_grads)` applies. Applying clips each network's
    gradients by global norm. The steps return the new flat weights, so callers need no
    extra read.
    """

    def __init__(self, actor, critic, spec: EnvSpec, cfg: TrainConfig):
        import keras

        self.actor, self.critic, self.spec, self.cfg = actor, critic, spec, cfg
        self.actor_opt = keras.optimizers.Adam(cfg.actor_lr)
        self.critic_opt = keras.optimizers.Adam(cfg.critic_lr)
        self.actor_opt.build(actor.trainable_variables)
        self.critic_opt.build(critic.trainable_variables)
        self._variables = list(actor.trainable_variables) + list(critic.trainable_variables)
        self._sizes = [int(np.prod(v.shape)) for v in self._variables]
        self.n_actor = sum(int(np.prod(v.shape)) for v in actor.trainable_variables)
        self.n_params = sum(self._sizes)
        flat_spec = tf.TensorSpec((self.n_params,), tf.float32)
        batch_spec = batch_signature(spec, cfg.t_max)
        self.data_step = tf.function(self._data_step, input_signature=[batch_spec])
        self.gradients = tf.function(self._gradients, input_signature=[batch_spec])
        self.gradient_step = tf.function(self._apply, input_signature=[flat_spec])
        self.flat_weights = tf.function(lambda: flat_weights((self.actor, self.critic)))
        self._assign = tf.function(self._assign_flat, input_signature=[flat_spec])

    def _gradients(self, batch):
        actor_grads, critic_grads = compute_gradients(
            self.actor, self.critic, batch, self.spec, self.cfg
        )
        return tf.concat([tf.reshape(g, (-1,)) for g in (*actor_grads, *critic_grads)], 0)

    def _apply(self, flat_grads):
        grads = [
            tf.reshape(g, v.shape)
            for g, v in zip(tf.split(flat_grads, self._sizes), self._variables)
        ]
        n = len(self.actor.trainable_variables)
        actor_grads, critic_grads = grads[:n], grads[n:]
        clip = self.cfg.grad_clip_norm
        if clip > 0:
            actor_grads, _ = tf.clip_by_global_norm(actor_grads, clip)
            critic_grads, _ = tf.clip_by_global_norm(critic_grads, clip)
        self.actor_opt.apply_gradients(zip(actor_grads, self.actor.trainable_variables))
        self.critic_opt.apply_gradients(zip(critic_grads, self.critic.trainable_variables))
        return flat_weights((self.actor, self.critic))

    def _data_step(self, batch):
        return self._apply(self._gradients(batch))

    def assign_flat(self, flat: np.ndarray) -> None:
        """Sets every weight of the actor and the critic from a flat_weights vector."""
        self._assign(tf.convert_to_tensor(flat, tf.float32))

    def _assign_flat(self, flat):
        for v, part in zip(self._variables, tf.split(flat, self._sizes)):
            v.assign(tf.reshape(part, v.shape))

    def trace_counts(self) -> dict[str, int]:
        """How often each compiled step was traced: 1 each after warm-up, never more."""
        steps = {
            "data_step": self.data_step,
            "gradients": self.gradients,
            "gradient_step": self.gradient_step,
            "assign": self._assign,
        }
        return {name: fn.experimental_get_tracing_count() for name, fn in steps.items()}
