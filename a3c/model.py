"""The actor and critic: one description (`networks`) that builds the Keras models, gives
the weight shapes, and runs the numpy forward pass for inference.

Actor: obs -> Dense (relu or tanh) x len(hidden_sizes) -> heads. Continuous (Box) actions: mu_raw
(tanh) and std_raw (softplus), each [action_dim]; with std_mode param, std_raw =
exp(log_std), one learned vector. Discrete actions: logits [n_actions].
Critic: obs -> Dense (relu or tanh) x len(hidden_sizes) -> V (linear), [1].
Weights start glorot (Keras's default) or orthogonal (weight_init), as the layers say.
With obs_normalization bounds, both first divide obs by its bounds (EnvSpec.obs_bound),
in a layer without weights.
Weights travel as the Keras models' `weights` lists, in the description's order: per
Dense layer kernel [in, out] then bias [out]; a Param layer is its one vector.
"""

from __future__ import annotations

import dataclasses
import functools
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
    """The environment cannot be learned by this agent (unknown id, unsupported spaces...)."""


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """What the networks need to know of an environment's spaces.

    A discrete action (n_actions > 0) travels as one float holding its index, so
    action_dim, the width of an action on the wire and in batches, is 1."""

    obs_dim: int
    action_low: np.ndarray  # [action_dim] float32 (discrete: 0)
    action_high: np.ndarray  # [action_dim] float32 (discrete: n_actions - 1)
    n_actions: int = 0  # > 0: a Discrete action space of this many actions
    obs_bound: tuple[float, ...] = ()  # per observation: max |low|, |high| (1 where unbounded)
    time_limit: int = 0  # the environment's max_episode_steps (0: none)

    @property
    def discrete(self) -> bool:
        return self.n_actions > 0

    @property
    def action_dim(self) -> int:
        return int(self.action_low.shape[0])

    @property
    def action_center(self) -> np.ndarray:
        return ((self.action_high + self.action_low) / 2).astype(np.float32)

    @property
    def action_half_range(self) -> np.ndarray:
        return ((self.action_high - self.action_low) / 2).astype(np.float32)

    def env_action(self, action: np.ndarray):
        """An action as stored in rollouts ([action_dim] float32) as env.step takes it."""
        return int(action[0]) if self.discrete else action

    def invalid_actions(self, actions: np.ndarray) -> str | None:
        """Why actions [..., action_dim] cannot be this space's, or None (discrete: whole
        numbers 0..n_actions-1; continuous actions are any finite numbers, clipped by the
        environment)."""
        if not self.discrete:
            return None
        if (
            np.any(actions != np.round(actions))
            or np.any(actions < 0)
            or np.any(actions >= self.n_actions)
        ):
            return f"discrete actions must be whole numbers 0..{self.n_actions - 1}"
        return None


SUPPORTED = "Box observations and a Box (continuous) or Discrete action space"


def make_env(env_id: str, render_mode: str | None = None, env_kwargs: str = "") -> gym.Env:
    """gym.make with one-line errors for ids that do not exist or do not fit the agent;
    env_kwargs as TrainConfig.env_kwargs (KEY=VALUE,...)."""
    import gymnasium as gym

    from a3c.envs import env_defaults, parse_env_kwargs

    try:
        kwargs = parse_env_kwargs(env_kwargs)
        env = gym.make(env_id, render_mode=render_mode, **kwargs)
    except gym.error.DependencyNotInstalled as err:
        extra = env_defaults(env_id, env_kwargs).extra
        hint = f" (gymnasium[{extra}], which make setup installs)" if extra else ""
        raise EnvSpecError(f"environment {env_id!r} needs a package: {err}{hint}") from None
    except (gym.error.Error, TypeError, ValueError) as err:
        raise EnvSpecError(f"environment {env_id!r} cannot be made: {err}") from None
    env_spec(env, env_id)
    return env


def env_of(cfg: TrainConfig, render_mode: str | None = None) -> gym.Env:
    """The environment a config trains: its id and keyword arguments (make_env)."""
    return make_env(cfg.env_id, render_mode, cfg.env_kwargs)


