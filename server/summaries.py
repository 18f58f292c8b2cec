"""TensorBoard event files of a run (RUN_DIR/tensorboard), written by the learner thread.

Scalars against env steps trained: every episode's return and length (`episode/return`,
`episode/length`), and at each diagnosed update the learner's diagnostics
(`learner/NAME`, as the a3c_server_learner_* metrics), the learning rates, the gradient
norms, and the env steps per second since the previous one (`throughput/env_steps_per_s`).
Written with tf.summary, which TensorFlow brings; `make tensorboard RUN_DIR=...` shows them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import tensorflow as tf


class Summaries:
    """One tf.summary writer; its methods run in one thread (the learner's)."""

    def __init__(self, path: Path):
        self.path = path
        self._writer = tf.summary.create_file_writer(str(path), flush_millis=5000)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        with self._writer.as_default(step=step):
            for tag, value in values.items():
                if not math.isnan(value):
                    tf.summary.scalar(tag, value)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()
