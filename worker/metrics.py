"""Every Prometheus metric of a worker process: steps, episodes, where its time goes, RPC errors."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

PHASES = ("env", "inference", "gradients", "rpc")
EXPECTED_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "NOT_FOUND")


class WorkerMetrics:
    """A worker's metrics in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.env_steps = Counter("a3c_worker_env_steps_total", "Env steps taken.", registry=r)
        self.episodes = Counter("a3c_worker_episodes_total", "Episodes finished.", registry=r)
        self.envs = Gauge(
            "a3c_worker_envs", "Environments this worker steps (--num-envs).", registry=r
        )
        self.seconds = Counter(
            "a3c_worker_seconds_total",
            "Seconds spent by phase: env step, policy inference, gradient computation, "
            "waiting on RPCs (push and reply, episode leases).",
            ["phase"],
            registry=r,
        )
        self.rpc_errors = Counter(
            "a3c_worker_rpc_errors_total", "Failed RPCs by status code.", ["code"], registry=r
        )
        for phase in PHASES:
            self.seconds.labels(phase)
        for code in EXPECTED_CODES:
            self.rpc_errors.labels(code)
