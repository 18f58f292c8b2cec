"""Checkpoints: the learner's whole state in one file, replaced atomically, restored on start.

`checkpoint.npz` in the run folder holds the flat weights, every optimizer variable and
the counters (version, episodes, env steps, seconds, the training config). It is written
to a temporary file, fsynced and renamed over the old one, so a crash leaves either the
old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

NAME = "checkpoint.npz"


class CheckpointError(ValueError):
    """A checkpoint that cannot be restored into this server (e.g. another network)."""


@dataclasses.dataclass(frozen=True)
class Counters:
    version: int
    episodes: int
    env_steps: int
    seconds: float
    train_config: dict


def write(run_dir: Path, trainer, counters: Counters) -> Path:
    """Writes the checkpoint of trainer (an a3c.trainer.Trainer) and counters atomically."""
    arrays = {"weights": trainer.flat_weights()}
    arrays.update({f"adam_{k}": v for k, v in trainer.optimizer_state().items()})
    meta = json.dumps(dataclasses.asdict(counters), sort_keys=True)
    path = run_dir / NAME
    tmp = run_dir / f".{NAME}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, meta=np.array(meta), **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(run_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def restore(run_dir: Path, trainer, train_config: dict) -> Counters | None:
    """Loads run_dir's checkpoint into trainer; None when there is none.

    The checkpoint must come from the same training config, the budget aside.
    """
    path = run_dir / NAME
    if not path.exists():
        return None
    with np.load(path) as data:
        counters = Counters(**json.loads(str(data["meta"])))
        saved = {k: v for k, v in counters.train_config.items() if k != "max_episodes"}
        wanted = {k: v for k, v in train_config.items() if k != "max_episodes"}
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
    return counters
