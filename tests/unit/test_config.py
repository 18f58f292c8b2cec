"""Config: flags > A3C_* env > defaults; docstrings as help; the seed's values as defaults."""

import argparse

import pytest

from a3c import config
from a3c.config import ServerConfig, TrainConfig, WorkerConfig


def test_seed_hyperparameters_are_the_defaults():
    cfg = TrainConfig()
    assert cfg.env_id == "Pendulum-v1"
    assert (cfg.gamma, cfg.t_max) == (0.95, 4)
    assert (cfg.actor_lr, cfg.critic_lr) == (1e-4, 1e-3)
    assert cfg.hidden_sizes == (64, 32, 16)
    assert (cfg.std_min, cfg.std_max) == (0.01, 1.0)
    assert (cfg.reward_shift, cfg.reward_scale) == (8.0, 8.0)
    assert cfg.grad_clip_norm == 20.0


def test_flag_beats_env_beats_default():
    env = {"A3C_GAMMA": "0.5", "A3C_T_MAX": "8", "A3C_HIDDEN_SIZES": "32, 8"}
    tcfg, scfg = config.parse([TrainConfig, ServerConfig], ["--t-max", "5"], "x", env)
    assert tcfg.t_max == 5
    assert tcfg.gamma == 0.5
    assert tcfg.hidden_sizes == (32, 8)
    assert tcfg.max_episodes == 500
    assert scfg.port == 50051


def test_bad_values_exit_with_a_message():
    with pytest.raises(SystemExit, match="bad TrainConfig"):
        config.parse([TrainConfig], ["--gamma", "high"], "x", {})
    with pytest.raises(SystemExit, match="bad ServerConfig"):
        config.parse([ServerConfig], ["--progress", "maybe"], "x", {})


def test_field_docstrings_become_help():
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, WorkerConfig)
    text = parser.format_help()
    assert "Parameter server address host:port." in text
    assert "A3C_SERVER" in text
    docs = config.field_docs(TrainConfig)
    assert set(docs) == {f for f in TrainConfig.__dataclass_fields__}


def test_json_round_trip_and_unknown_fields_refused():
    cfg = TrainConfig(hidden_sizes=(8, 4), gamma=0.9)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_json('{"no_such_field": 1}')
