"""TensorBoard event files of a run (RUN_DIR/tensorboard), written by the server.

Scalars against env steps trained: every episode's return and length (`episode/return`,
`episode/length`), and at each diagnosed update the learner's diagnostics
(`learner/NAME`, as the a3c_server_learner_* metrics), the learning rates, the gradient
norms, and the env steps per second since the previous one (`throughput/env_steps_per_s`);
the evaluator's points (`eval/...`). `make tensorboard RUN_DIR=...` shows them.

Written with TensorBoard's own event-file writer and scalar protos, no TensorFlow op: the
eager tf.summary path costs the learner thread an op per value and grows the server's
native memory by about 0.5 GB an hour at full speed (`make soak`). The events are the
same as tf.summary.scalar's (tensor-form float32 scalars, the scalars plugin's metadata on
each tag's first value).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.scalar import metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter


class Summaries:
    """One event file; its methods may be called from any thread."""

    def __init__(self, path: Path):
        self.path = path
        self._writer = EventFileWriter(str(path), max_queue_size=4096, flush_secs=5)
        self._described: set[str] = set()  # tags whose metadata went out with a value

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        summary = summary_pb2.Summary()
        for tag, value in values.items():
            if math.isnan(value):
                continue
            entry = summary.value.add(tag=tag, tensor=_scalar(value))
            if tag not in self._described:
                self._described.add(tag)
                entry.metadata.CopyFrom(metadata.create_summary_metadata("", ""))
        if summary.value:
            self._writer.add_event(
                event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary)
            )

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()


_SCALAR_SHAPE = tensor_shape_pb2.TensorShapeProto()


def _scalar(value: float) -> tensor_pb2.TensorProto:
    """A float32 scalar in the tensor form tf.summary.scalar writes."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, tensor_shape=_SCALAR_SHAPE, float_val=[value]
    )
