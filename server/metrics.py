"""Every Prometheus metric of the parameter server (server.rpc_metrics feeds the RPC ones).

Names follow Prometheus conventions: `a3c_server_` prefix, base units, `_total` on
counters. No label names a worker: pods churn, and Prometheus adds `pod` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

from a3c.diagnostics import DIAGNOSTICS_HELP
from a3c.envs import GENERIC_BUCKETS

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
LEARNER_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5)
LAG_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)
REFUSE_REASONS = (
    "invalid_tensor", "bad_steps", "future_version", "bad_episode", "bad_seq",
    "missing_log_probs", "unknown_worker", "wrong_mode", "bad_lease", "queue_full", "lease_lost",
    "bad_statistics", "single_rollout",
)  # fmt: skip


NORMALIZATION_GAUGES = {
    "samples": "Samples in the running normalization statistics (--obs-normalization, "
    "--reward-normalization running), by quantity: obs or returns (0: none kept).",
    "mean_abs_mean": "Mean over dimensions of |running mean|, by quantity.",
    "std_mean": "Mean over dimensions of the running standard deviation, by quantity.",
}


class ServerMetrics:
    """The server's metrics in one registry (a fresh one per server, so tests can read it)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        return_buckets: Sequence[float] = GENERIC_BUCKETS,
    ):
        """return_buckets: the episode-return histogram's, the environment's (a3c.envs)."""
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rpc_requests = Counter(
            "a3c_server_rpc_requests_total",
            "RPCs answered, by method and status code; each push on a stream counts once.",
            ["method", "code"], registry=r,
        )  # fmt: skip
        self.rpc_duration = Histogram(
            "a3c_server_rpc_duration_seconds",
            "Unary calls: the whole call; push streams: one push, received to answered.",
            ["method"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.rpc_received = Counter(
            "a3c_server_rpc_received_bytes_total", "Request message bytes received.",
            ["method"], registry=r,
        )  # fmt: skip
        self.rpc_sent = Counter(
            "a3c_server_rpc_sent_bytes_total", "Response message bytes sent.",
            ["method"], registry=r,
        )  # fmt: skip
        self.weight_encodings = Counter(
            "a3c_server_weight_encodings_total",
            "Weight sets serialized, by form (full, actor): once per version and form, "
            "whatever the number of replies that carry it.",
            ["form"], registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "a3c_server_learner_queue_depth", "Pushes waiting for the learner.", registry=r
        )
        self.queue_capacity = Gauge(
            "a3c_server_learner_queue_capacity", "Bound of the learner queue.", registry=r
        )
        self.queue_wait = Histogram(
            "a3c_server_learner_queue_wait_seconds",
            "Time a push waits in the learner queue.",
            ["mode"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.update = Histogram(
            "a3c_server_learner_update_seconds",
            "Time of one whole update: compute and apply (data mode), apply (gradient mode).",
            ["mode"], buckets=LEARNER_BUCKETS, registry=r,
        )  # fmt: skip
        self.compute = Histogram(
            "a3c_server_learner_compute_seconds",
            "Time to compute gradients from samples (data mode; a sample of the updates).",
            ["mode"], buckets=LEARNER_BUCKETS, registry=r,
        )  # fmt: skip
        self.apply = Histogram(
            "a3c_server_learner_apply_seconds",
            "Time to apply gradients, clip + Adam (data mode: a sample of the updates).",
            ["mode"], buckets=LEARNER_BUCKETS, registry=r,
        )  # fmt: skip
        self.diagnostics = {
            name: Gauge(f"a3c_server_learner_{name}", text, registry=r)
            for name, text in DIAGNOSTICS_HELP.items()
        }
        self.grad_norm = Gauge(
            "a3c_server_learner_grad_norm",
            "Global gradient norm of the latest diagnosed update, before clipping.",
            ["network"], registry=r,
        )  # fmt: skip
        self.learning_rate = Gauge(
            "a3c_server_learner_learning_rate", "Current Adam learning rate.",
            ["network"], registry=r,
        )  # fmt: skip
        self.diagnosed = Counter(
            "a3c_server_learner_diagnosed_updates_total",
            "Updates whose diagnostics were computed (sampled, at most a few per second).",
            ["mode"], registry=r,
        )  # fmt: skip
        self.grad_clipped = Counter(
            "a3c_server_learner_grad_clipped_total",
            "Diagnosed updates whose gradient norm exceeded --grad-clip-norm: over "
            "a3c_server_learner_diagnosed_updates_total, the clip fraction.",
            ["network"], registry=r,
        )  # fmt: skip
        for network in ("actor", "critic"):
            for metric in (self.grad_norm, self.learning_rate, self.grad_clipped):
                metric.labels(network)
        self.busy_source: Callable[[], float] = lambda: 0.0
        r.register(_BusyCollector(self))
        self.updates = Counter(
            "a3c_server_updates_total", "Updates applied to the global networks.",
            ["mode"], registry=r,
        )  # fmt: skip
        self.pushes_applied = Counter(
            "a3c_server_pushes_applied_total",
            "Pushes applied (with --learner-batch > 1 one update applies several).",
            ["mode"], registry=r,
        )  # fmt: skip
        self.batch = Histogram(
            "a3c_server_learner_batch_pushes",
            "Pushes per update (at most --learner-batch).",
            ["mode"], buckets=(1, 2, 4, 8, 16, 32, 64), registry=r,
        )  # fmt: skip
        self.refused = Counter(
            "a3c_server_pushes_refused_total", "Pushes not applied, by reason.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.stale = Counter(
            "a3c_server_pushes_stale_total",
            "Pushes acknowledged but not trained on: made from weights more than "
            "--max-policy-lag versions old.",
            ["mode"], registry=r,
        )  # fmt: skip
        self.resent = Counter(
            "a3c_server_pushes_resent_total",
            "Pushes received again after a lost reply: answered, not applied again.",
            registry=r,
        )
        self.policy_lag = Histogram(
            "a3c_server_policy_lag_versions",
            "Versions between a push's base version and the version it was applied to.",
            ["mode"], buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.version = Gauge(
            "a3c_server_weights_version", "Version of the global weights.", registry=r
        )
        self.env_steps = Counter(
            "a3c_server_env_steps_total", "Env steps trained (applied pushes).", registry=r
        )
        self.episodes = Counter(
            "a3c_server_episodes_total", "Episodes trained (counted against the budget).",
            registry=r,
        )  # fmt: skip
        self.budget = Gauge("a3c_server_episode_budget", "Episodes to train in all.", registry=r)
        self.leases_held = Gauge(
            "a3c_server_leases_held", "Episode leases held now: episodes in progress.",
            registry=r,
        )  # fmt: skip
        self.leases_reissued = Counter(
            "a3c_server_leases_reissued_total",
            "Episode leases given to another worker after --lease-timeout seconds of silence.",
            registry=r,
        )
        self.episode_return = Histogram(
            "a3c_server_episode_return", "Raw return of trained episodes.",
            buckets=tuple(return_buckets), registry=r,
        )  # fmt: skip
        self.return_mean = Gauge(
            "a3c_server_episode_return_mean20", "Mean return of the last 20 episodes.", registry=r
        )
        self.workers = Gauge(
            "a3c_server_workers_connected", "Workers seen lately and not yet told to stop.",
            registry=r,
        )  # fmt: skip
        self.checkpoints = Counter(
            "a3c_server_checkpoints_total", "Weight checkpoints written.", registry=r
        )
        self.eval_return = Gauge(
            "a3c_server_eval_return_mean",
            "Mean return of the deterministic policy at the latest evaluation (--eval-every).",
            registry=r,
        )
        self.eval_env_steps = Gauge(
            "a3c_server_eval_env_steps", "Trained env steps of the latest evaluation.",
            registry=r,
        )  # fmt: skip
        self.evaluations = Counter(
            "a3c_server_evaluations_total", "Evaluations reported by the evaluator.", registry=r
        )
        self.evaluations_skipped = Counter(
            "a3c_server_evaluations_skipped_total",
            "Evaluation points dropped unevaluated: the evaluator fell MAX_PENDING behind.",
            registry=r,
        )
        self.normalization = {
            name: Gauge(f"a3c_server_normalization_{name}", help_text, ["quantity"], registry=r)
            for name, help_text in NORMALIZATION_GAUGES.items()
        }
        for quantity in ("obs", "returns"):  # no statistics: count 0, the identity
            for name, gauge in self.normalization.items():
                gauge.labels(quantity).set(1.0 if name == "std_mean" else 0.0)
        for mode in ("gradient", "data"):
            for metric in (
                self.queue_wait, self.update, self.apply, self.updates, self.policy_lag,
                self.pushes_applied, self.batch, self.stale, self.diagnosed,
            ):  # fmt: skip
                metric.labels(mode)
        self.compute.labels("data")
        for reason in REFUSE_REASONS:  # zeros from the start: rate() has a series to read
            self.refused.labels(reason)


class _BusyCollector:
    """The learner's busy seconds, including the push in progress at scrape time.

    Counting a push only when it ends would credit a whole long push to one scrape
    interval, and rate() could read above 1.
    """

    def __init__(self, metrics: ServerMetrics):
        self._metrics = metrics

    def collect(self):
        family = CounterMetricFamily(
            "a3c_server_learner_busy_seconds",
            "Seconds the learner thread spent on pushes; rate() is its utilisation 0..1.",
        )
        family.add_metric([], self._metrics.busy_source())
        yield family