def env_spec(env: gym.Env, env_id: str = "") -> EnvSpec:
    """The EnvSpec of env; refuses spaces other than Box observations and Box or Discrete
    actions."""
    from gymnasium import spaces

    name = env_id or str(env.spec.id if env.spec else env)
    space = env.action_space
    if not isinstance(env.observation_space, spaces.Box):
        raise EnvSpecError(
            f"environment {name!r} has a {type(env.observation_space).__name__} observation "
            f"space; supported: {SUPPORTED}"
        )
    obs_dim = int(np.prod(env.observation_space.shape))
    bound = np.maximum(
        np.abs(np.asarray(env.observation_space.low, np.float64)),
        np.abs(np.asarray(env.observation_space.high, np.float64)),
    ).reshape(-1)
    obs_bound = tuple(float(b) if np.isfinite(b) and b > 0 else 1.0 for b in bound)
    limit = int(getattr(env.spec, "max_episode_steps", None) or 0)
    if isinstance(space, spaces.Discrete):
        if int(space.start) != 0:
            raise EnvSpecError(f"environment {name!r}: Discrete actions must start at 0")
        n = int(space.n)
        zero, last = np.zeros(1, np.float32), np.full(1, n - 1, np.float32)
        return EnvSpec(obs_dim, zero, last, n, obs_bound, limit)
    if not isinstance(space, spaces.Box):
        raise EnvSpecError(
            f"environment {name!r} has a {type(space).__name__} action space; "
            f"supported: {SUPPORTED}"
        )
    low = np.asarray(space.low, np.float32).reshape(-1)
    high = np.asarray(space.high, np.float32).reshape(-1)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise EnvSpecError(f"environment {name!r} has an unbounded action space")
    return EnvSpec(obs_dim, low, high, obs_bound=obs_bound, time_limit=limit)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of a network. Dense (param_init None): kernel [in, units] and bias
    [units], then the activation. Param: one learned vector [units] (initialised to
    param_init) that does not depend on the input; the activation of it, for every row."""

    name: str
    units: int
    activation: str = "linear"  # a key of NUMPY_ACTIVATIONS
    param_init: float | None = None
    init_gain: float | None = None  # Dense: orthogonal kernel of this gain, bias 0 (None: glorot)

    @property
    def is_param(self) -> bool:
        return self.param_init is not None


@dataclasses.dataclass(frozen=True)
class Network:
    """A trunk of Dense layers in a row, then heads, each on the trunk's output; the
    inputs divided first by in_scale (per input; () leaves them as they are)."""

    name: str
    trunk: tuple[Layer, ...]
    heads: tuple[Layer, ...]
    in_scale: tuple[float, ...] = ()

    @functools.cached_property
    def _multiplier(self) -> np.ndarray | None:
        return 1.0 / np.asarray(self.in_scale, np.float32) if self.in_scale else None

    def shapes(self, in_dim: int) -> list[tuple[int, ...]]:
        """The weight shapes, in Keras order."""
        shapes: list[tuple[int, ...]] = []
        width = in_dim
        for layer in self.trunk:
            shapes += [(width, layer.units), (layer.units,)]
            width = layer.units
        for head in self.heads:
            shapes += [(head.units,)] if head.is_param else [(width, head.units), (head.units,)]
        return shapes

    def forward(self, weights: Sequence[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
        """numpy: inputs [B, in] -> one [B, units] float32 array per head."""
        if self._multiplier is not None:
            x = x * self._multiplier
        i = 0
        for layer in self.trunk:
            x = NUMPY_ACTIVATIONS[layer.activation](x @ weights[i] + weights[i + 1])
            i += 2
        outs = []
        for head in self.heads:
            if head.is_param:
                value = NUMPY_ACTIVATIONS[head.activation](weights[i])
                outs.append(np.broadcast_to(value, (x.shape[0], head.units)).astype(np.float32))
                i += 1
            else:
                value = NUMPY_ACTIVATIONS[head.activation](x @ weights[i] + weights[i + 1])
                outs.append(value.astype(np.float32))
                i += 2
        return outs

    def build(self, in_dim: int) -> keras.Model:
        """The Keras model, weights created (called once, never lazily built); its output
        is the list of heads' outputs, or the one head's."""
        import keras

        inputs = keras.Input((in_dim,), name="obs")
        x = inputs
        if self._multiplier is not None:  # no weights: the weight list is the same
            x = keras.layers.Rescaling(self._multiplier, name="obs_scale")(x)
        for layer in self.trunk:
            x = _dense(keras, layer)(x)
        outs = [
            _param_layer(keras, head)(x) if head.is_param else _dense(keras, head)(x)
            for head in self.heads
        ]
        model = keras.Model(inputs, outs if len(outs) > 1 else outs[0], name=self.name)
        model(np.zeros((1, in_dim), np.float32))
        return model


NUMPY_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "softplus": lambda x: np.logaddexp(0.0, x),
    "exponential": np.exp,
}
"""The activations a Layer may name (Keras knows each by the same name)."""


def _dense(keras_mod, layer: Layer):
    """The Keras Dense layer of a Layer, initialised as it says."""
    init = {}
    if layer.init_gain is not None:
        init = {
            "kernel_initializer": keras_mod.initializers.Orthogonal(gain=layer.init_gain),
            "bias_initializer": "zeros",
        }
    return keras_mod.layers.Dense(layer.units, activation=layer.activation, name=layer.name, **init)


def _param_layer(keras_mod, head: Layer):
    """A Keras layer holding head's learned vector: x [B, ...] -> activation(p) [B, units]."""
    units, init, activation = head.units, float(head.param_init), head.activation

    class Param(keras_mod.layers.Layer):
        def build(self, input_shape):
            self.vector = self.add_weight(
                shape=(units,), initializer=keras_mod.initializers.Constant(init), name=head.name
            )

        def call(self, x):
            ones = keras_mod.ops.ones_like(x[:, :1])
            return ones * keras_mod.activations.get(activation)(self.vector)[None, :]

        def compute_output_shape(self, input_shape):
            return (input_shape[0], units)

    return Param(name=head.name)


