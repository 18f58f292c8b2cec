"""The actor and critic: Keras builders and a numpy forward pass for inference.

Actor: obs -> Dense relu x len(hidden_sizes) -> (mu_raw: tanh, std_raw: softplus),
each [action_dim]; with std_mode param, std_raw = exp(log_std), one learned vector.
Critic: obs -> Dense relu x len(hidden_sizes) -> V (linear), [1].
Weights travel as the Keras models' `weights` lists: per Dense layer, kernel [in, out],
then bias [out]; with std_mode param the actor's list ends with log_std [action_dim].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import gymnasium as gym
    import keras

    from a3c.config import TrainConfig

LOG_2PI = math.log(2.0 * math.pi)


class EnvSpecError(ValueError):
    """The environment cannot be learned by this agent (unknown id, discrete actions...)."""


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """What the networks need to know of an environment's spaces."""

    obs_dim: int
    action_low: np.ndarray  # [action_dim] float32
    action_high: np.ndarray  # [action_dim] float32

    @property
    def action_dim(self) -> int:
        return int(self.action_low.shape[0])

    @property
    def action_center(self) -> np.ndarray:
        return ((self.action_high + self.action_low) / 2).astype(np.float32)

    @property
    def action_half_range(self) -> np.ndarray:
        return ((self.action_high - self.action_low) / 2).astype(np.float32)


def make_env(env_id: str, render_mode: str | None = None) -> gym.Env:
    """gym.make with one-line errors for ids that do not exist or do not fit the agent."""
    import gymnasium as gym

    try:
        env = gym.make(env_id, render_mode=render_mode)
    except gym.error.Error as err:
        raise EnvSpecError(f"environment {env_id!r} cannot be made: {err}") from None
    env_spec(env, env_id)
    return env


def env_spec(env: gym.Env, env_id: str = "") -> EnvSpec:
    """The EnvSpec of env; refuses non-Box observation or action spaces."""
    from gymnasium import spaces

    name = env_id or str(env.spec.id if env.spec else env)
    if not isinstance(env.action_space, spaces.Box):
        raise EnvSpecError(
            f"environment {name!r} has a {type(env.action_space).__name__} action space; "
            "this agent needs a continuous (Box) action space"
        )
    if not isinstance(env.observation_space, spaces.Box):
        raise EnvSpecError(f"environment {name!r} needs a Box observation space")
    low = np.asarray(env.action_space.low, np.float32).reshape(-1)
    high = np.asarray(env.action_space.high, np.float32).reshape(-1)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise EnvSpecError(f"environment {name!r} has an unbounded action space")
    obs_dim = int(np.prod(env.observation_space.shape))
    return EnvSpec(obs_dim=obs_dim, action_low=low, action_high=high)


def _mlp(keras_mod, inputs, hidden_sizes: Sequence[int], prefix: str):
    x = inputs
    for i, width in enumerate(hidden_sizes):
        x = keras_mod.layers.Dense(width, activation="relu", name=f"{prefix}_h{i}")(x)
    return x


def _log_std_layer(keras_mod, dim: int, init: float):
    """A layer holding one learned log-std per action dimension: x [B, ...] -> std [B, dim]."""

    class LogStd(keras_mod.layers.Layer):
        def build(self, input_shape):
            self.log_std = self.add_weight(
                shape=(dim,), initializer=keras_mod.initializers.Constant(init), name="log_std"
            )

        def call(self, x):
            ones = keras_mod.ops.ones_like(x[:, :1])
            return ones * keras_mod.ops.exp(self.log_std)[None, :]

        def compute_output_shape(self, input_shape):
            return (input_shape[0], dim)

    return LogStd(name="log_std")


def build_actor(spec: EnvSpec, cfg: TrainConfig) -> keras.Model:
    """The actor with weights created (the model is called once, never lazily built)."""
    import keras

    obs = keras.Input((spec.obs_dim,), name="obs")
    x = _mlp(keras, obs, cfg.hidden_sizes, "actor")
    mu = keras.layers.Dense(spec.action_dim, activation="tanh", name="mu")(x)
    if cfg.std_mode == "param":
        std = _log_std_layer(keras, spec.action_dim, cfg.log_std_init)(x)
    else:
        std = keras.layers.Dense(spec.action_dim, activation="softplus", name="std")(x)
    model = keras.Model(obs, [mu, std], name="actor")
    model(np.zeros((1, spec.obs_dim), np.float32))
    return model


def build_critic(spec: EnvSpec, cfg: TrainConfig) -> keras.Model:
    """The critic with weights created."""
    import keras

    obs = keras.Input((spec.obs_dim,), name="obs")
    x = _mlp(keras, obs, cfg.hidden_sizes, "critic")
    value = keras.layers.Dense(1, name="value")(x)
    model = keras.Model(obs, value, name="critic")
    model(np.zeros((1, spec.obs_dim), np.float32))
    return model


