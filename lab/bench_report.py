"""The benchmark's report: tables (bench.md), raw numbers (bench.json), a plot (bench.png)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from lab.runs import read_returns

REFERENCE_STEPS_S = 36.0  # the seed's reference code, N=2, on a 2-core machine


def learning_row(run_dir: Path, mode: str, flags: list[str]) -> dict:
    """Time to a good return, and throughput, of one finished training run."""
    returns = read_returns(run_dir)
    values = np.asarray(returns.ret, float)
    seconds = np.asarray(returns.seconds, float)
    mean20 = np.convolve(values, np.ones(20) / 20, "valid") if len(values) >= 20 else values
    row = {"mode": mode, "settings": " ".join(flags) or "defaults", "episodes": len(values)}
    for threshold in (-400, -200):
        hit = np.nonzero(mean20 >= threshold)[0]
        idx = int(hit[0]) + min(20, len(values)) - 1 if len(hit) else None
        row[f"episode_{-threshold}"] = None if idx is None else idx + 1
        row[f"seconds_{-threshold}"] = None if idx is None else float(seconds[idx])
    row["env_steps_s"] = float(returns.env_steps[-1] / max(seconds[-1], 1e-9))
    wall = run_dir / "wall_seconds"
    row["wall_seconds"] = float(wall.read_text()) if wall.exists() else float(seconds[-1])
    row["last20"] = float(values[-20:].mean())
    return row


def fmt(x, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def pair(a, b, digits: int = 1) -> str:
    return f"{fmt(a, digits)} / {fmt(b, digits)}"


def tables(r: dict) -> str:
    lim = r["limits"]
    learner4 = lim["learner"][4]
    lines = [
        "# Benchmark", "",
        "## 1. Limits on this machine (one process, no RPC)", "",
        row("what", "per second"), row("---", "---"),
        row("env steps (one Pendulum env)", fmt(lim["env_steps_s"])),
        row("worker inner loop (env step + numpy policy)", fmt(lim["worker_loop_steps_s"])),
    ]  # fmt: skip
    for steps, v in lim["learner"].items():
        what = f"{fmt(v['data_updates_s'])} updates ({fmt(v['data_steps_s'])} env steps)"
        lines.append(row(f"learner, data mode, {steps} steps per update", what))
    lines.append(row("learner, gradient applies", fmt(learner4["gradient_applies_s"])))
    if "grpc_echo" in lim:  # the floor under any gRPC Python server
        e = lim["grpc_echo"]
        lines.append(row(
            "gRPC Python bidirectional echo, 28 KB reply, one client (server CPU per message)",
            f"{fmt(e['round_trips_s'])} round trips ({fmt(e['server_cpu_ms'], 2)} ms)",
        ))  # fmt: skip
    lines += ["", "## 2. End to end (real workers)", "",
              row("mode", "N / pushes in flight", "env steps/s", "x reference", "updates/s",
                  "learner busy",
                  "push p50 / p99 ms", "queue wait p50 / p99 ms", "policy lag p50 / p99",
                  "share of learner limit", "worker RSS MB"),
              row(*["---"] * 11)]  # fmt: skip
    for mode, rows in r["e2e"].items():
        # A push is t_max = 4 steps: the learner alone trains this many steps/s.
        limit = learner4["data_steps_s"] if mode == "data" else learner4["gradient_applies_s"] * 4
        for n, v in rows.items():
            lines.append(row(
                mode, n, fmt(v["env_steps_s"]), fmt(v["env_steps_s"] / REFERENCE_STEPS_S, 1),
                fmt(v["updates_s"]), fmt(v["utilisation"], 2),
                pair(v["push_p50_ms"], v["push_p99_ms"]),
                pair(v["queue_wait_p50_ms"], v["queue_wait_p99_ms"]),
                pair(v["lag_p50"], v["lag_p99"]),
                fmt(v["env_steps_s"] / limit, 2), fmt(v["worker_rss_mb"]),
            ))  # fmt: skip
    lines += ["", "## 3-4. Server capacity: K synthetic clients replaying recorded pushes, "
              "learner batch B", "",
              row("mode", "B", "K", "env steps/s", "updates/s", "learner busy",
                  "queue wait p99 ms", "share of in-process learner at B", "server RSS MB"),
              row(*["---"] * 9)]  # fmt: skip
    for mode, per_batch in r["capacity"].items():
        for b, rows in per_batch.items():
            ref = lim["learner"].get(4 * b)
            limit = None
            if ref:  # the in-process learner at the same batch size
                limit = ref["data_steps_s"] if mode == "data" else ref["gradient_applies_s"] * 4 * b
            for k, v in rows.items():
                lines.append(row(
                    mode, b, k, fmt(v["env_steps_s"]), fmt(v["updates_s"]),
                    fmt(v["utilisation"], 2), fmt(v["queue_wait_p99_ms"], 1),
                    fmt(v["env_steps_s"] / limit, 2) if limit else "-", fmt(v["server_rss_mb"]),
                ))  # fmt: skip
    if r.get("learning"):
        lines += ["", "## 5. Time to a good return (N=2)", "",
                  row("mode", "settings", "episodes", "20-ep mean >= -400: episode / s",
                      ">= -200: episode / s", "last-20 mean", "env steps/s", "wall s"),
                  row(*["---"] * 8)]  # fmt: skip
        for x in r["learning"]:
            lines.append(row(
                x["mode"], x["settings"], x["episodes"],
                pair(x["episode_400"], x["seconds_400"], 0),
                pair(x["episode_200"], x["seconds_200"], 0), fmt(x["last20"]),
                fmt(x["env_steps_s"]), fmt(x["wall_seconds"]),
            ))  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for mode, rows in r["e2e"].items():
        for k in sorted({key.split("/")[1] if "/" in key else "1" for key in rows}):
            keys = [key for key in rows if (key.split("/")[1] if "/" in key else "1") == k]
            ns = [int(key.split("/")[0]) for key in keys]
            label = f"{mode} mode" + ("" if k == "1" else f", {k} pushes in flight")
            left.plot(ns, [rows[key]["env_steps_s"] for key in keys], "o-", label=label)
    for mode, per_batch in r["capacity"].items():
        for b, rows in per_batch.items():
            ks = list(rows)
            style = "o-" if len(ks) > 1 else "s"
            right.plot(ks, [v["env_steps_s"] for v in rows.values()], style,
                       label=f"{mode}, learner batch {b}")  # fmt: skip
    first = r["limits"]["learner"][4]
    for ax in (left, right):
        ax.axhline(first["data_steps_s"], ls="--", c="grey", label="learner limit, data, 4 steps")
        ax.axhline(first["gradient_applies_s"] * 4, ls=":", c="grey",
                   label="learner limit, gradient applies x 4 steps")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_ylabel("trained env steps/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    left.set_xlabel("workers N")
    left.set_title("End to end: real workers")
    right.set_xlabel("synthetic clients K")
    right.set_title("Server capacity: replayed pushes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(results: dict, out: Path) -> str:
    text = tables(results)
    (out / "bench.md").write_text(text)
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    plot(results, out / "bench.png")
    return text