def networks(spec: EnvSpec, cfg: TrainConfig) -> tuple[Network, Network]:
    """The actor and the critic of an environment and a config: the one description."""

    orthogonal = cfg.weight_init == "orthogonal"

    def gain(value: float) -> float | None:
        return value if orthogonal else None

    def trunk(prefix: str) -> tuple[Layer, ...]:
        return tuple(
            Layer(f"{prefix}_h{i}", w, cfg.activation, init_gain=gain(math.sqrt(2.0)))
            for i, w in enumerate(cfg.hidden_sizes)
        )

    policy = gain(0.01)
    if spec.discrete:
        heads: tuple[Layer, ...] = (Layer("logits", spec.n_actions, init_gain=policy),)
    elif cfg.std_mode == "param":
        heads = (
            Layer("mu", spec.action_dim, "tanh", init_gain=policy),
            Layer("log_std", spec.action_dim, "exponential", param_init=cfg.log_std_init),
        )
    else:
        heads = (
            Layer("mu", spec.action_dim, "tanh", init_gain=policy),
            Layer("std", spec.action_dim, "softplus", init_gain=policy),
        )
    scale = spec.obs_bound if cfg.obs_normalization == "bounds" else ()
    actor = Network("actor", trunk("actor"), heads, scale)
    critic = Network("critic", trunk("critic"), (Layer("value", 1, init_gain=gain(1.0)),), scale)
    return actor, critic


def build_actor(spec: EnvSpec, cfg: TrainConfig) -> keras.Model:
    """The actor with weights created."""
    return networks(spec, cfg)[0].build(spec.obs_dim)


def build_critic(spec: EnvSpec, cfg: TrainConfig) -> keras.Model:
    """The critic with weights created."""
    return networks(spec, cfg)[1].build(spec.obs_dim)


def weight_shapes(spec: EnvSpec, cfg: TrainConfig) -> tuple[list[tuple[int, ...]], ...]:
    """Shapes of the actor's and the critic's weight lists, in Keras order, without Keras."""
    actor, critic = networks(spec, cfg)
    return actor.shapes(spec.obs_dim), critic.shapes(spec.obs_dim)


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


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log of the softmax over the last axis (numpy, stable)."""
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def categorical_log_prob(actions: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log softmax(logits)[a] of actions [..., 1] (indices as floats) -> [...] (numpy)."""
    index = actions[..., 0].astype(np.int64)[..., None]
    return np.take_along_axis(log_softmax(logits), index, -1)[..., 0]


