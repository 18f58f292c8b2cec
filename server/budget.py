"""The episode budget: exactly max_episodes episodes are trained, never one more.

A worker must hold a lease to train an episode, one per environment it steps. At most
max_episodes - completed leases are out at once; a lease whose worker has been silent for
lease_timeout seconds is given to the next worker that asks, and pushes under the old
lease are refused from then on.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
import time
from collections.abc import Callable, Collection

log = logging.getLogger("server.budget")


class Grant(enum.Enum):
    GRANTED = 1
    WAIT = 2
    DONE = 3


@dataclasses.dataclass
class _Lease:
    worker_id: str
    last_seen: float


class Budget:
    """Leases episodes to workers; thread-safe."""

    def __init__(
        self,
        max_episodes: int,
        lease_timeout: float,
        completed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_episodes < 1:
            raise ValueError("max_episodes must be at least 1")
        self.max_episodes = max_episodes
        self.lease_timeout = lease_timeout
        self._clock = clock
        self._cond = threading.Condition()
        self._completed = completed
        self._leases: dict[int, _Lease] = {}
        self._next_id = 1
        self.on_reissue: Callable[[], None] = lambda: None

    @property
    def completed(self) -> int:
        return self._completed

    @property
    def held(self) -> int:
        """Leases out now: episodes being trained."""
        with self._cond:
            return len(self._leases)

    @property
    def done(self) -> bool:
        return self._completed >= self.max_episodes

    def request(
        self, worker_id: str, wait: float = 0.0, count: int = 1, held: Collection[int] = ()
    ) -> tuple[Grant, list[int]]:
        """Up to count new leases for worker_id, waiting up to `wait` seconds for the first.
        The worker's leases not in `held` end first (its environments left them)."""
        deadline = self._clock() + wait
        with self._cond:
            self._drop(worker_id, keep=held)
            while True:
                if self.done:
                    return Grant.DONE, []
                granted: list[int] = []
                while len(granted) < count and (
                    self._completed + len(self._leases) < self.max_episodes or self._reclaim()
                ):
                    granted.append(self._next_id)
                    self._leases[self._next_id] = _Lease(worker_id, self._clock())
                    self._next_id += 1
                if granted:
                    return Grant.GRANTED, granted
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return Grant.WAIT, []
                # Wake at least every half second: a lease may expire meanwhile.
                self._cond.wait(min(remaining, 0.5))

    def _reclaim(self) -> bool:
        now = self._clock()
        for lease_id, lease in self._leases.items():
            if now - lease.last_seen > self.lease_timeout:
                del self._leases[lease_id]
                self.on_reissue()
                log.info(
                    "role=server lease %d of %s given out again after %.1fs without a push",
                    lease_id, lease.worker_id, now - lease.last_seen,
                )  # fmt: skip
                return True
        return False

    def granted(self, lease_id: int) -> bool:
        """Whether lease_id was ever handed out (held now or not)."""
        return 1 <= lease_id < self._next_id

    def renew(self, lease_id: int, worker_id: str) -> bool:
        """True, and the lease refreshed, when worker_id still holds lease_id."""
        with self._cond:
            lease = self._leases.get(lease_id)
            if lease is None or lease.worker_id != worker_id:
                return False
            lease.last_seen = self._clock()
            return True

    def complete(self, lease_id: int) -> int:
        """Counts the leased episode as trained; returns its episode number (1-based)."""
        with self._cond:
            if self._leases.pop(lease_id, None) is None:
                raise KeyError(f"lease {lease_id} is not held")
            self._completed += 1
            self._cond.notify_all()
            return self._completed

    def release_worker(self, worker_id: str) -> None:
        """Gives back the leases of a worker that said it is leaving."""
        with self._cond:
            self._drop(worker_id)
            self._cond.notify_all()

    def _drop(self, worker_id: str, keep: Collection[int] = ()) -> None:
        """Forgets worker_id's leases but those in keep; the caller holds the lock."""
        for lease_id, lease in list(self._leases.items()):
            if lease.worker_id == worker_id and lease_id not in keep:
                del self._leases[lease_id]
