"""The run folder's returns log: one CSV row per trained episode, and running totals."""

from __future__ import annotations

import collections
import csv
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

HEADER = ("episode", "worker", "return", "length", "version", "env_steps", "seconds")


class RunLog:
    """Appends to returns.csv as episodes are trained; keeps what the progress line shows."""

    def __init__(
        self,
        path: Path,
        window: int = 20,
        keep_episodes: int = 0,
        env_steps: int = 0,
        seconds: float = 0.0,
        thresholds: Sequence[float] = (),
    ):
        """A new returns.csv, or, resuming from a checkpoint, the existing one cut back to
        its first keep_episodes rows (episodes trained after the checkpoint are redone).
        thresholds: returns (the environment's good and solved, a3c.envs) whose first
        full-window mean reach is kept in `reached`."""
        self.path = path
        kept = self._read_rows(path)[:keep_episodes] if keep_episodes else []
        if len(kept) != keep_episodes:
            raise ValueError(f"{path} has {len(kept)} episodes; the checkpoint {keep_episodes}")
        self._file = open(path, "w", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._file)
        self._csv.writerow(HEADER)
        self._csv.writerows(kept)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._lock = threading.Lock()
        self._resumed_seconds = seconds
        self._start: float | None = None  # set by the first trained push
        self._recent: collections.deque[float] = collections.deque(
            (float(row[2]) for row in kept), maxlen=window
        )
        self.env_steps = env_steps
        # The best full-window mean so far: (mean, episode, seconds), for the last log line.
        self.best: tuple[float, int, float] | None = None
        self._thresholds = sorted(thresholds)
        # threshold -> (episode, seconds) of the first full-window mean >= it (this process).
        self.reached: dict[float, tuple[int, float]] = {}

    @staticmethod
    def _read_rows(path: Path) -> list[list[str]]:
        if not path.exists():
            return []
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        return rows[1:]

    @property
    def seconds(self) -> float:
        """Seconds of training: since the first push this process applied, plus what a
        resumed checkpoint had (start-up, TensorFlow imports included, does not count)."""
        if self._start is None:
            return self._resumed_seconds
        return self._resumed_seconds + time.monotonic() - self._start

    def add_steps(self, steps: int) -> None:
        with self._lock:
            if self._start is None:
                self._start = time.monotonic()
            self.env_steps += steps

    def episode(self, episode: int, worker: str, ret: float, length: int, version: int) -> None:
        with self._lock:
            self._recent.append(ret)
            if len(self._recent) == self._recent.maxlen:
                mean = sum(self._recent) / len(self._recent)
                if self.best is None or mean > self.best[0]:
                    self.best = (mean, episode, self.seconds)
                for threshold in self._thresholds:
                    if mean >= threshold and threshold not in self.reached:
                        self.reached[threshold] = (episode, self.seconds)
            row = (episode, worker, f"{ret:.3f}", length, version, self.env_steps)
            self._csv.writerow((*row, f"{self.seconds:.3f}"))
            self._file.flush()

    def recent_mean(self) -> float | None:
        with self._lock:
            return sum(self._recent) / len(self._recent) if self._recent else None

    def close(self) -> None:
        with self._lock:
            self._file.close()
