"""a3c-export: a trained run's deterministic policy, to run without this project.

    a3c-export runs/NAME        (make export RUN_DIR=runs/NAME)

writes RUN_DIR/export/:
- policy.onnx: input `obs` [batch, obs_dim] float32, the raw observation; output `action`,
  the deterministic action in the environment's units (continuous: the mean, clipped to
  the action bounds, [batch, action_dim] float32); for discrete actions `logits` [batch,
  n] first and `action` [batch] int64, their argmax. Observation normalization (bounds or
  running statistics) is inside the graph. ONNX opset 17, built node by node from the one
  network description (a3c.model.networks): the same few operations as the numpy forward
  (MatMul, Add, the activations), so the two agree to float32 rounding; a converter from
  the Keras model (tf2onnx) would add a dependency of its own for no more exactness.
- saved_model/: a TensorFlow SavedModel whose `serving_default` signature takes `obs` and
  returns the same outputs, computed by the Keras actor (for TF Serving).
- README.md: the inputs and outputs, the environment and its spaces, the weights version
  and env steps the policy came from, and an onnxruntime example.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from a3c.tfimport import import_tensorflow
from lab.runs import RunError, train_config

OPSET = 17
ONNX_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "linear": "Identity"}


def policy_constants(spec, cfg, actor_weights, statistics) -> dict:
    """What the exported graphs compute with, as float32 arrays: the normalization (obs
    shift and multiplier, clip), the layers, the action's centre, half range and bounds."""
    from a3c.model import networks
    from a3c.normalization import Normalizer

    actor = networks(spec, cfg)[0]
    shift = np.zeros(spec.obs_dim, np.float32)
    multiplier = np.ones(spec.obs_dim, np.float32)
    clip = None
    if cfg.obs_normalization == "running":
        norm = Normalizer(spec.obs_dim, 1, cfg.gamma, True, False, obs_clip=cfg.obs_clip)
        norm.set(statistics)
        (shift, multiplier), clip = norm.obs_affine, float(cfg.obs_clip)
    elif actor.in_scale:
        multiplier = (1.0 / np.asarray(actor.in_scale, np.float32)).astype(np.float32)
    layers, i = [], 0
    for layer in actor.trunk:
        layers.append((actor_weights[i], actor_weights[i + 1], layer.activation))
        i += 2
    head = actor.heads[0]  # mu (tanh) or the logits: the deterministic action's head
    layers.append((actor_weights[i], actor_weights[i + 1], head.activation))
    return {
        "shift": shift, "multiplier": multiplier, "clip": clip, "layers": layers,
        "center": spec.action_center, "half_range": spec.action_half_range,
        "low": spec.action_low, "high": spec.action_high,
    }  # fmt: skip


def onnx_model(spec, consts: dict):
    """The policy as an onnx.ModelProto (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    x = node("Sub", ["obs", const("obs_shift", consts["shift"])], "obs_centered")
    x = node("Mul", [x, const("obs_multiplier", consts["multiplier"])], "obs_scaled")
    if consts["clip"] is not None:
        c = consts["clip"]
        x = node("Clip", [x, const("obs_clip_low", -c), const("obs_clip_high", c)], "obs_clip")
    for k, (kernel, bias, activation) in enumerate(consts["layers"]):
        x = node("MatMul", [x, const(f"kernel_{k}", kernel)], f"matmul_{k}")
        x = node("Add", [x, const(f"bias_{k}", bias)], f"dense_{k}")
        x = node(ONNX_ACTIVATIONS[activation], [x], f"activation_{k}")
    if spec.discrete:
        nodes.append(helper.make_node("Identity", [x], ["logits"], name="logits"))
        nodes.append(
            helper.make_node("ArgMax", ["logits"], ["action"], name="action", axis=1, keepdims=0)
        )
        outputs = [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", spec.n_actions]),
            helper.make_tensor_value_info("action", TensorProto.INT64, ["batch"]),
        ]
    else:
        x = node("Mul", [x, const("action_half_range", consts["half_range"])], "mean_scaled")
        x = node("Add", [x, const("action_center", consts["center"])], "mean")
        x = node("Max", [x, const("action_low", consts["low"])], "mean_above_low")
        nodes.append(
            helper.make_node(
                "Min", [x, const("action_high", consts["high"])], ["action"], name="action"
            )  # fmt: skip
        )
        outputs = [
            helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", spec.action_dim])
        ]
    graph = helper.make_graph(
        nodes, "a3c_policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", spec.obs_dim])],
        outputs, inits,
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="a3c-export"
    )
    model.ir_version = 8  # what onnxruntime releases of the last years all read
    onnx.checker.check_model(model)
    return model


def saved_model(spec, cfg, actor_weights, consts: dict, path: Path) -> None:
    """The policy as a TensorFlow SavedModel with a serving_default signature."""
    import_tensorflow()
    import tensorflow as tf

    from a3c.model import build_actor

    actor = build_actor(spec, cfg)
    actor.set_weights(actor_weights)
    shift, multiplier, clip = consts["shift"], consts["multiplier"], consts["clip"]
    if cfg.obs_normalization != "running":  # the Keras actor scales by the bounds itself
        shift, multiplier = np.zeros_like(shift), np.ones_like(multiplier)

    class Policy(tf.Module):
        def __init__(self):
            super().__init__()
            self.actor = actor

        @tf.function(input_signature=[tf.TensorSpec([None, spec.obs_dim], tf.float32, "obs")])
        def serve(self, obs):
            x = (obs - shift) * multiplier
            if clip is not None:
                x = tf.clip_by_value(x, -clip, clip)
            out = self.actor(x)
            if spec.discrete:
                return {"logits": out, "action": tf.argmax(out, axis=1)}
            mean = consts["center"] + consts["half_range"] * out[0]
            return {"action": tf.clip_by_value(mean, consts["low"], consts["high"])}

    module = Policy()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


README = """# Exported policy: {env}

