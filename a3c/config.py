"""Configuration as frozen dataclasses: CLI flag > A3C_* environment variable > default.

Each field is a `setting(default, help)`, its help its `--help` text. One name in three
spellings: field `max_episodes`, flag `--max-episodes`, environment variable
`A3C_MAX_EPISODES`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


EVAL_SEED = 1_000_000
"""Evaluation episode k resets with seed EVAL_SEED + k: the same episodes in every run."""

FROM_PRESET: Any = None
"""The default of a TrainConfig field that its preset sets."""


def setting(default: Any, help_text: str) -> Any:
    """A config field: its default and its --help text (kept in the field's metadata)."""
    return dataclasses.field(default=default, metadata={"help": " ".join(help_text.split())})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters: owned by the server, sent to every worker on connect.

    The hyperparameters a preset sets (PRESETS) default to FROM_PRESET: construction fills
    each one left so from `preset`, so TrainConfig(preset="seed", gamma=0.9) is the seed
    preset with gamma 0.9, however it is built (flags, environment, JSON, code). The
    default preset (DEFAULT_PRESET) is the seed's textbook A3C on Pendulum-v1 with three
    changes kept by experiment (docs/tuning.md): actor lr 3e-4, a learned state-independent
    log-std, and learning rates falling linearly to 0 over the budget; `seed`
    (SEED_PRESET) is the seed's values exactly; `fast` (FAST_PRESET) is for vectorized
    workers.
    """

    env_id: str = setting(
        "Pendulum-v1",
        """gymnasium environment id: Box observations, and a Box (continuous) or Discrete
        action space. Its entry in a3c.envs sets what the environment needs (reward scaling,
        gamma...) over the preset.""",
    )
    env_kwargs: str = setting(
        "",
        """Keyword arguments of gymnasium.make, KEY=VALUE,... (e.g. continuous=true).""",
    )
    max_episodes: int = setting(
        500,
        """Episode budget: exactly this many episodes are trained, then the server stops (0:
        none, with max_env_steps).""",
    )
    max_env_steps: int = setting(
        0,
        """Env-step budget: exactly this many env steps are trained, then the server stops
        (0: none); with max_episodes too, the first reached ends the run.""",
    )
    eval_every: int = setting(
        0,
        """Evaluate the deterministic policy (mean action; argmax for discrete actions) every
        this many trained env steps, and at the end, with an evaluator (a3c-worker --role
        evaluator, started by a3c-train): evals.csv, metrics, TensorBoard (0: never).""",
    )
    eval_episodes: int = setting(
        10,
        """Episodes per evaluation, on fixed seeds (EVAL_SEED + k), the same every time.""",
    )
    gamma: float = setting(
        FROM_PRESET,
        """Discount factor.""",
    )
    t_max: int = setting(
        FROM_PRESET,
        """Steps per rollout: a worker pushes every t_max steps and at episode end.""",
    )
    num_envs: int = setting(
        FROM_PRESET,
        """Environments per worker, for workers that do not set their own --num-envs.""",
    )
    actor_lr: float = setting(
        FROM_PRESET,
        """Adam learning rate of the actor.""",
    )
    critic_lr: float = setting(
        FROM_PRESET,
        """Adam learning rate of the critic.""",
    )
    hidden_sizes: tuple[int, ...] = setting(
        FROM_PRESET,
        """Hidden layer widths of both the actor and the critic, e.g. 64,32,16.""",
    )
    activation: str = setting(
        FROM_PRESET,
        """Activation of the hidden layers: relu (the seed) or tanh.""",
    )
    weight_init: str = setting(
        FROM_PRESET,
        """Initial weights: glorot (Keras's default, the seed), or orthogonal (kernels
        orthogonal with gain sqrt 2 in the hidden layers, 0.01 on the policy's heads, 1 on the
        value; biases 0), as the MuJoCo baselines start.""",
    )
    obs_normalization: str = setting(
        FROM_PRESET,
        """none; bounds: both networks divide each observation by its bound in the
        observation space (max |low|, |high|; unbounded ones as they are), e.g. Pendulum's
        angular velocity by 8; or running: (obs - mean) / std with the running statistics of
        every observation trained so far, which the server keeps with the weights, clipped to
        +-obs_clip (a3c.normalization).""",
    )
    obs_clip: float = setting(
        10.0,
        """With obs_normalization running: normalized observations are clipped to +-this.""",
    )
    reward_normalization: str = setting(
        FROM_PRESET,
        """none, or running: training rewards are divided by the running standard deviation of
        the discounted return (SB3's VecNormalize), kept by the server with the weights and
        clipped to +-reward_clip; applied before reward_shift and reward_scale.""",
    )
    reward_clip: float = setting(
        10.0,
        """With reward_normalization running: scaled rewards are clipped to +-this.""",
    )
    std_min: float = setting(
        FROM_PRESET,
        """Lower clip of the policy's standard deviation.""",
    )
    std_max: float = setting(
        FROM_PRESET,
        """Upper clip of the policy's standard deviation.""",
    )
    reward_shift: float = setting(
        FROM_PRESET,
        """Training reward is (r + reward_shift) / reward_scale; logged returns stay raw
        (set by the environment's entry in a3c.envs: 8 and 8 for Pendulum, 0 and 1 elsewhere).""",
    )
    reward_scale: float = setting(
        FROM_PRESET,
        """See reward_shift.""",
    )
    grad_clip_norm: float = setting(
        FROM_PRESET,
        """Clip the actor's and the critic's gradients each by this global norm (0: off).""",
    )
    entropy_coef: float = setting(
        FROM_PRESET,
        """Entropy bonus: the actor loss subtracts this times the policy's entropy, summed
        over the rollout's steps like the policy-gradient term (0: off, as in the seed).""",
    )
    normalize_advantages: bool = setting(
        FROM_PRESET,
        """Scale each update's advantages to zero mean and unit standard deviation.""",
    )
    lr_schedule: str = setting(
        FROM_PRESET,
        """constant, or linear: both learning rates fall linearly with the episodes trained, to
        lr_final_scale times their start at the end of the budget.""",
    )
    lr_final_scale: float = setting(
        FROM_PRESET,
        """With lr_schedule linear: the learning rates' fraction left at the last episode.""",
    )
    std_mode: str = setting(
        FROM_PRESET,
        """state: the std is a softplus head of the actor (the seed); param: a learned log-std
        per action dimension, independent of the state (initialised to log_std_init).""",
    )
    log_std_init: float = setting(
        FROM_PRESET,
        """With std_mode param: the initial log-std.""",
    )
    max_policy_lag: int = setting(
        FROM_PRESET,
        """Drop pushes made from weights more than this many versions old: acknowledged and
        counted (their episode steps still count) but not trained on (0: off).""",
    )
    off_policy: str = setting(
        FROM_PRESET,
        """Correction for samples that stale weights chose: none (the seed's A3C), or vtrace
        (IMPALA's V-trace: truncated importance weights pi/mu on the value targets and the
        policy gradient, mu from the log-probabilities workers send with each rollout).""",
    )
    vtrace_rho_clip: float = setting(
        FROM_PRESET,
        """With off_policy vtrace: the truncation rho-bar of the importance weights.""",
    )
    vtrace_c_clip: float = setting(
        FROM_PRESET,
        """With off_policy vtrace: the truncation c-bar of the trace coefficients.""",
    )
    gae_lambda: float = setting(
        FROM_PRESET,
        """lambda of the advantages and value targets: GAE(lambda) and TD(lambda) returns
        within each rollout (1: the seed's n-step returns; with off_policy vtrace, the trace
        coefficients c are scaled by it, as in IMPALA).""",
    )
    seed: int = setting(
        0,
        """Seed of the initial weights.""",
    )
    preset: str = setting(
        "default",
        """Hyperparameter preset the fields not set by flag, A3C_* variable or the environment's
        entry (a3c.envs) come from: default, seed (the seed's textbook A3C, exactly) or fast
        (for vectorized workers).""",
    )

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        from a3c.envs import parse_env_kwargs, train_defaults

        parse_env_kwargs(self.env_kwargs)  # ValueError when malformed
        defaults = {**PRESETS[self.preset], **train_defaults(self.env_id, self.env_kwargs)}
        for name, value in defaults.items():
            if getattr(self, name) is FROM_PRESET:
                object.__setattr__(self, name, value)
        choices = {
            "lr_schedule": ("constant", "linear"),
            "std_mode": ("state", "param"),
            "off_policy": ("none", "vtrace"),
            "obs_normalization": ("none", "bounds", "running"),
            "reward_normalization": ("none", "running"),
            "activation": ("relu", "tanh"),
            "weight_init": ("glorot", "orthogonal"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        if self.max_policy_lag < 0 or self.t_max < 1 or not 0 < self.gamma <= 1:
            raise ValueError("max_policy_lag >= 0, t_max >= 1 and 0 < gamma <= 1 required")
        if self.num_envs < 1:
            raise ValueError("num_envs must be at least 1")
        if not (self.vtrace_rho_clip > 0 and self.vtrace_c_clip > 0):
            raise ValueError("vtrace_rho_clip and vtrace_c_clip must be > 0")
        if not 0 <= self.gae_lambda <= 1:
            raise ValueError("gae_lambda must be in [0, 1]")
        if self.max_episodes < 0 or self.max_env_steps < 0:
            raise ValueError("max_episodes and max_env_steps must be >= 0")
        if not (self.max_episodes or self.max_env_steps):
            raise ValueError("a budget is needed: max_episodes or max_env_steps >= 1")
        if self.eval_every < 0 or self.eval_episodes < 1:
            raise ValueError("eval_every must be >= 0 and eval_episodes >= 1")
        if not (self.obs_clip > 0 and self.reward_clip > 0):
            raise ValueError("obs_clip and reward_clip must be > 0")

    @property
    def running_normalization(self) -> bool:
        """The model carries running statistics (observations, returns or both)."""
        return self.obs_normalization == "running" or self.reward_normalization == "running"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """Rebuilds a config from to_json's output; fields this version lacks are refused."""
        raw = json.loads(text)
        return from_mapping(cls, raw)


SEED_PRESET: dict[str, Any] = {
    "gamma": 0.95,
    "t_max": 4,
    "num_envs": 1,
    "actor_lr": 1e-4,
    "critic_lr": 1e-3,
    "hidden_sizes": (64, 32, 16),
    "activation": "relu",
    "weight_init": "glorot",
    "obs_normalization": "none",
    "reward_normalization": "none",
    "std_min": 1e-2,
    "std_max": 1.0,
    "grad_clip_norm": 20.0,
    "entropy_coef": 0.0,
    "normalize_advantages": False,
    "lr_schedule": "constant",
    "lr_final_scale": 1.0,
    "std_mode": "state",
    "log_std_init": 0.0,
    "max_policy_lag": 0,
    "off_policy": "none",
    "vtrace_rho_clip": 1.0,
    "vtrace_c_clip": 1.0,
    "gae_lambda": 1.0,
}
"""The seed's hyperparameters (../shared/seed.md), every one that TrainConfig tunes but the
reward scaling, which is Pendulum's (a3c.envs: (r + 8) / 8, the seed's)."""


DEFAULT_PRESET: dict[str, Any] = {
    **SEED_PRESET,
    "actor_lr": 3e-4,
    "lr_schedule": "linear",
    "lr_final_scale": 0.0,
    "std_mode": "param",
    "log_std_init": -0.5,
}
"""The default preset, TrainConfig's values when no preset is named: the seed with three
changes kept by experiment (docs/tuning.md): actor lr 3e-4, a learned state-independent
log-std, and learning rates falling linearly to 0 over the budget."""

FAST_PRESET: dict[str, Any] = {
    **DEFAULT_PRESET,
    "num_envs": 8,
    "gamma": 0.9,
    "actor_lr": 1e-3,
    "critic_lr": 4e-3,
    "obs_normalization": "bounds",
}
"""For vectorized workers: fastest to a good return in seconds (docs/tuning.md): 8
environments per worker, a shorter horizon, observations scaled by their bounds and larger
learning rates for updates of 32 steps, otherwise the default preset."""

PRESETS: dict[str, dict[str, Any]] = {
    "default": DEFAULT_PRESET,
    "seed": SEED_PRESET,
    "fast": FAST_PRESET,
}
"""Preset name -> the value of every field a preset sets."""


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """The TrainConfig of a preset, with some fields overridden (as flags would)."""
    return from_mapping(TrainConfig, {"preset": name, **overrides})


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """How the parameter server process runs (not sent to workers)."""

    host: str = setting(
        "0.0.0.0",
        """Address to listen on.""",
    )
    port: int = setting(
        50051,
        """gRPC port (0 picks a free one; it is written to RUN_DIR/server.port).""",
    )
    metrics_port: int = setting(
        9100,
        """Port of the Prometheus /metrics endpoint (0: off).""",
    )
    metrics_host: str = setting(
        "0.0.0.0",
        """Address the /metrics endpoint listens on (may differ from the gRPC one).""",
    )
    tls_cert: str = setting(
        "",
        """PEM certificate chain of the server: serve gRPC over TLS (with tls_key).""",
    )
    tls_key: str = setting(
        "",
        """PEM private key of tls_cert.""",
    )
    tls_client_ca: str = setting(
        "",
        """PEM CA bundle: require client certificates signed by it (mutual TLS).""",
    )
    auth_token: str = setting(
        "",
        """Shared bearer token every caller must send (health checks excepted); empty: none.""",
    )
    auth_token_file: str = setting(
        "",
        """File holding the bearer token (e.g. a mounted Kubernetes Secret).""",
    )
    run_dir: str = setting(
        "runs/latest",
        """Run folder: returns.csv, config.json, *.weights.h5, checkpoint.npz; a folder with a
        checkpoint is resumed.""",
    )
    checkpoint_every: int = setting(
        50,
        """Checkpoint every this many trained episodes (0: by time and at the end only).""",
    )
    checkpoint_seconds: float = setting(
        60.0,
        """Also checkpoint at the first episode end this many seconds after the last (0: off).""",
    )
    queue_size: int = setting(
        64,
        """Bound of the learner queue; a push waits while it is full.""",
    )
    learner_batch: int = setting(
        1,
        """Pushes the learner may merge into one update (1: the seed's one update per push).
        Data mode: one gradient step over all their rollouts; gradient mode: one apply of
        their gradients, summed or averaged (learner_reduce).""",
    )
    learner_reduce: str = setting(
        "sum",
        """How merged gradient pushes combine: sum (each push keeps its weight, as if applied
        in a row without Adam's rescaling) or mean.""",
    )
    queue_timeout: float = setting(
        30.0,
        """Seconds a push waits for room in the full queue before RESOURCE_EXHAUSTED.""",
    )
    lease_timeout: float = setting(
        30.0,
        """Seconds without a push after which an episode lease is given to another worker.""",
    )
    drain_seconds: float = setting(
        10.0,
        """Once the budget is spent, how long to wait for workers to be told before exiting.""",
    )
    eval_wait_seconds: float = setting(
        300.0,
        """Once the budget is spent, how long to wait for a connected evaluator to report the
        evaluation points left (the final one included) before exiting.""",
    )
    exit_when_done: bool = setting(
        True,
        """Exit once the budget is spent; false: save, keep answering (weights, "done") until
        SIGTERM, as a Kubernetes pod should, where an exit means a restart.""",
    )
    max_message_bytes: int = setting(
        4 * 1024 * 1024,
        """Largest request message the server accepts (gRPC answers RESOURCE_EXHAUSTED above).""",
    )
    tf_threads: int = setting(
        1,
        """TensorFlow intra- and inter-op threads of the learner (0: one per core). One is
        fastest for these networks; more help only with large --learner-batch.""",
    )
    rpc_threads: int = setting(
        256,
        """gRPC handler threads: each worker's push stream holds one while it is open.""",
    )
    progress: bool = setting(
        True,
        """Print a progress line (episodes, env steps/s, mean return of the last 20).""",
    )

    def __post_init__(self):
        if self.learner_batch < 1 or self.learner_reduce not in ("sum", "mean"):
            raise ValueError("learner_batch must be >= 1 and learner_reduce sum or mean")


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    """How one worker process runs; its hyperparameters come from the server."""

    server: str = setting(
        "localhost:50051",
        """Parameter server address host:port.""",
    )
    mode: str = setting(
        "gradient",
        """gradient: push gradients of the local copy; data: push raw transitions.""",
    )
    role: str = setting(
        "trainer",
        """trainer, or evaluator: play the deterministic policy at each of the server's
        evaluation points (--eval-every) and report the returns; trains nothing.""",
    )
    seed: int = setting(
        0,
        """Seed of the environments and of the policy's action noise.""",
    )
    num_envs: int = setting(
        0,
        """Environments this worker steps, with one batched policy forward per step and one
        push per t_max steps for all of them; each trains the episode of its own lease
        (0: as many as the server's preset says, its num_envs).""",
    )
    name: str = setting(
        "",
        """Name in logs (default host:pid).""",
    )
    connect_timeout: float = setting(
        300.0,
        """Give up when the server cannot be reached for this many seconds.""",
    )
    metrics_port: int = setting(
        0,
        """Port of this worker's Prometheus /metrics endpoint (0: off).""",
    )
    exit_when_done: bool = setting(
        True,
        """Exit 0 once the budget is spent; false: idle until SIGTERM (for a Deployment).""",
    )
    max_in_flight: int = setting(
        1,
        """Pushes that may await their reply while the worker steps on: 1 waits for each
        push's reply and weights, as in the seed; 2 overlaps the next rollout with the round
        trip (one version more of policy lag). The last push of an episode is always awaited.""",
    )
    tf_threads: int = setting(
        1,
        """Gradient mode: TensorFlow intra- and inter-op threads (0: one per core).""",
    )
    tls_ca: str = setting(
        "",
        """PEM CA bundle that signed the server's certificate: connect over TLS.""",
    )
    tls_cert: str = setting(
        "",
        """PEM client certificate chain, for servers that require mutual TLS (with tls_key).""",
    )
    tls_key: str = setting(
        "",
        """PEM private key of tls_cert.""",
    )
    tls_server_name: str = setting(
        "",
        """Name to verify the server's certificate against, when not the host of `server`.""",
    )
    auth_token: str = setting(
        "",
        """Bearer token to send with every call.""",
    )
    auth_token_file: str = setting(
        "",
        """File holding the bearer token (e.g. a mounted Kubernetes Secret).""",
    )

    def __post_init__(self):
        if self.mode not in ("gradient", "data"):
            raise ValueError(f"mode must be gradient or data, not {self.mode!r}")
        if self.role not in ("trainer", "evaluator"):
            raise ValueError(f"role must be trainer or evaluator, not {self.role!r}")
        if self.max_in_flight < 1 or self.num_envs < 0:
            raise ValueError("max_in_flight must be at least 1 and num_envs at least 0")


def read_token(value: str, path: str) -> str:
    """The bearer token from a value or a file (surrounding whitespace dropped)."""
    if path:
        return Path(path).read_text().strip()
    return value.strip()


def field_docs(cls: type) -> dict[str, str]:
    """The --help texts of a config dataclass, by field name (see setting)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _convert(kind: Any, value: Any) -> Any:
    """Turns a flag, env or JSON value into the field's type."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        (item, _) = typing.get_args(kind)
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        return tuple(item(v) for v in value)
    if kind is bool:
        if isinstance(value, str):
            low = value.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(f"not a boolean: {value!r}")
            return low in ("1", "true", "yes", "on")
        return bool(value)
    return kind(value)


def _types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_mapping(cls: type[T], values: Mapping[str, Any]) -> T:
    """Builds cls from a mapping of field name to value, converting types."""
    types = _types(cls)
    unknown = set(values) - set(types)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**{k: _convert(types[k], v) for k, v in values.items()})  # type: ignore[call-arg]


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Adds one --flag per field of cls, with the field's docstring as help."""
    docs = field_docs(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if default is FROM_PRESET and cls is TrainConfig:
            default = DEFAULT_PRESET.get(f.name, "from the environment (a3c.envs)")
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        env = "A3C_" + f.name.upper()
        group.add_argument(
            flag,
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"{docs.get(f.name, '')} [env {env}; default {shown}]",
        )


def resolve(cls: type[T], args: argparse.Namespace, environ: Mapping[str, str]) -> T:
    """Fills cls from parsed flags, then A3C_* variables, then defaults."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        flag_value = getattr(args, f.name, None)
        env_value = environ.get("A3C_" + f.name.upper())
        if flag_value is not None:
            values[f.name] = flag_value
        elif env_value is not None:
            values[f.name] = env_value
    try:
        return from_mapping(cls, values)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"bad {cls.__name__} value: {err}") from err


def parse(
    classes: Sequence[type],
    argv: Sequence[str] | None,
    description: str,
    environ: Mapping[str, str] | None = None,
) -> list[Any]:
    """Parses argv into one instance of each class (flags > A3C_* env > defaults)."""
    parser = argparse.ArgumentParser(description=description)
    for cls in classes:
        add_arguments(parser, cls)
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    return [resolve(cls, args, env) for cls in classes]
