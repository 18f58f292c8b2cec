"""Builds the server's parts (networks, learner, budget, servicer) and closes them in order."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import keras

from a3c.config import ServerConfig, TrainConfig
from a3c.envs import EnvSpec, env_defaults
from a3c.model import build_actor, build_critic
from a3c.normalization import Statistics
from a3c.trainer import Trainer
from server import checkpoints
from server.budget import Budget
from server.evaluations import Evaluations
from server.learner import Learner
from server.metrics import ServerMetrics
from server.runlog import RunLog
from server.servicer import ParameterServer
from server.summaries import Summaries
from server.workers import Registry

log = logging.getLogger("server")


class App:
    """Everything a running parameter server holds, wired together."""

    def __init__(
        self,
        tcfg: TrainConfig,
        scfg: ServerConfig,
        spec: EnvSpec,
        run_dir: Path,
        metrics: ServerMetrics | None = None,
    ):
        keras.utils.set_random_seed(tcfg.seed)
        self.run_dir = run_dir
        defaults = env_defaults(tcfg.env_id, tcfg.env_kwargs)
        self.metrics = metrics or ServerMetrics(return_buckets=defaults.buckets)
        self.trainer = Trainer(build_actor(spec, tcfg), build_critic(spec, tcfg), spec, tcfg)
        self._train_config = json.loads(tcfg.to_json())
        restored = checkpoints.restore(run_dir, self.trainer, self._train_config)
        start, statistics = restored or (
            checkpoints.Counters(0, 0, 0, 0.0, self._train_config),
            None,
        )
        if tcfg.running_normalization and statistics is None:
            statistics = Statistics.zeros(spec.obs_dim)
        if restored:
            log.info(
                "role=server resumed from %s: episode %d, version %d, %d env steps",
                run_dir / checkpoints.NAME, start.episodes, start.version, start.env_steps,
            )  # fmt: skip
        self.budget = Budget(
            tcfg.max_episodes, scfg.lease_timeout, completed=start.episodes,
            max_env_steps=tcfg.max_env_steps, episode_steps=spec.time_limit or 1000,
            trained_steps=start.env_steps,
        )  # fmt: skip
        self.budget.on_reissue = self.metrics.leases_reissued.inc
        self.metrics.leases_held.set_function(lambda: self.budget.held)
        self.registry = Registry()
        try:
            self.runlog = RunLog(
                run_dir / "returns.csv",
                keep_episodes=start.episodes,
                env_steps=start.env_steps,
                seconds=start.seconds,
                thresholds=defaults.thresholds,
            )
        except ValueError as err:
            raise checkpoints.CheckpointError(str(err)) from err
        self._every, self._every_seconds = scfg.checkpoint_every, scfg.checkpoint_seconds
        self._last_checkpoint = time.monotonic()
        self.summaries = Summaries(run_dir / "tensorboard")
        self.evaluations = Evaluations(
            run_dir / "evals.csv", tcfg.eval_every, self.metrics, self.summaries,
            resume_at=start.env_steps,
        )  # fmt: skip
        self.learner = Learner(
            self.trainer, self.budget, self.runlog, scfg.queue_size, self.metrics,
            self._on_episode, version=start.version,
            batch=scfg.learner_batch, reduce=scfg.learner_reduce,
            max_policy_lag=tcfg.max_policy_lag, summaries=self.summaries,
            grad_clip_norm=tcfg.grad_clip_norm, statistics=statistics,
            on_update=lambda version, flat, stats: self.evaluations.after_update(
                self.runlog.env_steps, self.runlog.seconds, version, flat, stats
            ),
        )  # fmt: skip
        self.metrics.episodes.inc(start.episodes)
        self.metrics.env_steps.inc(start.env_steps)
        self.servicer = ParameterServer(
            tcfg, spec, self.learner, self.budget, self.registry, self.metrics,
            queue_timeout=scfg.queue_timeout, evaluations=self.evaluations,
        )  # fmt: skip
        self.metrics.budget.set(tcfg.max_episodes)
        self.metrics.workers.set_function(lambda: self.registry.active(scfg.lease_timeout))

    def _on_episode(self, episode: int) -> None:
        """Runs in the learner thread between pushes, so the state is consistent."""
        due_by_count = self._every and episode % self._every == 0
        due_by_time = (
            self._every_seconds and time.monotonic() - self._last_checkpoint >= self._every_seconds
        )
        if due_by_count or due_by_time:
            self.save()

    def save(self) -> None:
        """A checkpoint, and actor/critic.weights.h5 (with running normalization, and
        normalization.npz) for the tools, each replaced atomically.

        Called from the learner thread, or after it stopped."""
        for model, name in ((self.trainer.actor, "actor"), (self.trainer.critic, "critic")):
            tmp = self.run_dir / f".{name}.tmp.weights.h5"
            model.save_weights(tmp)
            os.replace(tmp, self.run_dir / f"{name}.weights.h5")
        statistics = self.learner.snapshot()[2]
        if statistics is not None:
            checkpoints.write_statistics(self.run_dir, statistics)
        counters = checkpoints.Counters(
            version=self.learner.version,
            episodes=self.budget.completed,
            env_steps=self.runlog.env_steps,
            seconds=self.runlog.seconds,
            train_config=self._train_config,
        )
        checkpoints.write(self.run_dir, self.trainer, counters, statistics)
        self._last_checkpoint = time.monotonic()
        self.metrics.checkpoints.inc()

    def finish_training(self) -> None:
        """Once the budget is spent: applies what is queued; the final weights become the
        last evaluation point."""
        self.learner.stop()
        version, flat, stats = self.learner.snapshot()
        self.evaluations.finish(self.runlog.env_steps, self.runlog.seconds, version, flat, stats)

    def close(self) -> None:
        """Applies what is queued, saves the final weights, closes the returns log."""
        self.learner.stop()
        self.save()
        self.runlog.close()
        self.evaluations.close()
        self.summaries.close()
        log.info("role=server saved weights to %s", self.run_dir)