def categorical_entropy(logits: np.ndarray) -> np.ndarray:
    """Entropy of the categorical distribution of logits [..., N] -> [...] (numpy)."""
    logp = log_softmax(logits)
    return -np.sum(np.exp(logp) * logp, -1)


class NumpyPolicy:
    """The policy of a weight set, evaluated with numpy (no TensorFlow): Gaussian for
    continuous actions, categorical for discrete ones.

    Batched: observations [M, obs_dim] give actions [M, action_dim], one forward pass for
    M environments. The single-observation methods are the batch of one."""

    def __init__(self, spec: EnvSpec, cfg: TrainConfig, rng: np.random.Generator):
        self._spec = spec
        self._cfg = cfg
        self._rng = rng
        self._actor = networks(spec, cfg)[0]
        self._weights: list[np.ndarray] = []

    def set_weights(self, actor_weights: Sequence[np.ndarray]) -> None:
        self._weights = list(actor_weights)

    def env_action(self, action: np.ndarray):
        """A sampled action row as env.step takes it (an int for discrete actions)."""
        return self._spec.env_action(action)

    def outputs(self, obs: np.ndarray) -> list[np.ndarray]:
        """The actor's raw heads for obs [M, obs_dim]."""
        return self._actor.forward(self._weights, np.asarray(obs, np.float32))

    def logits_batch(self, obs: np.ndarray) -> np.ndarray:
        """Discrete actions: obs [M, obs_dim] -> logits [M, n_actions]."""
        return self.outputs(obs)[0]

    def mean_std_batch(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """obs [M, obs_dim] -> (mu, std), each [M, action_dim]: mu in env units, std clipped."""
        mu_raw, std_raw = self.outputs(obs)
        mu = self._spec.action_center + self._spec.action_half_range * mu_raw
        return mu, np.clip(std_raw, self._cfg.std_min, self._cfg.std_max)

    def sample_batch(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Actions for obs [M, obs_dim] ([M, action_dim] float32: Gaussian, clipped to the
        action space; or a discrete action's index) and each action's log-probability as
        the learner evaluates it ([M] float32): what V-trace's importance weights divide by."""
        if self._spec.discrete:
            logp = log_softmax(self.logits_batch(obs).astype(np.float64))
            gumbel = -np.log(-np.log(self._rng.uniform(1e-12, 1.0, logp.shape)))
            index = np.argmax(logp + gumbel, -1)
            chosen = np.take_along_axis(logp, index[:, None], -1)[:, 0]
            return index[:, None].astype(np.float32), chosen.astype(np.float32)
        mu, std = self.mean_std_batch(obs)
        action = mu + std * self._rng.standard_normal(mu.shape)
        action = np.clip(action, self._spec.action_low, self._spec.action_high).astype(np.float32)
        return action, gaussian_log_prob(action, mu, std).astype(np.float32)

    def log_prob_batch(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """log pi(a|s) of actions [M, action_dim] at obs [M, obs_dim]: [M] float32."""
        if self._spec.discrete:
            return categorical_log_prob(actions, self.logits_batch(obs)).astype(np.float32)
        return gaussian_log_prob(actions, *self.mean_std_batch(obs)).astype(np.float32)

    def sample(self, obs: np.ndarray) -> np.ndarray:
        """An action for one observation: [action_dim] float32."""
        return self.sample_with_log_prob(obs)[0]

    def sample_with_log_prob(self, obs: np.ndarray) -> tuple[np.ndarray, float]:
        actions, log_probs = self.sample_batch(obs.reshape(1, -1))
        return actions[0], float(log_probs[0])

    def act_deterministic(self, obs: np.ndarray) -> np.ndarray:
        """The most likely action (Gaussian: the mean, clipped; discrete: the argmax)."""
        if self._spec.discrete:
            return np.array([np.argmax(self.logits_batch(obs.reshape(1, -1))[0])], np.float32)
        mu, _ = self.mean_std_batch(obs.reshape(1, -1))
        return np.clip(mu[0], self._spec.action_low, self._spec.action_high).astype(np.float32)
