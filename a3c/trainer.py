"""The trainer: the global networks, a flat Adam, and compiled steps called cheaply.

Everything crosses the compiled boundary as one flat float32 vector (batches packed,
gradients and weights flattened): on a small network TensorFlow's Python-side cost of a
call, which grows with its inputs, is most of a step. The math itself is a3c.algo's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from a3c.algo import compute_gradients
from a3c.config import TrainConfig
from a3c.diagnostics import APPLY_DIAGNOSTICS, LOSS_DIAGNOSTICS
from a3c.envs import EnvSpec
from a3c.rollout import Batch

ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-7


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


def lr_scale(cfg: TrainConfig, progress: float) -> float:
    """The learning rates' factor once `progress` (0..1) of the budget is trained."""
    if cfg.lr_schedule != "linear":
        return 1.0
    done = min(max(progress, 0.0), 1.0)
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


def graph_call(function, fast: bool = True) -> tuple[Callable[[tf.Tensor], tf.Tensor], bool]:
    """A caller of `function`'s one traced graph (a tf.function of one input and one
    output), and whether it is the fast one.

    The fast caller goes straight to the concrete function's atomic function with its
    captured variables, skipping the argument handling of a tf.function call (a fraction
    of its cost). That path is TensorFlow's private API (ConcreteFunction's
    `_inference_function.call_flat`, as of TensorFlow 2.16-2.21): where a TensorFlow
    lacks it, or with fast=False, the public concrete function is the caller instead.
    tests/unit/test_trainer.py fails, naming this function, when the fast path is gone.
    """
    concrete = function.get_concrete_function()
    atomic = getattr(concrete, "_inference_function", None)
    captured = list(getattr(concrete, "captured_inputs", ()))
    if fast and atomic is not None and hasattr(atomic, "call_flat"):
        return (lambda x: atomic.call_flat(x, *captured)[0]), True
    return concrete, False


class _Compiled:
    """A tf.function of one float32 vector, called through graph_call."""

    def __init__(self, fn):
        self.function = tf.function(fn, input_signature=[tf.TensorSpec((None,), tf.float32)])
        self._call = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._call is None:
            self._call, _ = graph_call(self.function)
        return self._call(tf.constant(x, tf.float32)).numpy()


class Trainer:
    """Global actor and critic, their Adam state, and the compiled update steps.

    Everything crosses the compiled boundary as one flat float32 vector: batches packed
    (see pack), gradients and weights flattened (actor variables, then critic variables,
    in order; see flat_weights). A call's cost grows with its inputs, and for these small
    networks the call, not the arithmetic, is most of a step.

    `data_step(batch)` differentiates and applies in one call (`data_step(batch, True)`:
    and returns the diagnostics of a3c.algo.LOSS_DIAGNOSTICS and APPLY_DIAGNOSTICS, by
    name, computed in the same call); `gradients(batch)` only differentiates;
    `gradients_at(flat_weights, batch)` sets the weights and then differentiates (a
    gradient-mode worker's one call per rollout); `gradient_step(grads)` applies. Applying
    clips each network's gradients by global norm. Steps return the new flat weights as
    numpy, so callers need no extra read.
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
            "data_step_diagnosed": _Compiled(self._data_step_diagnosed),
            "gradient_step_diagnosed": _Compiled(
                lambda g: tf.concat(self._apply(g, diagnostics=True), 0)
            ),
            "weights": _Compiled(lambda x: flat_weights((self.actor, self.critic))),
            "assign": _Compiled(self._assign_flat),
        }

    def data_step(self, batch: Batch, diagnostics: bool = False):
        """One update from a batch of rollouts; the new flat weights (with diagnostics:
        and a dict of the update's diagnostics)."""
        if not diagnostics:
            return self._steps["data_step"](pack(batch))
        out = self._steps["data_step_diagnosed"](pack(batch))
        return self._split_diagnostics(out, LOSS_DIAGNOSTICS + APPLY_DIAGNOSTICS)

    def _split_diagnostics(self, out: np.ndarray, names) -> tuple[np.ndarray, dict]:
        return out[: self.n_params], dict(zip(names, map(float, out[self.n_params :])))

    def _data_step_diagnosed(self, x):
        *grads, stats = compute_gradients(
            self.actor, self.critic, self._unpack(x), self.spec, self.cfg, diagnostics=True
        )
        flat = tf.concat([tf.reshape(g, (-1,)) for g in (*grads[0], *grads[1])], 0)
        new, applied = self._apply(flat, diagnostics=True)
        return tf.concat([new, stats, applied], 0)

    def gradients(self, batch: Batch) -> np.ndarray:
        """Flat gradients of the losses at the current weights."""
        return self._steps["gradients"](pack(batch))

    def gradients_at(self, flat: np.ndarray, batch: Batch) -> np.ndarray:
        """Sets the weights to flat, then as gradients(batch): one call."""
        return self._steps["gradients_at"](np.concatenate([flat, pack(batch)]))

    def gradient_step(self, flat_grads: np.ndarray, diagnostics: bool = False):
        """Applies flat gradients (clipped, Adam); the new flat weights (with diagnostics:
        and a dict of APPLY_DIAGNOSTICS)."""
        grads = np.asarray(flat_grads, np.float32)
        if not diagnostics:
            return self._steps["gradient_step"](grads)
        return self._split_diagnostics(
            self._steps["gradient_step_diagnosed"](grads), APPLY_DIAGNOSTICS
        )

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

    def _apply(self, flat_grads, diagnostics=False):
        """Clips each network's gradients by global norm, then one Adam step (Keras's
        update rule and defaults: beta 0.9 and 0.999, epsilon 1e-7) on the flat vector;
        with diagnostics, (new weights, the APPLY_DIAGNOSTICS vector)."""
        clip = self.cfg.grad_clip_norm
        parts = tf.split(flat_grads, [self.n_actor, self.n_params - self.n_actor])
        norms = [tf.norm(g) for g in parts]
        if clip > 0:
            flat_grads = tf.concat(
                [g * (clip / tf.maximum(n, clip)) for g, n in zip(parts, norms)], axis=0
            )
        adam = self._adam
        t = adam["t"].assign_add(1.0)
        m = adam["m"].assign_add((flat_grads - adam["m"]) * (1.0 - ADAM_BETA1))
        v = adam["v"].assign_add((tf.square(flat_grads) - adam["v"]) * (1.0 - ADAM_BETA2))
        alpha = adam["lr"] * (tf.sqrt(1.0 - ADAM_BETA2**t) / (1.0 - ADAM_BETA1**t))
        new = flat_weights((self.actor, self.critic)) - alpha * m / (tf.sqrt(v) + ADAM_EPSILON)
        self._assign_flat(new)
        if not diagnostics:
            return new
        lr = adam["lr"]
        return new, tf.stack([norms[0], norms[1], lr[0], lr[-1]])

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

    def set_progress(self, progress: float) -> None:
        """Sets the learning rates for `progress` (0..1) of the budget trained."""
        scale = lr_scale(self.cfg, progress)
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
