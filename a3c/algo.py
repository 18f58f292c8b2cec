"""The A3C math, in TensorFlow, shared by the server (data mode) and gradient-mode workers.

The same rollout and the same weights give the same gradients on either side, because
both call `compute_gradients` here. All functions take batches padded to t_max (see
a3c.rollout.Batch) so compiled callers trace once.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from a3c.config import TrainConfig
from a3c.model import LOG_2PI, EnvSpec
from a3c.rollout import Batch

ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-7


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
    rewards, mask, values, bootstrap_values, log_rhos, gamma: float, rho_clip: float, c_clip: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """V-trace (IMPALA, Espeholt et al. 2018) on padded rollouts: (v_s, policy advantages).

    v_s = V(x_s) + sum_{t>=s} gamma^(t-s) (c_s ... c_{t-1}) rho_t (r_t + gamma V(x_{t+1}) - V(x_t))
    and the policy-gradient advantage rho_s (r_s + gamma v_{s+1} - V(x_s)), with
    rho_t = min(rho_clip, pi/mu), c_t = min(c_clip, pi/mu) and, after a rollout's last
    step, V and v equal to bootstrap_values. rewards, mask, values, log_rhos
    (log pi - log mu): [B, T]; bootstrap_values: [B] (0 where terminated). Returns two
    [B, T], 0 where mask is 0. With pi = mu and clips >= 1: the n-step targets y_t and
    y_t - V(x_t), exactly as n_step_targets.
    """
    rewards, mask, values, bootstrap_values, log_rhos = (
        tf.convert_to_tensor(x, tf.float32)
        for x in (rewards, mask, values, bootstrap_values, log_rhos)
    )
    t_len = rewards.shape[1]
    ratios = tf.exp(log_rhos)
    rhos = tf.minimum(rho_clip, ratios)
    cs = tf.minimum(c_clip, ratios)
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


def losses(actor, critic, batch: Batch, spec: EnvSpec, cfg: TrainConfig):
    """(actor_loss, critic_loss) of a padded batch, as the seed defines them.

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
    mu_raw, std_raw = actor(flat_states)
    mu, std = policy_distribution(mu_raw, std_raw, spec, cfg)
    log_prob = tf.reshape(
        gaussian_log_prob(tf.reshape(actions, tf.shape(mu)), mu, std), (-1, t_len)
    )
    if cfg.off_policy == "vtrace":
        log_rhos = tf.stop_gradient(log_prob - behaviour_log_probs) * mask
        targets, advantages = vtrace_targets(
            train_rewards, mask, tf.stop_gradient(values), next_values * bootstrap, log_rhos,
            cfg.gamma, cfg.vtrace_rho_clip, cfg.vtrace_c_clip,
        )  # fmt: skip
        targets, advantages = tf.stop_gradient(targets), tf.stop_gradient(advantages)
    else:
        targets = tf.stop_gradient(
            n_step_targets(train_rewards, mask, next_values * bootstrap, cfg.gamma)
        )
        advantages = tf.stop_gradient(targets - values)
    if cfg.normalize_advantages:
        advantages = normalize(advantages, mask)
    actor_loss = -tf.reduce_sum(log_prob * advantages * mask)
    if cfg.entropy_coef:
        entropy = tf.reshape(gaussian_entropy(std), (-1, t_len))
        actor_loss -= cfg.entropy_coef * tf.reduce_sum(entropy * mask)
    # Per rollout, the mean over its steps; over rollouts, the sum: a batch of rollouts
    # (a vectorized worker's push, merged pushes) weighs each as it would weigh alone.
    squared = tf.reduce_sum(tf.square(targets - values) * mask, axis=1)
    critic_loss = tf.reduce_sum(squared / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0))
    return actor_loss, critic_loss


def compute_gradients(actor, critic, batch: Batch, spec: EnvSpec, cfg: TrainConfig):
    """Gradients of the losses: (actor grads, critic grads), in trainable_variables order."""
    with tf.GradientTape(persistent=True) as tape:
        actor_loss, critic_loss = losses(actor, critic, batch, spec, cfg)
    actor_grads = tape.gradient(actor_loss, actor.trainable_variables)
    critic_grads = tape.gradient(critic_loss, critic.trainable_variables)
    del tape
    return actor_grads, critic_grads


def flat_weights(models) -> tf.Tensor:
    """Every weight of the models, flattened and concatenated: [n_params]."""
    return tf.concat([tf.reshape(v, (-1,)) for m in models for v in m.weights], axis=0)