def weight_shapes(spec: EnvSpec, cfg: TrainConfig) -> tuple[list[tuple[int, ...]], ...]:
    """Shapes of the actor's and the critic's weight lists, in Keras order, without Keras."""

    def mlp(heads: Sequence[int]) -> list[tuple[int, ...]]:
        shapes: list[tuple[int, ...]] = []
        width = spec.obs_dim
        for h in cfg.hidden_sizes:
            shapes += [(width, h), (h,)]
            width = h
        for out in heads:
            shapes += [(width, out), (out,)]
        return shapes

    if cfg.std_mode == "param":
        return mlp([spec.action_dim]) + [(spec.action_dim,)], mlp([1])
    return mlp([spec.action_dim, spec.action_dim]), mlp([1])


def _hidden(weights: Sequence[np.ndarray], obs: np.ndarray, n_hidden: int) -> np.ndarray:
    x = obs
    for i in range(n_hidden):
        x = np.maximum(x @ weights[2 * i] + weights[2 * i + 1], 0.0)
    return x


def actor_forward(
    weights: Sequence[np.ndarray], obs: np.ndarray, std_mode: str = "state"
) -> tuple[np.ndarray, np.ndarray]:
    """numpy actor: obs [B, obs_dim] -> (mu_raw, std_raw), each [B, action_dim]."""
    if std_mode == "param":
        x = _hidden(weights, obs, (len(weights) - 3) // 2)
        mu_raw = np.tanh(x @ weights[-3] + weights[-2])
        std_raw = np.broadcast_to(np.exp(weights[-1]), mu_raw.shape)
    else:
        x = _hidden(weights, obs, (len(weights) - 4) // 2)
        mu_raw = np.tanh(x @ weights[-4] + weights[-3])
        std_raw = np.logaddexp(0.0, x @ weights[-2] + weights[-1])
    return mu_raw.astype(np.float32), std_raw.astype(np.float32)


def critic_forward(weights: Sequence[np.ndarray], obs: np.ndarray) -> np.ndarray:
    """numpy critic: obs [B, obs_dim] -> V [B]."""
    n_hidden = (len(weights) - 2) // 2
    x = _hidden(weights, obs, n_hidden)
    return (x @ weights[-2] + weights[-1])[:, 0].astype(np.float32)


def gaussian_log_prob(action: np.ndarray, mu: np.ndarray, std: np.ndarray) -> np.ndarray:
    """log N(action; mu, std) summed over the action dimension: [..., A] -> [...] (numpy)."""
    z = (action - mu) / std
    return -0.5 * np.sum(z * z, -1) - np.sum(np.log(std), -1) - 0.5 * LOG_2PI * z.shape[-1]


def split_flat(flat: np.ndarray, shapes) -> list[np.ndarray]:
    """A flat vector (as Trainer's flat weights) cut into arrays of the given shapes."""
    out, pos = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(flat[pos : pos + n].reshape(shape))
        pos += n
    return out


class NumpyPolicy:
    """The Gaussian policy of a weight set, evaluated with numpy (no TensorFlow).

    Batched: observations [M, obs_dim] give actions [M, action_dim], one forward pass for
    M environments. The single-observation methods are the batch of one."""

    def __init__(self, spec: EnvSpec, cfg: TrainConfig, rng: np.random.Generator):
        self._spec = spec
        self._cfg = cfg
        self._rng = rng
        self._weights: list[np.ndarray] = []

    def set_weights(self, actor_weights: Sequence[np.ndarray]) -> None:
        self._weights = list(actor_weights)

    def mean_std_batch(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """obs [M, obs_dim] -> (mu, std), each [M, action_dim]: mu in env units, std clipped."""
        mu_raw, std_raw = actor_forward(
            self._weights, np.asarray(obs, np.float32), self._cfg.std_mode
        )
        mu = self._spec.action_center + self._spec.action_half_range * mu_raw
        return mu, np.clip(std_raw, self._cfg.std_min, self._cfg.std_max)

    def sample_batch(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian actions for obs [M, obs_dim], clipped to the action space ([M, A]
        float32), and each action's log-density as the learner evaluates it ([M] float32):
        what V-trace's importance weights divide by."""
        mu, std = self.mean_std_batch(obs)
        action = mu + std * self._rng.standard_normal(mu.shape)
        action = np.clip(action, self._spec.action_low, self._spec.action_high).astype(np.float32)
        return action, gaussian_log_prob(action, mu, std).astype(np.float32)

    def mean_std(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """obs [obs_dim] -> (mu, std) [action_dim]."""
        mu, std = self.mean_std_batch(obs.reshape(1, -1))
        return mu[0], std[0]

    def sample(self, obs: np.ndarray) -> np.ndarray:
        """A Gaussian action for one observation: [action_dim] float32."""
        return self.sample_with_log_prob(obs)[0]

    def sample_with_log_prob(self, obs: np.ndarray) -> tuple[np.ndarray, float]:
        actions, log_probs = self.sample_batch(obs.reshape(1, -1))
        return actions[0], float(log_probs[0])

    def act_deterministic(self, obs: np.ndarray) -> np.ndarray:
        mu, _ = self.mean_std(obs)
        return np.clip(mu, self._spec.action_low, self._spec.action_high).astype(np.float32)