The deterministic policy of a run of a3c-grpc ({env_id}{kwargs}), at weights version
{version} after {env_steps} trained env steps ({episodes} episodes).

- `policy.onnx` (ONNX opset {opset}): input `obs`, float32 `[batch, {obs_dim}]`, the raw
  observation of `{observation_space}`; {outputs}. {normalization}
- `saved_model/`: a TensorFlow SavedModel; its `serving_default` signature takes `obs` and
  returns the same outputs by name.

Action space: `{action_space}`.

```python
import gymnasium as gym, numpy as np, onnxruntime as ort

policy = ort.InferenceSession("policy.onnx")
env = gym.make("{env_id}"{make_kwargs})
obs, _ = env.reset(seed=0)
done, total = False, 0.0
while not done:
    outputs = policy.run(None, {{"obs": np.asarray(obs, np.float32)[None]}})
    action = outputs[-1][0]{to_env}
    obs, reward, terminated, truncated, _ = env.step(action)
    total, done = total + reward, terminated or truncated
print(total)
```
"""


def write_readme(path: Path, run_dir: Path, env, spec, cfg) -> None:
    from a3c.envs import parse_env_kwargs
    from server.checkpoints import NAME

    meta = {}
    if (run_dir / NAME).exists():
        with np.load(run_dir / NAME) as data:
            meta = json.loads(str(data["meta"]))
    kwargs = parse_env_kwargs(cfg.env_kwargs)
    if spec.discrete:
        outputs = (f"outputs `logits`, float32 `[batch, {spec.n_actions}]`, and `action`, "
                   "int64 `[batch]`, their argmax: the action to take")  # fmt: skip
    else:
        outputs = (f"output `action`, float32 `[batch, {spec.action_dim}]`: the policy's "
                   "mean action in the environment's units, clipped to its bounds")  # fmt: skip
    normalization = {
        "running": "The observation is normalized inside the graph with the running "
        "statistics the weights were trained with (mean, std, clip).",
        "bounds": "The observation is divided by its bounds inside the graph.",
    }.get(cfg.obs_normalization, "The graph takes the observation as it is.")
    path.write_text(README.format(
        env=cfg.env_id, env_id=cfg.env_id, kwargs=f", {cfg.env_kwargs}" if kwargs else "",
        make_kwargs="".join(f", {k}={v!r}" for k, v in kwargs.items()),
        version=meta.get("version", "?"), env_steps=meta.get("env_steps", "?"),
        episodes=meta.get("episodes", "?"), opset=OPSET, obs_dim=spec.obs_dim,
        observation_space=env.observation_space, action_space=env.action_space,
        outputs=outputs, normalization=normalization,
        to_env="  # an int64 index" if spec.discrete else "",
    ))  # fmt: skip


def export(run_dir: Path, out: Path | None = None) -> Path:
    """Writes the export folder of a run; returns its path."""
    from a3c.envs import EnvSpecError, env_of, env_spec
    from lab.play import load_actor_weights
    from server.checkpoints import read_statistics

    if not run_dir.is_dir():
        raise RunError(f"no run folder at {run_dir}")
    cfg = train_config(run_dir)
    try:
        env = env_of(cfg)
        spec = env_spec(env, cfg.env_id)
    except EnvSpecError as err:
        raise RunError(str(err)) from None
    weights = load_actor_weights(run_dir, spec, cfg)
    statistics = read_statistics(run_dir)
    if cfg.obs_normalization == "running" and statistics is None:
        raise RunError(f"{run_dir} trained with running normalization but has no statistics")
    consts = policy_constants(spec, cfg, weights, statistics)
    out = out or run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    import onnx

    onnx.save(onnx_model(spec, consts), str(out / "policy.onnx"))
    saved_model(spec, cfg, weights, consts, out / "saved_model")
    write_readme(out / "README.md", run_dir, env, spec, cfg)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="run folder with actor.weights.h5")
    parser.add_argument("--out", type=Path, help="folder to write (default RUN_DIR/export)")
    args = parser.parse_args(argv)
    try:
        out = export(args.run_dir, args.out)
    except RunError as err:
        print(f"a3c-export: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'policy.onnx'}, {out / 'saved_model'} and {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