def configure_threads(threads: int) -> bool:
    """Sizes TensorFlow's thread pools to `threads` each (0: TensorFlow's own choice).

    The steps of these small networks are single kernels of microseconds: more threads
    only add hand-offs, and on a shared machine they take cores from the workers. Must run
    before TensorFlow's first operation; returns False (and changes nothing) after it."""
    if threads <= 0:
        return True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        return False
    return True


def lr_scale(cfg: TrainConfig, episodes: int) -> float:
    """The learning rates' factor once `episodes` of the budget are trained."""
    if cfg.lr_schedule != "linear":
        return 1.0
    done = min(max(episodes / max(cfg.max_episodes, 1), 0.0), 1.0)
    return 1.0 - (1.0 - cfg.lr_final_scale) * done


def pack(batch: Batch) -> np.ndarray:
    """A Batch as one float32 vector: per rollout, each field flattened, in field order.

    One input tensor per compiled call instead of six: TensorFlow's Python-side cost of a
    call grows with its inputs and dominates a step of these small networks."""
    b = batch.states.shape[0]
    return np.concatenate([np.asarray(f, np.float32).reshape(b, -1) for f in batch], 1).ravel()


def unpack(flat, spec: EnvSpec, t_max: int) -> Batch:
    """Inverse of pack, inside a compiled function."""
    widths = [t_max * spec.obs_dim, t_max * spec.action_dim, t_max, t_max, spec.obs_dim, 1, t_max]
    rows = tf.reshape(flat, (-1, sum(widths)))
    parts = tf.split(rows, widths, axis=1)
    return Batch(
        tf.reshape(parts[0], (-1, t_max, spec.obs_dim)),
        tf.reshape(parts[1], (-1, t_max, spec.action_dim)),
        parts[2],
        parts[3],
        parts[4],
        parts[5][:, 0],
        parts[6],
    )


class _Compiled:
    """A tf.function of one float32 vector, called with the least Python per call.

    Calls go straight to the traced graph (the concrete function's atomic function, with
    the captured variables), which costs a fraction of a tf.function call; where this
    TensorFlow lacks that path, through the public concrete function.
    """

    def __init__(self, fn):
        self.function = tf.function(fn, input_signature=[tf.TensorSpec((None,), tf.float32)])
        self._call = None

    def _bind(self):
        concrete = self.function.get_concrete_function()
        atomic = getattr(concrete, "_inference_function", None)
        captured = list(getattr(concrete, "captured_inputs", ()))
        if atomic is not None and hasattr(atomic, "call_flat"):
            return lambda x: atomic.call_flat(x, *captured)[0]
        return concrete

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._call is None:
            self._call = self._bind()
        return self._call(tf.constant(x, tf.float32)).numpy()


