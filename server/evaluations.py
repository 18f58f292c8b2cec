"""Evaluation points: the weights of the first update that reached each multiple of
eval_every trained env steps (and the final weights), held until the evaluator reports
their deterministic returns, which go to evals.csv, the metrics and TensorBoard.

The learner only copies a reference to its snapshot when a point is crossed; the evaluator
plays in its own process, so an evaluation costs the learner nothing and the training
budget not a step.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger("server.evaluations")

MAX_PENDING = 16
"""Points held at most: past that, a new point drops the oldest one not yet evaluated (an
evaluator slower than training, or none, must not make the server hold weights forever)."""

HEADER = ("env_steps", "seconds", "version", "mean", "std", "min", "max", "episodes")


@dataclasses.dataclass(frozen=True)
class Point:
    """The weights to evaluate at env_steps trained steps."""

    env_steps: int
    seconds: float  # training seconds when the point was reached
    version: int
    flat: np.ndarray
    statistics: object  # a3c.normalization.Statistics or None


class Evaluations:
    """Thread-safe: the learner adds points, the evaluator's RPCs take and answer them."""

    def __init__(self, path: Path, every: int, metrics=None, summaries=None, resume_at: int = 0):
        self.every = every
        self._path = path
        self._m, self._summaries = metrics, summaries
        self._lock = threading.Lock()
        self._points: dict[int, Point] = {}
        self._last_point = resume_at - resume_at % every if every else 0
        self._final: int | None = None  # the final point, once the budget is spent
        self._given: int | None = None  # the point the evaluator is playing
        self.connected = False  # an evaluator asked for a point at least once
        kept = []  # resumed: the rows up to the checkpoint (later points are evaluated again)
        if path.exists():
            with open(path, newline="") as f:
                kept = [r for r in list(csv.reader(f))[1:] if r and int(r[0]) <= resume_at]
        self._file = open(path, "w", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._file)
        self._csv.writerow(HEADER)
        self._csv.writerows(kept)
        self._file.flush()

    def after_update(self, env_steps: int, seconds: float, version: int, flat, stats) -> None:
        """From the learner after each update: keeps the weights of a point crossed."""
        if not self.every:
            return
        point = env_steps - env_steps % self.every
        if point > self._last_point:
            with self._lock:
                self._last_point = point
                self._points[point] = Point(point, seconds, version, flat, stats)
                skipped = self._trim()
            if skipped:
                log.warning(
                    "role=server evaluator %d points behind: the point at %d env steps is "
                    "skipped", MAX_PENDING, skipped,
                )  # fmt: skip

    def _trim(self) -> int:
        """Drops the oldest point past MAX_PENDING but the one being played; its env steps
        (0: none dropped)."""
        if len(self._points) <= MAX_PENDING:
            return 0
        oldest = min(p for p in self._points if p != self._given)
        del self._points[oldest]
        if self._m is not None:
            self._m.evaluations_skipped.inc()
        return oldest

    def finish(self, env_steps: int, seconds: float, version: int, flat, stats) -> None:
        """Once the budget is spent: the final weights are a point too (if not one yet)."""
        if not self.every:
            return
        with self._lock:
            if env_steps > self._last_point:
                self._points[env_steps] = Point(env_steps, seconds, version, flat, stats)
                self._last_point = env_steps
            self._final = self._last_point

    def next(self, after: int) -> tuple[str, Point | None]:
        """("ready", the first point past `after`), ("wait", None) or ("done", None)."""
        with self._lock:
            self.connected = True
            later = [p for p in self._points if p > after]
            if later:
                self._given = min(later)
                return "ready", self._points[self._given]
            if self._final is not None:  # the budget is spent: no point will come
                return "done", None
            return "wait", None

    @property
    def pending(self) -> int:
        """Points not reported yet."""
        with self._lock:
            return len(self._points)

    def report(self, env_steps: int, version: int, returns, lengths) -> bool:
        """Records a point's returns once; False for a point it does not hold (unknown,
        or reported already)."""
        with self._lock:
            point = self._points.get(env_steps)
            if point is None or point.version != version:
                return False
            del self._points[env_steps]
            r = np.asarray(returns, np.float64)
            row = (env_steps, f"{point.seconds:.3f}", version, f"{r.mean():.4f}",
                   f"{r.std():.4f}", f"{r.min():.4f}", f"{r.max():.4f}", len(r))  # fmt: skip
            self._csv.writerow(row)
            self._file.flush()
            os.fsync(self._file.fileno())
        log.info(
            "role=server evaluation at %d env steps (version %d): %.1f ± %.1f over %d episodes",
            env_steps, version, r.mean(), r.std(), len(r),
        )  # fmt: skip
        if self._m is not None:
            self._m.eval_return.set(r.mean())
            self._m.eval_env_steps.set(env_steps)
            self._m.evaluations.inc()
        if self._summaries is not None:
            self._summaries.scalars(
                env_steps,
                {"eval/return_mean": float(r.mean()), "eval/return_std": float(r.std()),
                 "eval/length_mean": float(np.mean(lengths))},
            )  # fmt: skip
        self.last = (env_steps, float(r.mean()), float(r.std()))
        return True

    last: tuple[int, float, float] | None = None
    """(env steps, mean, std) of the latest evaluation reported."""

    def close(self) -> None:
        self._file.close()
