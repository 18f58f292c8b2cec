"""The learner: one thread that applies pushes, in arrival order, from a bounded queue."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from a3c.diagnostics import DIAGNOSE_SECONDS, OFF_POLICY_DIAGNOSTICS
from a3c.normalization import Statistics, merge_all
from a3c.rollout import Batch
from server.budget import Budget
from server.metrics import ServerMetrics
from server.runlog import RunLog

log = logging.getLogger("server.learner")


@dataclasses.dataclass(frozen=True)
class Slot:
    """One environment's part of a push: its lease, its steps, and its episode's end."""

    lease_id: int
    steps: int
    episode_end: bool = False
    episode_return: float = 0.0
    episode_length: int = 0


class Outcome(NamedTuple):
    """What became of a push: the weights version after it, and the leases it found lost
    (then nothing of it was trained; the other slots' steps and episode ends count)."""

    version: int
    lost: tuple[int, ...] = ()


@dataclasses.dataclass
class Push:
    """One decoded, validated push, waiting for the learner; `result` resolves to its
    Outcome once the learner has settled it (or to the learner's error)."""

    mode: str  # data (batch set) or gradient (grads set)
    worker_id: str
    worker_name: str
    base_version: int
    slots: list[Slot]
    batch: Batch | None = None  # data mode: one row per slot
    grads: np.ndarray | None = None  # gradient mode: flat, actor's then critic's variables
    has_log_probs: bool = False  # data mode: the batch carries behaviour log-probabilities
    increments: Statistics | None = None  # running normalization: what its envs showed
    enqueued: float = 0.0
    outcome: Outcome | None = None  # set by the learner, published through result
    result: concurrent.futures.Future = dataclasses.field(default_factory=concurrent.futures.Future)

    @property
    def steps(self) -> int:
        return sum(slot.steps for slot in self.slots)


class LearnerStopped(Exception):
    """The learner takes no more pushes: the budget is spent or the server is stopping."""


class Learner:
    """Applies pushes to the global networks and keeps the newest weights snapshot.

    With `batch` B > 1 the learner takes up to B queued pushes at once and makes one
    update of each mode from them (see _update); B = 1 is the seed's one update per push.

    `trainer` is an a3c.trainer.Trainer; `on_episode(n)` runs in the learner thread after
    episode n is logged (checkpoints hook in there), `on_update(version, flat weights,
    statistics)` after each update's pushes are settled (evaluation points). Data-mode
    updates run as one fused call; every `split_every`-th runs as two calls, so that the
    compute and apply histograms are sampled at the cost of a slower update 1 time in
    split_every. At most once every `diagnose_seconds` an update also computes its
    diagnostics (a3c.trainer's,
    in the same compiled call), which go to the a3c_server_learner_* metrics and, with
    `summaries` (server.summaries.Summaries), to TensorBoard with every episode's return.
    With running normalization, `statistics` (a3c.normalization.Statistics) are the
    model's: each update merges the increments of the pushes it trains, so that a version's
    statistics are those of exactly the pushes trained into it.
    """

    def __init__(
        self,
        trainer,
        budget: Budget,
        runlog: RunLog,
        queue_size: int,
        metrics: ServerMetrics,
        on_episode: Callable[[int], None] = lambda n: None,
        version: int = 0,
        split_every: int = 20,
        batch: int = 1,
        reduce: str = "sum",
        max_policy_lag: int = 0,
        summaries=None,
        grad_clip_norm: float = 0.0,
        diagnose_seconds: float = DIAGNOSE_SECONDS,
        statistics: Statistics | None = None,
        on_update: Callable[[int, np.ndarray, Statistics | None], None] = lambda v, f, s: None,
    ):
        self._trainer = trainer
        self._m = metrics
        self._budget = budget
        self._runlog = runlog
        self._on_episode = on_episode
        self._on_update = on_update
        self._queue: queue.Queue[Push | None] = queue.Queue(maxsize=queue_size)
        self._snapshot = (version, trainer.flat_weights(), statistics)
        self._updates = 0
        self._split_every = split_every
        self._batch, self._reduce = batch, reduce
        self._max_lag = max_policy_lag
        self._stopped = False
        self._summaries, self._clip = summaries, grad_clip_norm
        self._diagnose_seconds = diagnose_seconds
        self._last_diagnosis: tuple[float, int] | None = None  # (time, env steps)
        metrics.version.set(version)
        metrics.queue_capacity.set(queue_size)
        metrics.queue_depth.set_function(self._queue.qsize)
        self._busy_lock = threading.Lock()
        self._busy_total = 0.0
        self._busy_since: float | None = None
        metrics.busy_source = self.busy_seconds
        self._thread = threading.Thread(target=self._run, name="learner", daemon=True)

    @property
    def version(self) -> int:
        return self._snapshot[0]

    def snapshot(self) -> tuple[int, np.ndarray, Statistics | None]:
        """(version, flat weights, statistics): one consistent triple, readable from any
        thread (statistics None without running normalization)."""
        return self._snapshot

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def busy_seconds(self) -> float:
        """Seconds spent applying pushes so far, the one in progress included."""
        with self._busy_lock:
            since = self._busy_since
            return self._busy_total + (time.perf_counter() - since if since else 0.0)

    def _set_busy(self, busy: bool) -> None:
        with self._busy_lock:
            now = time.perf_counter()
            if busy:
                self._busy_since = now
            elif self._busy_since is not None:
                self._busy_total += now - self._busy_since
                self._busy_since = None

    def start(self) -> None:
        self._thread.start()

    def submit(self, push: Push, timeout: float) -> None:
        """Enqueues push, waiting up to timeout while the queue is full (raises queue.Full)."""
        if self._stopped:
            raise LearnerStopped
        push.enqueued = time.perf_counter()
        self._queue.put(push, timeout=timeout)

    def stop(self) -> None:
        """Applies what is queued, then ends the thread; later pushes raise LearnerStopped."""
        if self._stopped:
            return
        self._stopped = True
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join()

    def _take(self) -> tuple[list[Push], bool]:
        """Waits for a push, then takes up to batch - 1 more that are already queued.
        Returns the pushes and whether the stop mark was met."""
        first = self._queue.get()
        if first is None:
            return [], True
        pushes = [first]
        while len(pushes) < self._batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return pushes, True
            pushes.append(nxt)
        return pushes, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            pushes, stopping = self._take()
            if not pushes:
                continue
            self._set_busy(True)
            now = time.perf_counter()
            for push in pushes:
                self._m.queue_wait.labels(push.mode).observe(now - push.enqueued)
            try:
                self._apply_all(pushes)
            except Exception as err:  # noqa: BLE001 - reported to the pushing workers
                log.exception("role=server learner failed on %d pushes", len(pushes))
                for push in pushes:
                    push.result.set_exception(err)
            else:
                for push in pushes:
                    push.result.set_result(push.outcome)
            finally:
                self._set_busy(False)

    def _apply_all(self, pushes: list[Push]) -> None:
        """One update per mode present: data pushes as one batch of rollouts, gradient
        pushes as one apply of their summed (or averaged) gradients."""
        live = []
        for push in pushes:
            lost = tuple(
                s.lease_id
                for s in push.slots
                if not self._budget.renew(s.lease_id, push.worker_id, s.steps)
            )
            if lost:
                self._m.refused.labels("lease_lost").inc()
                self._settle(push, self.version, trained=False, lost=lost)
            elif self._max_lag and self.version - push.base_version > self._max_lag:
                self._m.stale.labels(push.mode).inc()
                self._settle(push, self.version, trained=False)
            else:
                live.append(push)
        self._trainer.set_progress(self._budget.progress)
        data = [p for p in live if p.mode == "data"]
        grads = [p for p in live if p.mode == "gradient"]
        if data:
            self._update(data, "data")
        if grads:
            self._update(grads, "gradient")

    def _diagnosis_due(self, now: float) -> bool:
        last = self._last_diagnosis
        return last is None or now - last[0] >= self._diagnose_seconds

    def _statistics_summary(self, stats: Statistics) -> dict[str, float]:
        """A few numbers of the running statistics, to the metrics; by TensorBoard name."""
        out = {}
        for quantity in ("obs", "returns"):
            moments = getattr(stats, quantity)
            values = {
                "samples": moments.count,
                "mean_abs_mean": float(np.abs(moments.mean).mean()),
                "std_mean": float(np.sqrt(moments.var).mean()),
            }
            for name, value in values.items():
                self._m.normalization[name].labels(quantity).set(value)
                out[f"normalization/{quantity}_{name}"] = value
        return out

    def _record(self, mode: str, diagnostics: dict, has_log_probs: bool) -> None:
        """The diagnostics of one update, to the metrics and TensorBoard."""
        m = self._m
        m.diagnosed.labels(mode).inc()
        diagnostics = {
            k: v
            for k, v in diagnostics.items()
            if not math.isnan(v) and (has_log_probs or k not in OFF_POLICY_DIAGNOSTICS)
        }
        for name, gauge in m.diagnostics.items():
            if name in diagnostics:
                gauge.set(diagnostics[name])
        for network in ("actor", "critic"):
            norm = diagnostics[f"{network}_grad_norm"]
            m.grad_norm.labels(network).set(norm)
            m.learning_rate.labels(network).set(diagnostics[f"{network}_lr"])
            if self._clip > 0 and norm > self._clip:
                m.grad_clipped.labels(network).inc()
        now, steps = time.monotonic(), self._runlog.env_steps
        last = self._last_diagnosis
        self._last_diagnosis = (now, steps)
        if self._summaries is None:
            return
        values = {k if "/" in k else f"learner/{k}": v for k, v in diagnostics.items()}
        if last is not None and now > last[0]:
            values["throughput/env_steps_per_s"] = (steps - last[1]) / (now - last[0])
        self._summaries.scalars(steps, values)

    def _update(self, pushes: list[Push], mode: str) -> None:
        start = time.perf_counter()
        diagnose = self._diagnosis_due(time.monotonic())
        diagnostics = None
        if mode == "gradient":
            total = pushes[0].grads if len(pushes) == 1 else np.sum([p.grads for p in pushes], 0)
            if self._reduce == "mean" and len(pushes) > 1:
                total = total / len(pushes)
            if diagnose:
                flat, diagnostics = self._trainer.gradient_step(total, diagnostics=True)
            else:
                flat = self._trainer.gradient_step(total)
            self._m.apply.labels(mode).observe(time.perf_counter() - start)
        else:
            batch = pushes[0].batch if len(pushes) == 1 else concat([p.batch for p in pushes])
            split = self._updates % self._split_every == 0
            if diagnose and not split:
                flat, diagnostics = self._trainer.data_step(batch, diagnostics=True)
            elif split:
                # Sampled: computing and applying in two calls costs more than one fused call.
                grads = self._trainer.gradients(batch)
                mid = time.perf_counter()
                flat = self._trainer.gradient_step(grads)
                self._m.compute.labels(mode).observe(mid - start)
                self._m.apply.labels(mode).observe(time.perf_counter() - mid)
            else:
                flat = self._trainer.data_step(batch)
        self._m.update.labels(mode).observe(time.perf_counter() - start)
        self._updates += 1
        version = self.version + 1
        stats = self._snapshot[2]
        if stats is not None:
            stats = merge_all([stats, *(p.increments for p in pushes if p.increments)])
        self._snapshot = (version, flat, stats)
        if diagnostics is not None:
            if stats is not None:
                diagnostics.update(self._statistics_summary(stats))
            self._record(mode, diagnostics, all(p.has_log_probs for p in pushes))
        self._m.updates.labels(mode).inc()
        self._m.batch.labels(mode).observe(len(pushes))
        self._m.version.set(version)
        for push in pushes:
            self._settle(push, version)
        self._on_update(version, flat, stats)

    def _settle(
        self, push: Push, version: int, trained: bool = True, lost: tuple[int, ...] = ()
    ) -> None:
        """Acknowledges a push: trained on (applied to make `version`), or not (too stale,
        or a lease lost); either way the steps and episode ends of its live slots count."""
        push.outcome = Outcome(version, lost)
        push.batch = push.grads = push.increments = None  # a resend needs only the reply
        if trained:
            self._m.pushes_applied.labels(push.mode).inc()
            self._m.policy_lag.labels(push.mode).observe(version - 1 - push.base_version)
        for slot in push.slots:
            if slot.lease_id in lost:
                continue
            self._m.env_steps.inc(slot.steps)
            self._runlog.add_steps(slot.steps)
            if slot.episode_end:
                episode = self._budget.complete(slot.lease_id)
                self._runlog.episode(
                    episode, push.worker_name, slot.episode_return, slot.episode_length, version
                )
                self._m.episodes.inc()
                self._m.episode_return.observe(slot.episode_return)
                if self._summaries is not None:
                    self._summaries.scalars(
                        self._runlog.env_steps,
                        {"episode/return": slot.episode_return,
                         "episode/length": float(slot.episode_length)},
                    )  # fmt: skip
                self._m.return_mean.set(self._runlog.recent_mean())
                self._on_episode(episode)


def concat(batches: list[Batch]) -> Batch:
    """Stacks padded batches along the batch axis: one gradient step over all rollouts."""
    return Batch(*(np.concatenate(fields, axis=0) for fields in zip(*batches)))
