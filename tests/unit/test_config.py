"""Config: flags > A3C_* env > defaults; docstrings as help; the seed's values as defaults."""

import argparse
import functools
import re
import typing
from pathlib import Path

import pytest

from a3c import config
from a3c.config import ServerConfig, TrainConfig, WorkerConfig, preset_config
from a3c.envs import ENVIRONMENTS, GENERIC, env_defaults, parse_env_kwargs

# The seed's reference algorithm, kept in the repository (the talk itself, shared/seed.md,
# lies beside it on a developer's machine: where it does, the excerpt must still be in it).
SEED_EXCERPT = Path(__file__).resolve().parents[1] / "fixtures" / "seed-algorithm.md"
SEED_MD = Path(__file__).resolve().parents[2].parent / "shared" / "seed.md"


def words(path: Path) -> str:
    return " ".join(path.read_text().split())


def test_the_kept_excerpt_is_the_seeds_text():
    if not SEED_MD.is_file():
        pytest.skip(f"{SEED_MD} is not beside the repository; the excerpt is used alone")
    assert words(SEED_EXCERPT) in words(SEED_MD), "tests/fixtures/seed-algorithm.md is stale"


def seed_md_values() -> dict:
    """The hyperparameters the seed states (tests/fixtures/seed-algorithm.md), from its text."""
    text = words(SEED_EXCERPT)

    def number(pattern: str) -> float:
        match = re.search(pattern, text)
        assert match, f"seed.md no longer says {pattern!r}"
        return float(match.group(1))

    widths = re.search(r"Dense (\d+) relu -> (\d+) relu -> (\d+) relu", text)
    clip = re.search(r"clipped to \[([\d.]+), ([\d.]+)\]", text)
    shift = re.search(r"\(r \+ (\d+)\) / (\d+)", text)
    assert widths and clip and shift, "seed.md no longer states the networks, std or reward"
    return {
        "t_max": int(number(r"t_max = (\d+)")),
        "gamma": number(r"gamma = ([\d.]+)"),
        "actor_lr": number(r"actor lr ([\d.e-]+)"),
        "critic_lr": number(r"critic lr ([\d.e-]+)"),
        "grad_clip_norm": number(r"global norm ([\d.]+)"),
        "hidden_sizes": tuple(int(w) for w in widths.groups()),
        "std_min": float(clip.group(1)),
        "std_max": float(clip.group(2)),
        "reward_shift": float(shift.group(1)),
        "reward_scale": float(shift.group(2)),
    }


def test_seed_preset_is_the_seed_exactly():
    (cfg,) = config.parse([TrainConfig], ["--preset", "seed"], "x", {})
    want = seed_md_values()
    assert {k: getattr(cfg, k) for k in want} == want
    # The seed has none of the additions: no entropy bonus, no advantage normalisation,
    # constant learning rates, a state-dependent std, no policy-lag bound, no V-trace.
    assert (cfg.entropy_coef, cfg.normalize_advantages, cfg.lr_schedule) == (0.0, False, "constant")
    assert (cfg.std_mode, cfg.max_policy_lag, cfg.off_policy) == ("state", 0, "none")
    assert cfg.env_id == "Pendulum-v1"
    # Every value the seed sets is the seed preset's, but the reward scaling: Pendulum's,
    # in a3c.envs' table, so that other environments train on their raw rewards.
    assert set(config.SEED_PRESET) | set(ENVIRONMENTS["Pendulum-v1"].train) >= set(want)


