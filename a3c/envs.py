"""The environments: per-environment defaults in one table (what each environment needs
that is not A3C's), and making an environment and reading its spaces (make_env, EnvSpec).

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
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import gymnasium as gym

    from a3c.config import TrainConfig

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
        # Screened with a3c-sweep (docs/environments.md). Returns reach 500, values at
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
        # Screened with a3c-sweep (40-80 seeds x 200 episodes a setting;
        # docs/environments.md): an unscaled critic with a large learning rate, and updates of
        # 8 steps. A run whose near-uniform first policy never swings up stays at -500:
        # t_max 16 left 3 of 40 seeds there (entropy 0.05 or 0.01; 0.1: 7), t_max 32 18 of
        # 40, t_max 8 with entropy 0.01 1 of 80. Observations scaled by their bounds
        # (velocities / 4 pi and / 9 pi) never swung up on 20 of 20 real runs, nor did
        # running normalization on 14 of 14. Real gradient-mode runs could still collapse
        # after their first swing-ups (1 of 34 at 300 episodes: a critic of learning rate
        # 1e-2 from stale weights, every advantage of one sign); advantages normalised per
        # update: 0 of 30 (real runs, 300 episodes, docs/environments.md).
        train={
            **NO_REWARD_SCALING,
            "gamma": 0.99,
            "entropy_coef": 0.01,
            "num_envs": 8,
            "t_max": 8,
            "actor_lr": 2e-3,
            "critic_lr": 1e-2,
            "normalize_advantages": True,
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


# --- making an environment and reading its spaces ----------------------------------------


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
