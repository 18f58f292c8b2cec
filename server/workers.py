"""Who is connected: worker ids handed out by Connect, and whether each was told to stop."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time


@dataclasses.dataclass
class WorkerInfo:
    worker_id: str
    name: str
    mode: str
    last_seen: float
    told_done: bool = False


class Registry:
    """Thread-safe table of connected workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers: dict[str, WorkerInfo] = {}
        self._ids = itertools.count(1)

    def add(self, name: str, mode: str, worker_id: str = "") -> WorkerInfo:
        """Registers a worker under its own id (kept across reconnects) or a new one."""
        with self._lock:
            worker_id = worker_id or f"w{next(self._ids)}"
            info = WorkerInfo(worker_id, name or worker_id, mode, time.monotonic())
            self._workers[worker_id] = info
            return info

    def remove(self, worker_id: str) -> None:
        with self._lock:
            self._workers.pop(worker_id, None)

    def get(self, worker_id: str) -> WorkerInfo | None:
        with self._lock:
            info = self._workers.get(worker_id)
            if info is not None:
                info.last_seen = time.monotonic()
            return info

    def mark_done(self, worker_id: str) -> None:
        with self._lock:
            if worker_id in self._workers:
                self._workers[worker_id].told_done = True

    def active(self, silent_after: float) -> int:
        """Workers neither told to stop nor silent for silent_after seconds."""
        now = time.monotonic()
        with self._lock:
            return sum(
                1
                for w in self._workers.values()
                if not w.told_done and now - w.last_seen < silent_after
            )
