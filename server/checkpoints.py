"""Checkpoints: the learner's whole state in one file, replaced atomically, restored on start.

`checkpoint.npz` in the run folder holds the flat weights, every optimizer variable, the
running normalization statistics (when the config keeps them) and the counters (version,
episodes, env steps, seconds, the training config). It is written
to a temporary file, fsynced and renamed over the old one, so a crash leaves either the
old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from a3c.normalization import Statistics

NAME = "checkpoint.npz"
BUDGETS = ("max_episodes", "max_env_steps")
"""Config fields a resumed run may change."""
STATISTICS = "normalization.npz"
"""Beside the Keras weights: the running statistics the saved weights act with."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be restored into this server (e.g. another network)."""


@dataclasses.dataclass(frozen=True)
class Counters:
    version: int
    episodes: int
    env_steps: int
    seconds: float
    train_config: dict


def write(run_dir: Path, trainer, counters: Counters, statistics: Statistics | None = None) -> Path:
    """Writes the checkpoint of trainer (an a3c.trainer.Trainer), the running statistics
    and counters atomically."""
    arrays = {"weights": trainer.flat_weights()}
    arrays.update({f"adam_{k}": v for k, v in trainer.optimizer_state().items()})
    if statistics is not None:
        arrays.update({f"stats_{k}": v for k, v in statistics.arrays().items()})
    meta = json.dumps(dataclasses.asdict(counters), sort_keys=True)
    path = run_dir / NAME
    _write_atomically(path, meta=np.array(meta), **arrays)
    return path


def write_statistics(run_dir: Path, statistics: Statistics) -> Path:
    """RUN_DIR/normalization.npz: the statistics beside the saved Keras weights."""
    path = run_dir / STATISTICS
    _write_atomically(path, **statistics.arrays())
    return path


def read_statistics(run_dir: Path) -> Statistics | None:
    """The statistics of RUN_DIR/normalization.npz; None when the run kept none."""
    path = Path(run_dir) / STATISTICS
    if not path.exists():
        return None
    with np.load(path) as data:
        return Statistics.from_arrays(data)


def _write_atomically(path: Path, **arrays) -> None:
    """np.savez to a temporary file, fsynced, renamed over path, the folder fsynced."""
    tmp = path.parent / f".{path.name}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def restore(
    run_dir: Path, trainer, train_config: dict
) -> tuple[Counters, Statistics | None] | None:
    """Loads run_dir's checkpoint into trainer; its counters and running statistics (None
    when it kept none), or None when there is no checkpoint.

    The checkpoint must come from the same training config, the budgets aside.
    """
    path = run_dir / NAME
    if not path.exists():
        return None
    with np.load(path) as data:
        counters = Counters(**json.loads(str(data["meta"])))
        saved = {k: v for k, v in counters.train_config.items() if k not in BUDGETS}
        wanted = {k: v for k, v in train_config.items() if k not in BUDGETS}
        if json.loads(json.dumps(saved)) != json.loads(json.dumps(wanted)):
            changed = sorted(k for k in wanted if saved.get(k) != wanted[k])
            raise CheckpointError(
                f"{path} was written with other training settings ({', '.join(changed)}); "
                "use a new --run-dir"
            )
        try:
            adam = {k: data[f"adam_{k}"] for k in ("m", "v", "t")}
            weights = data["weights"]
        except KeyError as err:
            raise CheckpointError(f"{path} lacks {err}: written by another version") from None
        if weights.shape != (trainer.n_params,) or adam["m"].shape != weights.shape:
            raise CheckpointError(f"{path} holds weights of another shape; use a new --run-dir")
        trainer.assign_flat(weights)
        trainer.load_optimizer_state(adam)
        stats = {k[len("stats_") :]: data[k] for k in data.files if k.startswith("stats_")}
        statistics = Statistics.from_arrays(stats) if stats else None
    return counters, statistics
