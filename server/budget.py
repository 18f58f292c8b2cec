"""The budget: exactly max_episodes episodes, or exactly max_env_steps env steps, are
trained, never one more; with both, the first reached ends the run.

A worker must hold a lease to train an episode, one per environment it steps. At most
max_episodes - completed leases are out at once; a lease whose worker has been silent for
lease_timeout seconds is given to the next worker that asks, and pushes under the old
lease are refused from then on.

With an env-step budget each lease also reserves a step limit: up to episode_steps (the
environment's time limit) of the steps neither trained nor reserved. The worker ends the
episode there (a truncation, which bootstraps); a lease that ends early, or expires,
gives back what it did not use. So the steps trained never pass max_env_steps, and reach
it: the last leases get the last few steps.
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
    limit: int = 0  # env steps it may train (0: no env-step budget)
    used: int = 0  # env steps trained under it


class Budget:
    """Leases episodes to workers; thread-safe."""

    def __init__(
        self,
        max_episodes: int,
        lease_timeout: float,
        completed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        max_env_steps: int = 0,
        episode_steps: int = 1000,
        trained_steps: int = 0,
    ):
        """max_episodes or max_env_steps 0: no budget of that kind (one is needed)."""
        if max_episodes < 0 or max_env_steps < 0 or not (max_episodes or max_env_steps):
            raise ValueError("a budget of max_episodes or max_env_steps (>= 1) is needed")
        if episode_steps < 1:
            raise ValueError("episode_steps must be at least 1")
        self.max_episodes = max_episodes
        self.max_env_steps = max_env_steps
        self.episode_steps = episode_steps
        self.lease_timeout = lease_timeout
        self._clock = clock
        self._cond = threading.Condition()
        self._completed = completed
        self._trained_steps = trained_steps
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
    def trained_steps(self) -> int:
        return self._trained_steps

    @property
    def done(self) -> bool:
        episodes_done = self.max_episodes and self._completed >= self.max_episodes
        steps_done = self.max_env_steps and self._trained_steps >= self.max_env_steps
        return bool(episodes_done or steps_done)

    @property
    def progress(self) -> float:
        """How much of the budget is trained, 0..1 (the nearer of its two ends)."""
        parts = [0.0]
        if self.max_episodes:
            parts.append(self._completed / self.max_episodes)
        if self.max_env_steps:
            parts.append(self._trained_steps / self.max_env_steps)
        return min(max(parts), 1.0)

    def _free_steps(self) -> int:
        """Env steps neither trained nor reserved by a lease; the caller holds the lock."""
        reserved = sum(lease.limit - lease.used for lease in self._leases.values())
        return self.max_env_steps - self._trained_steps - reserved

    def _can_lease(self) -> bool:
        """Room for one more lease (caller holds the lock)."""
        if self.max_episodes and self._completed + len(self._leases) >= self.max_episodes:
            return False
        return not self.max_env_steps or self._free_steps() > 0

    def request(
        self, worker_id: str, wait: float = 0.0, count: int = 1, held: Collection[int] = ()
    ) -> tuple[Grant, list[int]]:
        """Up to count new leases for worker_id, waiting up to `wait` seconds for the first.
        The worker's leases not in `held` end first (its environments left them)."""
        grant, leases = self.request_limited(worker_id, wait, count, held)
        return grant, [lease_id for lease_id, _ in leases]

    def request_limited(
        self, worker_id: str, wait: float = 0.0, count: int = 1, held: Collection[int] = ()
    ) -> tuple[Grant, list[tuple[int, int]]]:
        """As request, with each lease's step limit: [(lease_id, limit)] (limit 0: none)."""
        deadline = self._clock() + wait
        with self._cond:
            self._drop(worker_id, keep=held)
            while True:
                if self.done:
                    return Grant.DONE, []
                granted: list[tuple[int, int]] = []
                while len(granted) < count and (self._can_lease() or self._reclaim()):
                    limit = min(self.episode_steps, self._free_steps()) if self.max_env_steps else 0
                    granted.append((self._next_id, limit))
                    self._leases[self._next_id] = _Lease(worker_id, self._clock(), limit)
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

    def renew(self, lease_id: int, worker_id: str, steps: int = 0) -> bool:
        """True, the lease refreshed and `steps` env steps counted as trained under it,
        when worker_id still holds lease_id and its step limit leaves room for them. The
        learner renews every slot of a push before it trains it, and counts its steps
        then, so a lease can never be granted steps that are being trained."""
        with self._cond:
            lease = self._leases.get(lease_id)
            if lease is None or lease.worker_id != worker_id:
                return False
            if lease.limit and lease.used + steps > lease.limit:
                log.warning(
                    "role=server lease %d of %s: %d steps pushed past its limit of %d",
                    lease_id, worker_id, lease.used + steps, lease.limit,
                )  # fmt: skip
                return False
            lease.last_seen = self._clock()
            lease.used += steps
            self._trained_steps += steps
            self._cond.notify_all()
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
