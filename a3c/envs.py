"""Per-environment defaults, in one table: what each environment needs that is not A3C's.

An entry gives the training reward's shift and scale (Pendulum's (r + 8) / 8; none
elsewhere), the hyperparameters the environment needs over any preset (`train`: gamma,
t_max, learning rates...), the "good" and "solved" returns that a3c-compare, a3c-sweep,
the bench and the progress line judge runs by, the return histogram's buckets, and the
labels of its observations and actions for a3c-play's plot. Order of precedence for a
TrainConfig field: a flag or A3C_* variable, then this table's `train`, then the preset.

An id that is not in the table gets GENERIC: no reward scaling, the preset's
hyperparameters, gymnasium's reward_threshold (if it has one) as "solved", buckets that
span returns of either sign; the server says so in one line when it starts. Environment
keyword arguments (--env-kwargs) may select their own entry: "LunarLander-v3
continuous=true" is looked up before "LunarLander-v3".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

GENERIC_BUCKETS = (
    -1000, -500, -200, -100, -50, -20, 0, 20, 50, 100, 200, 500, 1000, 2000, 5000,
)  # fmt: skip
"""Return-histogram buckets for an environment the table does not know: both signs."""


@dataclasses.dataclass(frozen=True)
class EnvDefaults:
    """What one environment needs; see the module docstring."""

    train: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """TrainConfig fields this environment sets, over the preset (under flags)."""
    good: float | None = None
    """A return that shows the agent learned something (compare's first threshold)."""
    solved: float | None = None
    """The return that counts as solving it (gymnasium's reward_threshold where it has one)."""
    hold: float | None = None
    """The mean of a run's last 50 episodes that counts as holding what it learned (None:
    solved)."""
    buckets: tuple[float, ...] = GENERIC_BUCKETS
    """Upper bounds of the episode-return histogram's buckets."""
    obs_labels: tuple[str, ...] = ()
    """Names of the observation's dimensions (a3c-play's plot); empty: obs[i]."""
    action_labels: tuple[str, ...] = ()
    """Names of the action's dimensions, or of a discrete action's values."""
    extra: str = ""
    """gymnasium's pip extra that brings the environment (box2d, mujoco), if any; the
    project's envs extra (pyproject.toml) installs them all."""
    known: bool = True
    """False for GENERIC: the table has no entry for the environment."""

    @property
    def thresholds(self) -> list[float]:
        """The returns whose first reach compare, sweep and bench report: good, solved."""
        return [t for t in (self.good, self.solved) if t is not None]

    @property
    def holds_at(self) -> float | None:
        return self.solved if self.hold is None else self.hold


NO_REWARD_SCALING = {"reward_shift": 0.0, "reward_scale": 1.0}

GENERIC = EnvDefaults(train=NO_REWARD_SCALING, known=False)

LUNAR_LANDER = EnvDefaults(
    # Screened with a3c-sweep (one seed, 4,000 episodes): wider hidden layers, reward / 100,
    # 16 environments per worker, advantages normalised per update. The continuous variant
    # (continuous=True) is the same but for its actions and no entropy bonus.
    train={
        "reward_shift": 0.0,
        "reward_scale": 100.0,
        "gamma": 0.99,
        "num_envs": 16,
        "t_max": 16,
        "actor_lr": 1e-3,
        "critic_lr": 1e-3,
        "entropy_coef": 0.01,
        "normalize_advantages": True,
        "hidden_sizes": (64, 64),
    },
    good=0.0,
    solved=200.0,
    buckets=(-500, -300, -200, -100, -50, 0, 50, 100, 150, 200, 250, 300),
    obs_labels=(
        "x",
        "y",
        "x velocity",
        "y velocity",
        "angle",
        "angular velocity",
        "left leg contact",
        "right leg contact",
    ),  # fmt: skip
    action_labels=("nothing", "left engine", "main engine", "right engine"),
    extra="box2d",
)

ENVIRONMENTS: dict[str, EnvDefaults] = {
    "Pendulum-v1": EnvDefaults(
        # The seed's reward scaling: r in [-16.3, 0] becomes roughly [-1, 1].
        train={"reward_shift": 8.0, "reward_scale": 8.0},
        good=-400.0,
        solved=-200.0,
        hold=-250.0,
        buckets=(-1600, -1400, -1200, -1000, -800, -600, -400, -300, -200, -150, -100, 0),
        obs_labels=("cos(angle)", "sin(angle)", "angular velocity"),
        action_labels=("torque",),
    ),
    "CartPole-v1": EnvDefaults(
        # Screened with a3c-sweep (README, Environments). Returns reach 500, values at
        # gamma 0.99 near 100: scaled by 1/100 the critic tracks them (unscaled, it lags,
        # every advantage has one sign and the policy collapses onto one action).
        train={
            "reward_shift": 0.0,
            "reward_scale": 100.0,
            "gamma": 0.99,
            "entropy_coef": 0.01,
            "num_envs": 1,
            "t_max": 16,
            "actor_lr": 2e-3,
            "critic_lr": 1e-3,
        },  # fmt: skip
        good=200.0,
        solved=475.0,
        hold=450.0,
        buckets=(10, 20, 50, 100, 150, 200, 300, 400, 450, 475, 500),
        obs_labels=("cart position", "cart velocity", "pole angle", "pole angular velocity"),
        action_labels=("push left", "push right"),
    ),
    "Acrobot-v1": EnvDefaults(
        # Screened with a3c-sweep (40-80 seeds x 200 episodes a setting; README,
        # "Environments"): an unscaled critic with a large learning rate, and updates of
        # 8 steps. A run whose near-uniform first policy never swings up stays at -500:
        # t_max 16 left 3 of 40 seeds there (entropy 0.05 or 0.01; 0.1: 7), t_max 32 18 of
        # 40, t_max 8 with entropy 0.01 1 of 80. Observations scaled by their bounds
        # (velocities / 4 pi and / 9 pi) never swung up on 20 of 20 real runs.
        train={
            **NO_REWARD_SCALING,
            "gamma": 0.99,
            "entropy_coef": 0.01,
            "num_envs": 8,
            "t_max": 8,
            "actor_lr": 2e-3,
            "critic_lr": 1e-2,
        },  # fmt: skip
        good=-200.0,
        solved=-100.0,
        buckets=(-500, -400, -300, -200, -150, -120, -100, -90, -80, -70, -60, 0),
        obs_labels=("cos θ1", "sin θ1", "cos θ2", "sin θ2", "θ1 velocity", "θ2 velocity"),
        action_labels=("torque -1", "torque 0", "torque +1"),
    ),
    "MountainCarContinuous-v0": EnvDefaults(
        train={**NO_REWARD_SCALING, "gamma": 0.99},
        good=0.0,
        solved=90.0,
        buckets=(-100, -50, -20, -10, -5, 0, 20, 50, 80, 90, 100),
        obs_labels=("position", "velocity"),
        action_labels=("force",),
    ),
    "LunarLander-v3": LUNAR_LANDER,
    "LunarLander-v3 continuous=True": dataclasses.replace(
        LUNAR_LANDER,
        train={**LUNAR_LANDER.train, "entropy_coef": 0.0},
        action_labels=("main engine", "side engines"),
    ),
    "InvertedPendulum-v5": EnvDefaults(
        # Screened with a3c-sweep: CartPole's reward scaling (returns reach 1000), and
        # advantages normalised per update: without, 2 of 4 runs collapsed onto a
        # saturated push (episodes of 2 steps).
        train={
            "reward_shift": 0.0,
            "reward_scale": 100.0,
            "gamma": 0.99,
            "num_envs": 1,
            "t_max": 16,
            "actor_lr": 1e-3,
            "critic_lr": 1e-3,
            "normalize_advantages": True,
        },  # fmt: skip
        good=500.0,
        solved=950.0,
        buckets=(10, 20, 50, 100, 200, 500, 800, 950, 1000),
        obs_labels=("cart position", "pole angle", "cart velocity", "pole angular velocity"),
        action_labels=("force",),
        extra="mujoco",
    ),
    "HalfCheetah-v5": EnvDefaults(
        # Screened with a3c-sweep (one seed, 1M env steps): 256-256 hidden layers (the
        # default 64-32-16 stayed near 0), reward / 10, normalised advantages, 16
        # environments per worker.
        train={
            "reward_shift": 0.0,
            "reward_scale": 10.0,
            "gamma": 0.99,
            "num_envs": 16,
            "t_max": 16,
            "normalize_advantages": True,
            "hidden_sizes": (256, 256),
        },  # fmt: skip
        good=1000.0,
        solved=4800.0,
        buckets=(-500, 0, 500, 1000, 1500, 2000, 3000, 4000, 4800, 6000, 8000),
        extra="mujoco",
    ),
}
"""gymnasium id (and, for an entry of its own, keyword arguments) -> its defaults."""


def parse_env_kwargs(text: str) -> dict[str, Any]:
    """'continuous=true,gravity=-9.8' -> {'continuous': True, 'gravity': -9.8}: booleans,
    integers and floats as such, anything else a string. ValueError on an item without '='."""
    out: dict[str, Any] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"environment keyword arguments are KEY=VALUE, got {item.strip()!r}")
        value: Any = raw.strip()
        if value.lower() in ("true", "false"):
            value = value.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(value)
                    break
                except ValueError:
                    pass
        out[key.strip()] = value
    return out