class Trainer:
    """Global actor and critic, their Adam state, and the compiled update steps.

    Everything crosses the compiled boundary as one flat float32 vector: batches packed
    (see pack), gradients and weights flattened (actor variables, then critic variables,
    in order; see flat_weights). A call's cost grows with its inputs, and for these small
    networks the call, not the arithmetic, is most of a step.

    `data_step(batch)` differentiates and applies in one call; `gradients(batch)` only
    differentiates; `gradients_at(flat_weights, batch)` sets the weights and then
    differentiates (a gradient-mode worker's one call per rollout); `gradient_step(grads)`
    applies. Applying clips each network's gradients by global norm. Steps return the new
    flat weights as numpy, so callers need no extra read.
    """

    def __init__(self, actor, critic, spec: EnvSpec, cfg: TrainConfig):
        self.actor, self.critic, self.spec, self.cfg = actor, critic, spec, cfg
        self._variables = list(actor.trainable_variables) + list(critic.trainable_variables)
        self._sizes = [int(np.prod(v.shape)) for v in self._variables]
        self.n_actor = sum(self._sizes[: len(actor.trainable_variables)])
        self.n_params = sum(self._sizes)
        self._lr_scale = 1.0
        self._adam = {
            "m": tf.Variable(tf.zeros(self.n_params), trainable=False, name="adam_m"),
            "v": tf.Variable(tf.zeros(self.n_params), trainable=False, name="adam_v"),
            "t": tf.Variable(0.0, trainable=False, name="adam_t"),
            "lr": tf.Variable(self._lr_vector(1.0), trainable=False, name="adam_lr"),
        }
        self._steps = {
            "data_step": _Compiled(lambda x: self._apply(self._gradients(self._unpack(x)))),
            "gradients": _Compiled(lambda x: self._gradients(self._unpack(x))),
            "gradients_at": _Compiled(self._gradients_at),
            "gradient_step": _Compiled(self._apply),
            "weights": _Compiled(lambda x: flat_weights((self.actor, self.critic))),
            "assign": _Compiled(self._assign_flat),
        }

    def data_step(self, batch: Batch) -> np.ndarray:
        """One update from a batch of rollouts; the new flat weights."""
        return self._steps["data_step"](pack(batch))

    def gradients(self, batch: Batch) -> np.ndarray:
        """Flat gradients of the losses at the current weights."""
        return self._steps["gradients"](pack(batch))

    def gradients_at(self, flat: np.ndarray, batch: Batch) -> np.ndarray:
        """Sets the weights to flat, then as gradients(batch): one call."""
        return self._steps["gradients_at"](np.concatenate([flat, pack(batch)]))

    def gradient_step(self, flat_grads: np.ndarray) -> np.ndarray:
        """Applies flat gradients (clipped, Adam); the new flat weights."""
        return self._steps["gradient_step"](np.asarray(flat_grads, np.float32))

    def flat_weights(self) -> np.ndarray:
        return self._steps["weights"](np.zeros(0, np.float32))

    def assign_flat(self, flat: np.ndarray) -> None:
        """Sets every weight of the actor and the critic from a flat_weights vector."""
        self._steps["assign"](np.asarray(flat, np.float32))

    def _unpack(self, x) -> Batch:
        return unpack(x, self.spec, self.cfg.t_max)

    def _gradients(self, batch):
        actor_grads, critic_grads = compute_gradients(
            self.actor, self.critic, batch, self.spec, self.cfg
        )
        return tf.concat([tf.reshape(g, (-1,)) for g in (*actor_grads, *critic_grads)], 0)

    def _gradients_at(self, x):
        self._assign_flat(x[: self.n_params])
        return self._gradients(self._unpack(x[self.n_params :]))

    def _apply(self, flat_grads):
        """Clips each network's gradients by global norm, then one Adam step (Keras's
        update rule and defaults: beta 0.9 and 0.999, epsilon 1e-7) on the flat vector."""
        clip = self.cfg.grad_clip_norm
        if clip > 0:
            parts = tf.split(flat_grads, [self.n_actor, self.n_params - self.n_actor])
            flat_grads = tf.concat(
                [g * (clip / tf.maximum(tf.norm(g), clip)) for g in parts], axis=0
            )
        adam = self._adam
        t = adam["t"].assign_add(1.0)
        m = adam["m"].assign_add((flat_grads - adam["m"]) * (1.0 - ADAM_BETA1))
        v = adam["v"].assign_add((tf.square(flat_grads) - adam["v"]) * (1.0 - ADAM_BETA2))
        alpha = adam["lr"] * (tf.sqrt(1.0 - ADAM_BETA2**t) / (1.0 - ADAM_BETA1**t))
        new = flat_weights((self.actor, self.critic)) - alpha * m / (tf.sqrt(v) + ADAM_EPSILON)
        self._assign_flat(new)
        return new

    def _lr_vector(self, scale: float) -> np.ndarray:
        lr = np.full(self.n_params, self.cfg.critic_lr * scale, np.float32)
        lr[: self.n_actor] = self.cfg.actor_lr * scale
        return lr

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """Adam's moments and step count, for checkpoints."""
        return {k: np.asarray(self._adam[k].numpy()) for k in ("m", "v", "t")}

    def load_optimizer_state(self, state: dict[str, np.ndarray]) -> None:
        for k in ("m", "v", "t"):
            self._adam[k].assign(state[k])

    def set_progress(self, episodes: int) -> None:
        """Sets the learning rates for `episodes` trained of the budget (lr_schedule)."""
        scale = lr_scale(self.cfg, episodes)
        if scale != self._lr_scale:
            self._lr_scale = scale
            self._adam["lr"].assign(self._lr_vector(scale))

    def _assign_flat(self, flat):
        for v, part in zip(self._variables, tf.split(flat, self._sizes)):
            v.assign(tf.reshape(part, v.shape))
        return tf.zeros((0,), tf.float32)

    def trace_counts(self) -> dict[str, int]:
        """How often each compiled step was traced: at most 1 each, ever (0: never used)."""
        return {
            name: step.function.experimental_get_tracing_count()
            for name, step in self._steps.items()
        }
