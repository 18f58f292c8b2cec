"""Writes dashboards/a3c.json, the Grafana dashboard: `python deploy/grafana/build_dashboard.py`.

Edit the panels here, not the JSON; a test fails when the two disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards" / "a3c.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"


def q(expr: str, legend: str = "") -> dict:
    return {"expr": expr, "legendFormat": legend, "datasource": DS}


def quantiles(metric: str, by: str, legend: str) -> list[dict]:
    """p50 and p99 of a histogram, by one label."""
    return [
        q(
            f"histogram_quantile({p}, sum by (le, {by}) (rate({metric}_bucket[{RI}])))",
            f"p{int(p * 100)} {legend}",
        )
        for p in (0.5, 0.99)
    ]


# (title, unit, description, queries, extra fieldConfig defaults)
ROWS: list[tuple[str, list[tuple[str, str, str, list[dict], dict]]]] = [
    ("Throughput", [
        ("Env steps trained per second", "suffix: steps/s",
         "Env steps in the pushes the learner applied, per second.",
         [q(f"sum(rate(a3c_server_env_steps_total[{RI}]))", "trained")], {}),
        ("Updates per second, by mode", "suffix: updates/s",
         "Updates applied to the global networks per second, gradient vs data pushes.",
         [q(f"sum by (mode) (rate(a3c_server_updates_total[{RI}]))", "{{mode}}")], {}),
    ]),
    ("The bottleneck: the central learner", [
        ("Learner utilisation", "percentunit",
         "Share of time the single learner thread is busy; near 100% it is the bottleneck.",
         [q(f"rate(a3c_server_learner_busy_seconds_total[{RI}])", "utilisation")],
         {"min": 0, "max": 1}),
        ("Learner queue depth", "short",
         "Pushes waiting for the learner, against the queue's bound.",
         [q("a3c_server_learner_queue_depth", "depth"),
          q("a3c_server_learner_queue_capacity", "capacity")], {"min": 0}),
        ("Queue wait p50 / p99", "s",
         "How long a push waits in the learner queue before it is applied.",
         quantiles("a3c_server_learner_queue_wait_seconds", "mode", "{{mode}}"), {}),
        ("Compute vs apply time per update", "s",
         "Mean seconds per update, whole and split: gradient computation (data mode, sampled) "
         "and clip + Adam apply.",
         [q(f"sum by (mode) (rate(a3c_server_learner_update_seconds_sum[{RI}])) / "
            f"sum by (mode) (rate(a3c_server_learner_update_seconds_count[{RI}]))",
            "update {{mode}}"),
          q(f"sum by (mode) (rate(a3c_server_learner_compute_seconds_sum[{RI}])) / "
            f"sum by (mode) (rate(a3c_server_learner_compute_seconds_count[{RI}]))",
            "compute {{mode}}"),
          q(f"sum by (mode) (rate(a3c_server_learner_apply_seconds_sum[{RI}])) / "
            f"sum by (mode) (rate(a3c_server_learner_apply_seconds_count[{RI}]))",
            "apply {{mode}}")], {}),
        ("RPC latency p50 / p99, by method", "s",
         "Unary calls end to end; pushes from receipt to reply (includes queue wait and apply).",
         quantiles("a3c_server_rpc_duration_seconds", "method", "{{method}}"), {}),
        ("RPC traffic, by method", "Bps",
         "Request and response bytes per second.",
         [q(f"sum by (method) (rate(a3c_server_rpc_received_bytes_total[{RI}]))", "in {{method}}"),
          q(f"sum by (method) (rate(a3c_server_rpc_sent_bytes_total[{RI}]))", "out {{method}}")],
         {}),
    ]),
    ("Policy lag", [
        ("Policy lag p50 / p99, by mode", "short",
         "Versions between the weights a push was computed from and those it was applied to.",
         quantiles("a3c_server_policy_lag_versions", "mode", "{{mode}}"), {"min": 0}),
        ("Pushes refused or dropped as stale", "suffix: pushes/s",
         "Pushes not applied: invalid input, lost leases, a full queue, unknown workers; and "
         "pushes acknowledged but dropped as older than --max-policy-lag versions.",
         [q(f"sum by (reason) (rate(a3c_server_pushes_refused_total[{RI}]))", "{{reason}}"),
          q(f"sum by (mode) (rate(a3c_server_pushes_stale_total[{RI}]))", "stale {{mode}}")],
         {}),
    ]),
    ("Training", [
        ("Episode return", "short",
         "Mean raw return of the last 20 trained episodes (Pendulum: random ~-1200, good ~-150).",
         [q("a3c_server_episode_return_mean20", "mean of last 20")], {}),
        ("Episodes vs budget", "short",
         "Episodes trained so far against the budget the server enforces exactly.",
         [q("a3c_server_episodes_total", "trained"), q("a3c_server_episode_budget", "budget")],
         {"min": 0}),
        ("Weights version", "short", "Updates applied since the start.",
         [q("a3c_server_weights_version", "version")], {}),
    ]),
    ("Learning", [
        ("Losses per step", "short",
         "Policy-gradient loss -log pi * A and value loss (y - V)^2 per step, of the latest "
         "diagnosed update (sampled in data mode, a few per second).",
         [q("a3c_server_learner_policy_loss", "policy"),
          q("a3c_server_learner_value_loss", "value")], {}),
        ("Policy entropy and std", "short",
         "Entropy of the policy (nats) and, for continuous actions, its standard deviation: "
         "falling to nothing early means it stopped exploring.",
         [q("a3c_server_learner_entropy", "entropy"),
          q("a3c_server_learner_policy_std", "std")], {}),
        ("Critic: explained variance and mean value", "short",
         "1 - Var(y - V) / Var(y): near 1 the critic predicts its targets, at or below 0 it "
         "predicts nothing; and the mean value estimate.",
         [q("a3c_server_learner_explained_variance", "explained variance"),
          q("a3c_server_learner_value_mean", "mean V")], {}),
        ("Advantages", "short",
         "Mean and std of the advantages before normalisation: a mean far from 0 is a "
         "critic that lags its targets.",
         [q("a3c_server_learner_advantage_mean", "mean"),
          q("a3c_server_learner_advantage_std", "std")], {}),
        ("Gradient norm before clipping", "short",
         "Global norm of each network's gradient at the latest diagnosed update, before "
         "--grad-clip-norm; and the share of diagnosed updates it clipped.",
         [q("a3c_server_learner_grad_norm", "norm {{network}}"),
          q(f"sum by (network) (rate(a3c_server_learner_grad_clipped_total[{RI}])) / "
            f"scalar(sum(rate(a3c_server_learner_diagnosed_updates_total[{RI}])))",
            "clipped {{network}}")], {}),
        ("Learning rates", "short", "Adam's current learning rate of each network.",
         [q("a3c_server_learner_learning_rate", "{{network}}")], {"min": 0}),
        ("Off-policy: |log pi/mu| and V-trace truncation", "short",
         "How far the learner's policy is from the weights that chose the actions (data "
         "mode), and the fraction of steps whose ratio V-trace truncates.",
         [q("a3c_server_learner_log_ratio_abs_mean", "|log pi/mu|"),
          q("a3c_server_learner_vtrace_truncated_ratio", "truncated")], {"min": 0}),
        ("Running normalization statistics", "short",
         "With --obs-normalization or --reward-normalization running: the mean over "
         "dimensions of |mean| and of the std the server keeps for observations and "
         "discounted returns (std 1 and mean 0 while it keeps none).",
         [q("a3c_server_normalization_mean_abs_mean", "|mean| {{quantity}}"),
          q("a3c_server_normalization_std_mean", "std {{quantity}}")], {}),
    ]),
    ("Workers", [
        ("Workers connected", "short",
         "Workers seen lately and not yet told the budget is spent.",
         [q("a3c_server_workers_connected", "connected")], {"min": 0}),
        ("Where worker time goes", "percentunit",
         "Share of the workers' wall time by phase: env step, inference, gradients, RPC wait.",
         [q(f"sum by (phase) (rate(a3c_worker_seconds_total[{RI}])) / "
            f"scalar(count(count by (instance) (a3c_worker_seconds_total)))", "{{phase}}")],
         {"min": 0}),
        ("Worker env steps per second", "suffix: steps/s",
         "Env steps the workers take, summed over workers.",
         [q(f"sum(rate(a3c_worker_env_steps_total[{RI}]))", "steps")], {}),
        ("Worker RPC errors, by code", "suffix: errors/s",
         "Failed RPCs seen by workers (reconnects, a full queue, a restarting server).",
         [q(f"sum by (code) (rate(a3c_worker_rpc_errors_total[{RI}]))", "{{code}}")], {}),
    ]),
]  # fmt: skip


def panel(pid: int, x: int, y: int, title, unit, description, targets, extra) -> dict:
    for ref, target in zip("ABCDEFGH", targets):
        target["refId"] = ref
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, **extra}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": targets,
    }


def dashboard() -> dict:
    panels, pid, y = [], 1, 0
    for row_title, row_panels in ROWS:
        panels.append(
            {"id": pid, "type": "row", "title": row_title, "collapsed": False,
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}
        )  # fmt: skip
        pid, y = pid + 1, y + 1
        for i, spec in enumerate(row_panels):
            panels.append(panel(pid, (i % 3) * 8, y + (i // 3) * 8, *spec))
            pid += 1
        y += 8 * ((len(row_panels) + 2) // 3)
    return {
        "uid": "a3c-grpc",
        "title": "A3C parameter server",
        "description": "Distributed A3C: throughput, the central learner, policy lag, training.",
        "tags": ["a3c", "reinforcement-learning"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },  # fmt: skip
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    sys.exit(0)