def test_the_environment_table_sets_reward_scaling_per_environment():
    """Pendulum keeps the seed's (r + 8) / 8, CartPole its own r / 100, MountainCar none,
    an unknown id the generic defaults; a flag overrides either, and over any preset the
    table's entry wins."""
    assert (TrainConfig().reward_shift, TrainConfig().reward_scale) == (8.0, 8.0)
    cartpole = TrainConfig(env_id="CartPole-v1")
    assert (cartpole.reward_shift, cartpole.reward_scale) == (0.0, 100.0)
    car = TrainConfig(env_id="MountainCarContinuous-v0")
    assert (car.reward_shift, car.reward_scale) == (0.0, 1.0)
    assert cartpole.gamma == ENVIRONMENTS["CartPole-v1"].train["gamma"]
    (flagged,) = config.parse(
        [TrainConfig], ["--env-id", "CartPole-v1", "--reward-scale", "10", "--gamma", "0.5"], "x",
        {"A3C_REWARD_SHIFT": "1"},
    )  # fmt: skip
    assert (flagged.reward_shift, flagged.reward_scale, flagged.gamma) == (1.0, 10.0, 0.5)
    assert TrainConfig(reward_shift=0.0).reward_shift == 0.0
    # Over the preset, the table's entry: CartPole sets its environments per worker, the
    # MountainCar entry does not, so the fast preset's stand.
    fast_cartpole = preset_config("fast", env_id="CartPole-v1")
    assert fast_cartpole.num_envs == ENVIRONMENTS["CartPole-v1"].train["num_envs"]
    fast_car = preset_config("fast", env_id="MountainCarContinuous-v0")
    assert fast_car.num_envs == config.FAST_PRESET["num_envs"]
    unknown = env_defaults("MountainCar-v0")
    assert not unknown.known and unknown.train == GENERIC.train
    assert unknown.solved == -110.0  # gymnasium's reward_threshold
    assert env_defaults("LunarLander-v3", "continuous=true").action_labels == (
        "main engine", "side engines",
    )  # fmt: skip
    assert parse_env_kwargs("continuous=true, n=3,x=0.5,name=a") == {
        "continuous": True, "n": 3, "x": 0.5, "name": "a",
    }  # fmt: skip
    with pytest.raises(ValueError, match="KEY=VALUE"):
        TrainConfig(env_kwargs="continuous")


def test_a_preset_is_applied_however_the_config_is_built():
    seed = config.preset_config("seed")
    assert TrainConfig(preset="seed") == seed, "built directly, the preset's values apply"
    assert TrainConfig(preset="seed").actor_lr == config.SEED_PRESET["actor_lr"]
    assert TrainConfig(preset="seed", gamma=0.5).std_mode == "state"
    assert TrainConfig.from_json(seed.to_json()) == seed
    assert set(config.DEFAULT_PRESET) == set(config.SEED_PRESET)
    assert TrainConfig() == config.preset_config("default")


def test_a_flag_or_variable_beats_the_preset():
    env = {"A3C_PRESET": "seed", "A3C_GAMMA": "0.5"}
    (cfg,) = config.parse([TrainConfig], ["--entropy-coef", "0.2"], "x", env)
    assert (cfg.preset, cfg.gamma, cfg.entropy_coef) == ("seed", 0.5, 0.2)
    assert cfg.actor_lr == config.SEED_PRESET["actor_lr"]
    (default,) = config.parse([TrainConfig], [], "x", {})
    assert default == TrainConfig()
    with pytest.raises(SystemExit, match="preset"):
        config.parse([TrainConfig], ["--preset", "turbo"], "x", {})
    with pytest.raises(SystemExit, match="std_mode"):
        config.parse([TrainConfig], ["--std-mode", "wide"], "x", {})


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


def test_every_setting_has_its_help_text():
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, WorkerConfig)
    text = parser.format_help()
    assert "Parameter server address host:port." in text
    assert "A3C_SERVER" in text
    for cls in (TrainConfig, ServerConfig, WorkerConfig):
        docs = config.field_docs(cls)
        assert set(docs) == set(cls.__dataclass_fields__)
        assert all(len(text) > 10 for text in docs.values()), cls


def test_json_round_trip_and_unknown_fields_refused():
    cfg = TrainConfig(hidden_sizes=(8, 4), gamma=0.9)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_json('{"no_such_field": 1}')


def test_the_readme_tuning_table_states_every_preset():
    """docs/tuning.md's table lists every preset field with its seed, default and fast
    values."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "tuning.md").read_text()
    section = page.split("\n## ", 1)[0]
    rows = re.findall(r"^\| `--([a-z-]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|", section, re.M)
    types = typing.get_type_hints(TrainConfig)
    listed = {}
    for flag, *values in rows:
        name = flag.replace("-", "_")
        convert = functools.partial(config._convert, types[name])
        listed[name] = tuple(convert(v.strip(" `")) for v in values)
    presets = ("seed", "default", "fast")
    want = {k: tuple(config.PRESETS[p][k] for p in presets) for k in config.SEED_PRESET}
    assert "reward_shift" not in listed  # per environment: the Environments table
    assert listed == want
