"""Who is connected: worker ids handed out by Connect, and whether each was told to stop."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
import time
from typing import Any

RESEND_WINDOW = 16  # more than any worker keeps in flight


@dataclasses.dataclass
class WorkerInfo:
    worker_id: str
    name: str
    mode: str
    last_seen: float
    num_envs: int = 1
    told_done: bool = False
    last_seq: int = 0
    # The last RESEND_WINDOW pushes by seq (server.learner.Push), to answer resent ones.
    recent: collections.OrderedDict = dataclasses.field(default_factory=collections.OrderedDict)


class Registry:
    """Thread-safe table of connected workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers: dict[str, WorkerInfo] = {}
        self._ids = itertools.count(1)

    def add(self, name: str, mode: str, worker_id: str = "", num_envs: int = 1) -> WorkerInfo:
        """Registers a worker under its own id, kept across reconnects (what the server
        knows of a known id, such as its last push, is kept), or under a new id."""
        with self._lock:
            known = self._workers.get(worker_id) if worker_id else None
            if known is not None:
                known.name, known.mode, known.num_envs = name or worker_id, mode, num_envs
                known.last_seen, known.told_done = time.monotonic(), False
                return known
            worker_id = worker_id or f"w{next(self._ids)}"
            info = WorkerInfo(worker_id, name or worker_id, mode, time.monotonic(), num_envs)
            self._workers[worker_id] = info
            return info

    def claim_seq(self, info: WorkerInfo, seq: int, push: Any) -> tuple[bool, Any]:
        """(True, None) when seq is new for the worker (push is remembered under it);
        (False, the earlier push) when seq was seen, None if too long ago to answer."""
        with self._lock:
            if seq > info.last_seq:
                info.last_seq = seq
                info.recent[seq] = push
                while len(info.recent) > RESEND_WINDOW:
                    info.recent.popitem(last=False)
                return True, None
            return False, info.recent.get(seq)

    def forget_seq(self, info: WorkerInfo, seq: int) -> None:
        """Undoes claim_seq for a push that was refused before it was queued."""
        with self._lock:
            info.recent.pop(seq, None)
            if info.last_seq == seq:
                info.last_seq = max(info.recent, default=0)

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

    def active(self, silent_after: float, envs: bool = False) -> int:
        """Workers neither told to stop nor silent for silent_after seconds (envs: the
        environments they step)."""
        now = time.monotonic()
        with self._lock:
            return sum(
                w.num_envs if envs else 1
                for w in self._workers.values()
                if not w.told_done and now - w.last_seen < silent_after
            )
