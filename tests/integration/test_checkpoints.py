"""Checkpoint and resume: a new server on the same run folder continues where it stopped."""

import numpy as np
import pytest

from a3c.config import ServerConfig, TrainConfig
from a3c.envs import env_spec, make_env
from a3c.v1 import a3c_pb2 as pb
from server import checkpoints
from server.app import App
from tests.integration.test_service import connect
from tests.pushes import rollout, sample_push


def optimizer_state(app):
    return [v.copy() for v in app.trainer.optimizer_state().values()]


def train_episode(live, ret):
    worker_id, lease = connect(live, pb.MODE_DATA)
    pushes = [
        sample_push(worker_id, lease, rollout(seed=i), seq=i + 1, **end)
        for i, end in enumerate([{}, {"episode_end": True, "episode_return": ret,
                                      "episode_length": 8}])
    ]  # fmt: skip
    return list(live.stub.PushSamples(iter(pushes)))


def test_resume_restores_weights_optimizer_counters_and_log(live_server_factory, tmp_path):
    cfg = TrainConfig(max_episodes=4)
    live = live_server_factory(cfg)
    train_episode(live, -100.0)
    train_episode(live, -200.0)
    live.app.learner.stop()  # as at a checkpoint: the learner is between pushes
    live.app.save()
    saved_weights = live.app.learner.snapshot()[1].copy()
    saved_opt = optimizer_state(live.app)
    # An episode after the checkpoint is lost with the crash and trained again.
    live.app.runlog.episode(3, "lost", -300.0, 8, 99)

    run_dir = live.app.run_dir
    scfg = ServerConfig(port=0, metrics_port=0, run_dir=str(run_dir))
    resumed = App(cfg, scfg, env_spec(make_env(cfg.env_id)), run_dir)
    try:
        assert resumed.learner.version == 4
        assert resumed.budget.completed == 2
        assert resumed.runlog.env_steps == 16
        np.testing.assert_array_equal(resumed.learner.snapshot()[1], saved_weights)
        for a, b in zip(optimizer_state(resumed), saved_opt):
            np.testing.assert_array_equal(a, b)
        lines = (run_dir / "returns.csv").read_text().splitlines()
        assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]
        assert resumed.runlog.recent_mean() == -150.0
    finally:
        resumed.runlog.close()


def test_a_checkpoint_of_other_settings_is_refused(live_server_factory):
    live = live_server_factory(TrainConfig(max_episodes=2))
    live.app.learner.stop()
    live.app.save()
    other = TrainConfig(max_episodes=2, hidden_sizes=(8,))
    run_dir = live.app.run_dir
    scfg = ServerConfig(port=0, metrics_port=0, run_dir=str(run_dir))
    with pytest.raises(checkpoints.CheckpointError, match="hidden_sizes"):
        App(other, scfg, env_spec(make_env(other.env_id)), run_dir)
