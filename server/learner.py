"""The learner: one thread that applies pushes, in arrival order, from a bounded queue."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable, Sequence

import numpy as np

from a3c.rollout import Batch
from server.budget import Budget
from server.runlog import RunLog

log = logging.getLogger("server.learner")


@dataclasses.dataclass
class Push:
    """One decoded, validated push, waiting for the learner."""

    worker_id: str
    worker_name: str
    lease_id: int
    base_version: int
    steps: int
    episode_end: bool = False
    episode_return: float = 0.0
    episode_length: int = 0
    batch: Batch | None = None  # data mode
    grads: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None  # gradient mode
    applied: bool = False
    version: int = 0
    error: BaseException | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class Learner:
    """Applies pushes to the global networks and keeps the newest weights snapshot.

    `trainer` is an a3c.algo.Trainer; `on_episode(n)` runs in the learner thread after
    episode n is logged (checkpoints hook in there).
    """

    def __init__(
        self,
        trainer,
        budget: Budget,
        runlog: RunLog,
        queue_size: int,
        on_episode: Callable[[int], None] = lambda n: None,
    ):
        self._trainer = trainer
        self._budget = budget
        self._runlog = runlog
        self._on_episode = on_episode
        self._queue: queue.Queue[Push | None] = queue.Queue(maxsize=queue_size)
        self._snapshot = (0, trainer.flat_weights().numpy())
        self._thread = threading.Thread(target=self._run, name="learner", daemon=True)

    @property
    def version(self) -> int:
        return self._snapshot[0]

    def snapshot(self) -> tuple[int, np.ndarray]:
        """(version, flat weights): one consistent pair, readable from any thread."""
        return self._snapshot

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread.start()

    def submit(self, push: Push, timeout: float) -> None:
        """Enqueues push, waiting up to timeout while the queue is full (raises queue.Full)."""
        self._queue.put(push, timeout=timeout)

    def stop(self) -> None:
        """Applies what is queued, then ends the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (push := self._queue.get()) is not None:
            try:
                self._apply(push)
            except Exception as err:  # noqa: BLE001 - reported to the pushing worker
                log.exception("role=server learner failed on a push of %s", push.worker_id)
                push.error = err
            finally:
                push.done.set()

    def _apply(self, push: Push) -> None:
        if not self._budget.renew(push.lease_id, push.worker_id):
            push.version = self.version
            return
        if push.batch is not None:
            flat = self._trainer.data_step(push.batch)
        else:
            flat = self._trainer.gradient_step(*push.grads)
        version = self.version + 1
        self._snapshot = (version, flat.numpy())
        push.applied, push.version = True, version
        self._runlog.add_steps(push.steps)
        if push.episode_end:
            episode = self._budget.complete(push.lease_id)
            self._runlog.episode(
                episode, push.worker_name, push.episode_return, push.episode_length, version
            )
            self._on_episode(episode)
