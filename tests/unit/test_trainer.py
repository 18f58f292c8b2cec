"""The trainer: its flat Adam equals Keras's, the schedule, and the fast graph call."""

import numpy as np
import pytest
import tensorflow as tf

from a3c import trainer as trainer_mod
from a3c.config import TrainConfig, preset_config
from a3c.envs import env_spec, make_env
from a3c.model import build_actor, build_critic


def test_linear_schedule_falls_to_the_final_scale():
    cfg = TrainConfig(lr_schedule="linear", lr_final_scale=0.1)
    scales = [trainer_mod.lr_scale(cfg, p) for p in (0.0, 0.5, 1.0, 1.5)]
    assert scales == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert trainer_mod.lr_scale(preset_config("seed"), 0.75) == 1.0


def test_flat_adam_step_equals_keras_adam_with_clipping():
    """Trainer's one-vector Adam makes Keras Adam's update, after per-network clipping."""
    import keras
    import tensorflow as tf

    cfg = preset_config("seed", grad_clip_norm=0.5)
    spec = env_spec(make_env(cfg.env_id))
    trainer = trainer_mod.Trainer(build_actor(spec, cfg), build_critic(spec, cfg), spec, cfg)
    actor, critic = build_actor(spec, cfg), build_critic(spec, cfg)
    variables = (*actor.trainable_variables, *critic.trainable_variables)
    n = len(actor.trainable_variables)
    cuts = np.cumsum([int(np.prod(v.shape)) for v in variables])[:-1]
    start = trainer.flat_weights()
    for v, part in zip(variables, np.split(start, cuts)):
        v.assign(part.reshape(v.shape))
    opts = keras.optimizers.Adam(cfg.actor_lr), keras.optimizers.Adam(cfg.critic_lr)
    rng = np.random.default_rng(4)
    for _ in range(3):
        grads = rng.normal(size=trainer.n_params).astype(np.float32)
        got = trainer.gradient_step(grads)
        parts = [tf.constant(g.reshape(v.shape)) for g, v in zip(np.split(grads, cuts), variables)]
        for opt, model, gs in ((opts[0], actor, parts[:n]), (opts[1], critic, parts[n:])):
            clipped, _ = tf.clip_by_global_norm(gs, cfg.grad_clip_norm)
            opt.apply_gradients(zip(clipped, model.trainable_variables))
        want = np.concatenate([np.ravel(v) for v in variables])
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert not np.allclose(got, start)


def test_the_fast_graph_call_is_there_and_equals_the_public_one():
    """graph_call's fast path is TensorFlow's private API: this fails, by name, when an
    upgrade removes it (training still works, through the public path, only slower)."""
    variable = tf.Variable(tf.range(3, dtype=tf.float32))
    function = tf.function(
        lambda x: x * 2.0 + tf.reduce_sum(variable),
        input_signature=[tf.TensorSpec((None,), tf.float32)],
    )
    fast, is_fast = trainer_mod.graph_call(function)
    public, is_public_fast = trainer_mod.graph_call(function, fast=False)
    assert is_fast, (
        f"TensorFlow {tf.__version__} no longer has ConcreteFunction._inference_function."
        "call_flat: a3c.trainer.graph_call falls back to the public call (each compiled "
        "step about 0.2-0.5 ms slower); find the new fast path or accept the slower one"
    )
    assert not is_public_fast
    x = tf.constant([1.0, -2.0, 0.5])
    np.testing.assert_array_equal(fast(x).numpy(), public(x).numpy())
    np.testing.assert_array_equal(fast(x).numpy(), [5.0, -1.0, 4.0])
    variable.assign([1.0, 1.0, 1.0])  # captured variables are read at call time
    np.testing.assert_array_equal(fast(x).numpy(), public(x).numpy())
