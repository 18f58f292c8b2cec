"""The run folder's returns log: one CSV row per trained episode, and running totals."""

from __future__ import annotations

import collections
import csv
import threading
import time
from pathlib import Path

HEADER = ("episode", "worker", "return", "length", "version", "env_steps", "seconds")


class RunLog:
    """Appends to returns.csv as episodes are trained; keeps what the progress line shows."""

    def __init__(self, path: Path, window: int = 20):
        self.path = path
        self._file = open(path, "w", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._file)
        self._csv.writerow(HEADER)
        self._file.flush()
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._recent: collections.deque[float] = collections.deque(maxlen=window)
        self.env_steps = 0
        self.episodes = 0

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._start

    def add_steps(self, steps: int) -> None:
        with self._lock:
            self.env_steps += steps

    def episode(self, episode: int, worker: str, ret: float, length: int, version: int) -> None:
        with self._lock:
            self.episodes = episode
            self._recent.append(ret)
            row = (episode, worker, f"{ret:.3f}", length, version, self.env_steps)
            self._csv.writerow((*row, f"{self.seconds:.3f}"))
            self._file.flush()

    def recent_mean(self) -> float | None:
        with self._lock:
            return sum(self._recent) / len(self._recent) if self._recent else None

    def close(self) -> None:
        with self._lock:
            self._file.close()
