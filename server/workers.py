"""Who is connected: worker ids handed out by Connect, and whether each was told to stop."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from typing import Any


@dataclasses.dataclass
class WorkerInfo:
    worker_id: str
    name: str
    mode: str
    last_seen: float
    told_done: bool = False
    last_seq: int = 0
    last_push: Any = None  # the server.learner.Push of last_seq, for resent pushes


class Registry:
    """Thread-safe table of connected workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers: dict[str, WorkerInfo] = {}
        self._ids = itertools.count(1)

    def add(self, name: str, mode: str, worker_id: str = "") -> WorkerInfo:
        """Registers a worker under its own id, kept across reconnects (what the server
        knows of a known id, such as its last push, is kept), or under a new id."""
        with self._lock:
            known = self._workers.get(worker_id) if worker_id else None
            if known is not None:
                known.name, known.mode = name or worker_id, mode
                known.last_seen, known.told_done = time.monotonic(), False
                return known
            worker_id = worker_id or f"w{next(self._ids)}"
            info = WorkerInfo(worker_id, name or worker_id, mode, time.monotonic())
            self._workers[worker_id] = info
            return info

    def claim_seq(self, info: WorkerInfo, seq: int, push: Any) -> tuple[bool, Any]:
        """(True, None) when seq is new for the worker (push becomes its last push);
        (False, the earlier push) when seq was seen: the earlier push if seq is the
        last one, else None."""
        with self._lock:
            if seq > info.last_seq:
                info.last_seq, info.last_push = seq, push
                return True, None
            return False, info.last_push if seq == info.last_seq else None

    def forget_seq(self, info: WorkerInfo, seq: int) -> None:
        """Undoes claim_seq for a push that was refused before it was queued."""
        with self._lock:
            if info.last_seq == seq:
                info.last_seq, info.last_push = seq - 1, None

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