def entry_key(env_id: str, env_kwargs: str = "") -> str:
    """The table key of an id with keyword arguments: 'LunarLander-v3 continuous=True'."""
    kwargs = parse_env_kwargs(env_kwargs)
    if not kwargs:
        return env_id
    return env_id + " " + ",".join(f"{k}={v}" for k, v in sorted(kwargs.items()))


def train_defaults(env_id: str, env_kwargs: str = "") -> Mapping[str, Any]:
    """The TrainConfig fields the environment's entry sets (GENERIC's for an unknown id),
    without importing gymnasium."""
    for key in (entry_key(env_id, env_kwargs), env_id):
        if key in ENVIRONMENTS:
            return ENVIRONMENTS[key].train
    return GENERIC.train


def env_defaults(env_id: str, env_kwargs: str = "") -> EnvDefaults:
    """The table's entry for the environment (with its keyword arguments, then without), or
    GENERIC with gymnasium's reward_threshold, where it has one, as solved."""
    for key in (entry_key(env_id, env_kwargs), env_id):
        if key in ENVIRONMENTS:
            return ENVIRONMENTS[key]
    return dataclasses.replace(GENERIC, solved=_reward_threshold(env_id))


def _reward_threshold(env_id: str) -> float | None:
    try:
        import gymnasium as gym

        threshold = gym.spec(env_id).reward_threshold
    except Exception:  # an unknown id: make_env reports it in one line
        return None
    return None if threshold is None else float(threshold)
