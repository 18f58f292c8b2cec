"""Builds the server's parts (networks, learner, budget, servicer) and closes them in order."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import keras

from a3c.algo import Trainer
from a3c.config import ServerConfig, TrainConfig
from a3c.model import EnvSpec, build_actor, build_critic
from server.budget import Budget
from server.learner import Learner
from server.metrics import ServerMetrics
from server.runlog import RunLog
from server.servicer import ParameterServer
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
        self.metrics = metrics or ServerMetrics()
        self.trainer = Trainer(build_actor(spec, tcfg), build_critic(spec, tcfg), spec, tcfg)
        self.budget = Budget(tcfg.max_episodes, scfg.lease_timeout)
        self.registry = Registry()
        self.runlog = RunLog(run_dir / "returns.csv")
        self._save_every = scfg.save_every
        self.learner = Learner(
            self.trainer, self.budget, self.runlog, scfg.queue_size, self.metrics, self._on_episode
        )
        self.servicer = ParameterServer(
            tcfg, spec, self.learner, self.budget, self.registry, self.metrics
        )
        self.metrics.budget.set(tcfg.max_episodes)
        self.metrics.workers.set_function(lambda: self.registry.active(scfg.lease_timeout))

    def _on_episode(self, episode: int) -> None:
        if self._save_every and episode % self._save_every == 0:
            self.save()

    def save(self) -> None:
        """actor.weights.h5 and critic.weights.h5, each replaced atomically."""
        for model, name in ((self.trainer.actor, "actor"), (self.trainer.critic, "critic")):
            tmp = self.run_dir / f".{name}.tmp.weights.h5"
            model.save_weights(tmp)
            os.replace(tmp, self.run_dir / f"{name}.weights.h5")
        self.metrics.checkpoints.inc()

    def close(self) -> None:
        """Applies what is queued, saves the final weights, closes the returns log."""
        self.learner.stop()
        self.save()
        self.runlog.close()
        log.info("role=server saved weights to %s", self.run_dir)
