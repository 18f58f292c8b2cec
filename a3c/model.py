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
    import keras

    from a3c.config import TrainConfig
    from a3c.envs import EnvSpec


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


def split_flat(flat: np.ndarray, shapes) -> list[np.ndarray]:
    """A flat vector (as Trainer's flat weights) cut into arrays of the given shapes."""
    out, pos = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(flat[pos : pos + n].reshape(shape))
        pos += n
    return out
