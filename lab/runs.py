"""Reads run folders (returns.csv, config.json) and computes windowed statistics of returns.

Shared by lab.play, lab.plot and lab.compare. Imports no TensorFlow and no matplotlib.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

WINDOW = 20
"""Episodes in the moving average that the plots and the threshold columns use."""


class RunError(Exception):
    """A run folder cannot be read; the message is one line, fit for stderr."""


@dataclasses.dataclass(frozen=True)
class Returns:
    """The columns of a run's returns.csv that the tools use, one entry per episode."""

    episode: np.ndarray  # int, 1-based
    ret: np.ndarray  # float, raw episode return
    env_steps: np.ndarray  # int, env steps trained so far
    seconds: np.ndarray  # float, server wall-clock seconds at the episode's end

    def __len__(self) -> int:
        return int(self.episode.shape[0])

    def steps_per_second(self) -> float:
        """Env steps trained over the server's wall time (nan when no time has passed)."""
        if not len(self) or self.seconds[-1] <= 0:
            return float("nan")
        return float(self.env_steps[-1] / self.seconds[-1])


def read_returns(run_dir: Path | str) -> Returns:
    """The episodes logged in RUN_DIR/returns.csv, in episode order."""
    path = Path(run_dir) / "returns.csv"
    if not path.is_file():
        raise RunError(f"no returns.csv in {run_dir} (is it a run folder?)")
    try:
        with open(path, newline="") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: int(r["episode"]))
        return Returns(
            episode=np.array([int(r["episode"]) for r in rows], dtype=np.int64),
            ret=np.array([float(r["return"]) for r in rows], dtype=np.float64),
            env_steps=np.array([int(r["env_steps"]) for r in rows], dtype=np.int64),
            seconds=np.array([float(r["seconds"]) for r in rows], dtype=np.float64),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise RunError(f"{path} is not a returns log: {err}") from None


def read_config(run_dir: Path | str) -> dict[str, Any]:
    """The raw config.json of a run: {"train": {...}, "server": {...}}."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunError(f"no config.json in {run_dir} (is it a run folder?)")
    try:
        raw = json.loads(path.read_text())
    except ValueError as err:
        raise RunError(f"{path} is not JSON: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("train"), dict):
        raise RunError(f"{path} has no 'train' section")
    return raw


def train_config(run_dir: Path | str):
    """The run's TrainConfig, rebuilt from config.json."""
    from a3c.config import TrainConfig, from_mapping

    try:
        return from_mapping(TrainConfig, read_config(run_dir)["train"])
    except (TypeError, ValueError) as err:
        raise RunError(f"{Path(run_dir) / 'config.json'}: {err}") from None


def env_id_of(run_dir: Path | str) -> str:
    """The env id a run trained on ('' when config.json is missing or unreadable)."""
    try:
        return str(read_config(run_dir)["train"].get("env_id", ""))
    except RunError:
        return ""


def tensorboard_links(folder: Path | str, run_dirs) -> list[str]:
    """Links in folder, one per run folder, to its event files (RUN_DIR/tensorboard), named
    as the run folder (its whole path, slashes as '_', where two names are the same): a
    TensorBoard on folder shows each run under that name. Returns the names."""
    paths = [Path(d).resolve() for d in run_dirs]
    names = [p.name for p in paths]
    if len(set(names)) < len(names):
        names = [str(Path(d)).strip("/").replace("/", "_") for d in run_dirs]
    for name, path in zip(names, paths):
        (Path(folder) / name).symlink_to(path / "tensorboard", target_is_directory=True)
    return names


def moving_average(values: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Trailing mean of the last `window` values; the first window-1 use what there is."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def effective_window(n: int, window: int = WINDOW) -> int:
    """The window shrunk to the episodes there are (at least 1)."""
    return max(1, min(window, n))


def first_reach(values: np.ndarray, threshold: float, window: int = WINDOW) -> int | None:
    """Index of the first full-window trailing mean >= threshold, or None.

    Only means over a whole window count (a mean of the first 3 episodes is no 20-episode
    mean); with fewer episodes than the window, the window shrinks to all of them.
    """
    w = effective_window(len(values), window)
    means = moving_average(values, w)
    hits = np.nonzero(means[w - 1 :] >= threshold)[0]
    return int(hits[0]) + w - 1 if hits.size else None


def block_means(values: np.ndarray, block: int) -> np.ndarray:
    """Means of consecutive blocks of `block` values, aligned to the end (leftovers dropped)."""
    values = np.asarray(values, dtype=np.float64)
    k = values.size // block
    if k == 0:
        return np.zeros(0)
    return values[values.size - k * block :].reshape(k, block).mean(axis=1)


FINAL_EPISODES = 50
"""Final return: the mean return of the last FINAL_EPISODES episodes."""
STABILITY_EPISODES = 100
"""Stability: measured over the last STABILITY_EPISODES episodes."""


@dataclasses.dataclass(frozen=True)
class SeedStats:
    """One run's numbers for the comparison table (see lab.compare for the definitions)."""

    episodes: int
    final: float
    spread: float  # std of the returns of the last 100 episodes
    drift: float  # mean |change| between successive 20-episode block means, last 100
    reach: dict[float, tuple[int, float] | None]  # threshold -> (episode, seconds) or None
    steps_per_second: float
    wall_seconds: float


def drift(values: np.ndarray, window: int = WINDOW) -> float:
    """Mean absolute change between successive `window`-episode block means (nan if <2)."""
    block = max(1, min(window, len(values) // 2))
    means = block_means(values, block)
    return float(np.mean(np.abs(np.diff(means)))) if means.size >= 2 else float("nan")


def seed_stats(returns: Returns, thresholds: list[float]) -> SeedStats:
    """The comparison numbers of one run; windows shrink to the episodes there are."""
    if not len(returns):
        raise RunError("a run has no episodes")
    ret = returns.ret
    recent = ret[-STABILITY_EPISODES:]
    reach: dict[float, tuple[int, float] | None] = {}
    for threshold in thresholds:
        i = first_reach(ret, threshold)
        reach[threshold] = (
            None if i is None else (int(returns.episode[i]), float(returns.seconds[i]))
        )
    return SeedStats(
        episodes=len(returns),
        final=float(ret[-FINAL_EPISODES:].mean()),
        spread=float(recent.std()),
        drift=drift(recent),
        reach=reach,
        steps_per_second=returns.steps_per_second(),
        wall_seconds=float(returns.seconds[-1]),
    )


def is_complete(
    run_dir: Path, episodes: int, seed: int, env_id: str, preset: str | None = None
) -> bool:
    """Whether run_dir holds a finished run of exactly this budget, seed and env id (and
    hyperparameter preset, when one is given)."""
    try:
        train = read_config(run_dir)["train"]
        returns = read_returns(run_dir)
    except RunError:
        return False
    same = (train.get("max_episodes"), train.get("seed"), train.get("env_id")) == (
        episodes,
        seed,
        env_id,
    )
    if preset is not None and train.get("preset", "default") != preset:
        return False
    full = len(returns) == episodes and list(returns.episode) == list(range(1, episodes + 1))
    return same and full and (run_dir / "actor.weights.h5").is_file()


def move_aside(run_dir: Path, why: str = "incomplete") -> Path:
    """Renames a run folder out of the way (never deletes it): RUN.WHY-TIMESTAMP, `why`
    "incomplete" for an unfinished run, "stale" for one trained with other settings."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.{why}-{stamp}")
    n = 1
    while target.exists():
        target, n = run_dir.with_name(f"{run_dir.name}.{why}-{stamp}-{n}"), n + 1
    run_dir.rename(target)
    return target


@dataclasses.dataclass(frozen=True)
class ModeSummary:
    """A mode's runs (one per seed) and their numbers."""

    mode: str
    returns: list[Returns]
    stats: list[SeedStats]

    def mean(self, field: str) -> float:
        return float(np.mean([getattr(s, field) for s in self.stats]))

    def reach_cell(self, threshold: float, index: int) -> str:
        """Median over the seeds that reached threshold (episode: index 0, seconds: 1)."""
        hits = [s.reach[threshold][index] for s in self.stats if s.reach[threshold]]
        if not hits:
            return f"not reached (0/{len(self.stats)})"
        median = float(np.median(hits))
        shown = f"{median:.0f}" if index == 0 and median.is_integer() else f"{median:.1f}"
        return f"{shown} ({len(hits)}/{len(self.stats)})"


def summarize(runs: dict[str, list[Path]], thresholds: list[float]) -> list[ModeSummary]:
    """Reads every run folder and computes its numbers."""
    out = []
    for mode, dirs in runs.items():
        returns = [read_returns(d) for d in dirs]
        out.append(ModeSummary(mode, returns, [seed_stats(r, thresholds) for r in returns]))
    return out
