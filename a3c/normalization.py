"""Running normalization statistics, the model's state beside its weights (numpy only).

The parameter server owns them: workers accumulate the moments of what their environments
show (raw observations; discounted returns for reward scaling, as SB3's VecNormalize),
send the increments with each push, and the learner merges those of every push it trains
(Chan et al.'s parallel formula), so that weights version v comes with the statistics of
exactly the pushes trained into v. Workers normalize with the statistics that came with
their weights and put the normalized observations into their rollouts: the learner trains
on the very inputs the acting policy saw, however the statistics moved in between.
"""

from __future__ import annotations

import dataclasses

import numpy as np

EPSILON = 1e-8
"""Added to the variance before its square root, as VecNormalize does."""


@dataclasses.dataclass(frozen=True)
class Moments:
    """count, mean [D] and m2 [D] (the sum of squared deviations from the mean) of D
    quantities: enough to merge two sets of samples exactly."""

    count: float
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def zeros(cls, dim: int) -> Moments:
        return cls(0.0, np.zeros(dim), np.zeros(dim))

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """The moments of samples x [N, D] (float64)."""
        x = np.asarray(x, np.float64)
        if x.shape[0] == 0:
            return cls.zeros(x.shape[1])
        mean = x.mean(0)
        return cls(float(x.shape[0]), mean, ((x - mean) ** 2).sum(0))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def var(self) -> np.ndarray:
        """The (population) variance; 1 where nothing was seen yet."""
        if self.count <= 0:
            return np.ones(self.dim)
        return self.m2 / self.count

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets of samples together (Chan, Golub and LeVeque)."""
        if other.count <= 0:
            return self
        if self.count <= 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return Moments(n, mean, m2)

    def invalid(self, dim: int) -> str | None:
        """Why these moments cannot be an increment of a D = dim quantity, or None."""
        if not (np.isfinite(self.count) and self.count >= 0):
            return f"count must be finite and >= 0, got {self.count}"
        if self.mean.shape != (dim,) or self.m2.shape != (dim,):
            return f"mean and m2 must have shape ({dim},)"
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.m2))):
            return "mean and m2 must be finite"
        if np.any(self.m2 < 0):
            return "m2 (a sum of squares) must be >= 0"
        if self.count == 0 and (np.any(self.mean) or np.any(self.m2)):
            return "moments of no samples must be zeros"
        return None


@dataclasses.dataclass(frozen=True)
class Statistics:
    """The model's running statistics: of raw observations [obs_dim] and of discounted
    returns [1]."""

    obs: Moments
    returns: Moments

    @classmethod
    def zeros(cls, obs_dim: int) -> Statistics:
        return cls(Moments.zeros(obs_dim), Moments.zeros(1))

    def merge(self, other: Statistics) -> Statistics:
        return Statistics(self.obs.merge(other.obs), self.returns.merge(other.returns))

    def arrays(self) -> dict[str, np.ndarray]:
        """As named arrays (checkpoints, normalization.npz)."""
        return {
            f"{name}_{part}": np.asarray(getattr(getattr(self, name), part), np.float64)
            for name in ("obs", "returns")
            for part in ("count", "mean", "m2")
        }

    @classmethod
    def from_arrays(cls, arrays) -> Statistics:
        def moments(name: str) -> Moments:
            return Moments(
                float(arrays[f"{name}_count"]),
                np.asarray(arrays[f"{name}_mean"], np.float64),
                np.asarray(arrays[f"{name}_m2"], np.float64),
            )

        return cls(moments("obs"), moments("returns"))


def merge_all(parts) -> Statistics | None:
    """The merge of a sequence of Statistics (None when empty)."""
    out = None
    for part in parts:
        out = part if out is None else out.merge(part)
    return out


class Normalizer:
    """A worker's side: normalizes with the statistics of its weights and accumulates the
    increments of what its environments show, until they are taken for a push.

    obs: (raw - mean) / sqrt(var + EPSILON), clipped to +-obs_clip (when `observations`).
    rewards: r / sqrt(var of the discounted return + EPSILON), clipped to +-reward_clip
    (when `rewards`); each environment's discounted return restarts at its episode's start.
    """

    def __init__(
        self,
        obs_dim: int,
        num_envs: int,
        gamma: float,
        observations: bool,
        rewards: bool,
        obs_clip: float = 10.0,
        reward_clip: float = 10.0,
    ):
        self.observations, self.rewards = observations, rewards
        self._gamma, self._obs_clip, self._reward_clip = gamma, obs_clip, reward_clip
        self._obs_dim = obs_dim
        self._mean = np.zeros(obs_dim, np.float32)
        self._inv_std = np.ones(obs_dim, np.float32)
        self._reward_mul = 1.0
        self._returns = np.zeros(num_envs)
        self._seen_obs: list[np.ndarray] = []
        self._seen_returns: list[float] = []

    @classmethod
    def of_config(cls, obs_dim: int, num_envs: int, cfg) -> Normalizer | None:
        """The normalizer a TrainConfig asks for; None without running normalization."""
        if not cfg.running_normalization:
            return None
        return cls(
            obs_dim, num_envs, cfg.gamma,
            observations=cfg.obs_normalization == "running",
            rewards=cfg.reward_normalization == "running",
            obs_clip=cfg.obs_clip, reward_clip=cfg.reward_clip,
        )  # fmt: skip

    @property
    def active(self) -> bool:
        return self.observations or self.rewards

    def set(self, stats: Statistics) -> None:
        """Normalizes with these statistics from now on."""
        self._mean = stats.obs.mean.astype(np.float32)
        self._inv_std = (1.0 / np.sqrt(stats.obs.var + EPSILON)).astype(np.float32)
        self._reward_mul = float(1.0 / np.sqrt(stats.returns.var[0] + EPSILON))

    @property
    def obs_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, 1 / std) of the observations, float32: obs is (raw - mean) * (1 / std)."""
        return self._mean, self._inv_std

    def obs(self, raw: np.ndarray) -> np.ndarray:
        """raw observations [..., obs_dim] as the networks take them (float32)."""
        if not self.observations:
            return raw
        z = (raw - self._mean) * self._inv_std
        return np.clip(z, -self._obs_clip, self._obs_clip).astype(np.float32)

    def see_obs(self, raw: np.ndarray) -> None:
        """Counts raw observations [N, obs_dim] into the next increment."""
        if self.observations:
            self._seen_obs.append(np.asarray(raw, np.float64).reshape(-1, self._obs_dim))

    def start_episode(self, env: int) -> None:
        self._returns[env] = 0.0

    def reward(self, env: int, raw: float) -> float:
        """The training reward of environment env's raw reward (and counts its return)."""
        if not self.rewards:
            return raw
        self._returns[env] = self._returns[env] * self._gamma + raw
        self._seen_returns.append(self._returns[env])
        scaled = raw * self._reward_mul
        return float(np.clip(scaled, -self._reward_clip, self._reward_clip))

    def take(self) -> Statistics | None:
        """The increments since the last take (None when normalization is off)."""
        if not self.active:
            return None
        obs = (
            Moments.of(np.concatenate(self._seen_obs))
            if self._seen_obs
            else Moments.zeros(self._obs_dim)
        )
        returns = Moments.of(np.asarray(self._seen_returns, np.float64).reshape(-1, 1))
        self._seen_obs, self._seen_returns = [], []
        return Statistics(obs, returns)
