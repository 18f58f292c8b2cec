"""a3c-export: the exported ONNX graph and SavedModel compute the numpy policy's
deterministic action, normalization included, and run with no project code."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.e2e.test_train import ENV, make_train

RUNS = {
    "Pendulum": ("Pendulum-v1", []),
    "CartPole": ("CartPole-v1", []),
    "Pendulum, running normalization": ("Pendulum-v1", ["--obs-normalization running"]),
    "Acrobot, bounds": ("Acrobot-v1", ["--obs-normalization bounds"]),
}


@pytest.fixture(scope="module", params=list(RUNS))
def exported(request, tmp_path_factory):
    """(run folder, export folder) of a short run of each kind."""
    env_id, flags = RUNS[request.param]
    run_dir = tmp_path_factory.mktemp("export") / "run"
    make_train(run_dir, f"ENV={env_id}", "N=1", "ENVS=2", "MODE=data", "STEPS=600",
               *([f"TRAIN_FLAGS={' '.join(flags)}"] if flags else []))  # fmt: skip
    done = subprocess.run(
        ["make", "export", f"RUN_DIR={run_dir}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return run_dir, run_dir / "export"


def numpy_policy(run_dir):
    """(spec, the numpy deterministic policy of a run folder, its normalizer)."""
    from a3c.envs import env_of, env_spec
    from a3c.policy import NumpyPolicy
    from lab.play import load_actor_weights, run_normalizer
    from lab.runs import train_config

    cfg = train_config(run_dir)
    spec = env_spec(env_of(cfg))
    policy = NumpyPolicy(spec, cfg, np.random.default_rng(0))
    policy.set_weights(load_actor_weights(run_dir, spec, cfg))
    return cfg, spec, policy, run_normalizer(run_dir, spec, cfg)


def test_onnx_and_saved_model_equal_the_numpy_forward(exported):
    import onnxruntime
    import tensorflow as tf

    run_dir, out = exported
    assert {p.name for p in out.iterdir()} == {"policy.onnx", "saved_model", "README.md"}
    cfg, spec, policy, normalizer = numpy_policy(run_dir)
    obs = (np.random.default_rng(1).normal(size=(1000, spec.obs_dim)) * 3).astype(np.float32)
    seen = obs if normalizer is None else normalizer.obs(obs)
    want = np.stack([policy.act_deterministic(o) for o in seen])
    onnx_out = onnxruntime.InferenceSession(str(out / "policy.onnx")).run(None, {"obs": obs})
    served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    tf_out = {k: v.numpy() for k, v in served(obs=tf.constant(obs)).items()}
    if spec.discrete:
        logits = policy.logits_batch(seen)
        np.testing.assert_allclose(onnx_out[0], logits, atol=1e-5)
        np.testing.assert_allclose(tf_out["logits"], logits, atol=1e-5)
        assert np.array_equal(onnx_out[1], want[:, 0].astype(np.int64))
        assert np.array_equal(tf_out["action"], want[:, 0].astype(np.int64))
    else:
        (action,) = onnx_out
        np.testing.assert_allclose(action, want, atol=1e-5)
        np.testing.assert_allclose(tf_out["action"], want, atol=1e-5)
        assert np.all(action >= spec.action_low) and np.all(action <= spec.action_high)
    readme = (out / "README.md").read_text()
    assert cfg.env_id in readme and "onnxruntime" in readme


PLAYER = textwrap.dedent("""
    import json, sys
    import gymnasium as gym, numpy as np, onnxruntime as ort
    policy = ort.InferenceSession(sys.argv[1])
    env = gym.make(sys.argv[2])
    obs, _ = env.reset(seed=int(sys.argv[3]))
    done, total, seen, actions = False, 0.0, [], []
    while not done:
        action = policy.run(None, {"obs": np.asarray(obs, np.float32)[None]})[-1][0]
        seen.append(np.asarray(obs, np.float32).tolist())
        actions.append(np.asarray(action).reshape(-1).tolist())
        obs, reward, terminated, truncated, _ = env.step(action)
        total, done = total + float(reward), terminated or truncated
    ours = [m for m in sys.modules if m.split(".")[0] in ("a3c", "server", "worker", "lab")]
    print(json.dumps({"return": total, "obs": seen, "actions": actions, "project": ours}))
""")


def test_an_exported_policy_plays_with_no_project_code(exported, tmp_path):
    """onnxruntime, gymnasium and numpy alone (python -I, run from elsewhere) play a whole
    episode, and at every state it visits it takes the project's numpy policy's action."""
    import json

    run_dir, out = exported
    cfg, spec, policy, normalizer = numpy_policy(run_dir)
    script = tmp_path / "player.py"
    script.write_text(PLAYER)
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(out / "policy.onnx"), cfg.env_id, "7"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    played = json.loads(done.stdout.strip().splitlines()[-1])
    assert played["project"] == []
    assert np.isfinite(played["return"]) and len(played["actions"]) >= 1
    obs = np.asarray(played["obs"], np.float32)
    actions = np.asarray(played["actions"], np.float32)
    seen = obs if normalizer is None else normalizer.obs(obs)
    if spec.discrete:
        logits = np.sort(policy.logits_batch(seen), axis=1)
        clear = logits[:, -1] - logits[:, -2] > 1e-4  # an argmax float rounding cannot flip
        want = np.argmax(policy.logits_batch(seen), axis=1)
        assert np.array_equal(actions[clear, 0], want[clear])
    else:
        want = np.stack([policy.act_deterministic(o) for o in seen])
        np.testing.assert_allclose(actions, want, atol=1e-5)
