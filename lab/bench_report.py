"""The benchmark's report: tables (bench.md), raw numbers (bench.json), a plot (bench.png)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from a3c.diagnostics import DIAGNOSE_SECONDS
from lab.runs import first_reach, read_returns

DIAGNOSES_PER_S = 1 / DIAGNOSE_SECONDS

REFERENCE_STEPS_S = 36.0  # the seed's reference code, N=2, on a 2-core machine


def reach_row(values, seconds, steps, wall_seconds: float) -> dict:
    """Seconds, episodes and env steps to the first 20-episode mean >= -400 and >= -200
    (None: never), the mean of the last 50 episodes, throughput and wall time of one run.
    values, seconds (since its first trained step), steps: per finished episode."""
    values, seconds, steps = (np.asarray(x, float) for x in (values, seconds, steps))
    row = {"episodes": len(values), "wall_seconds": wall_seconds}
    for threshold in (-400, -200):
        i = first_reach(values, threshold)
        row[f"episode_{-threshold}"] = None if i is None else i + 1
        row[f"seconds_{-threshold}"] = None if i is None else float(seconds[i])
        row[f"steps_{-threshold}"] = None if i is None else int(steps[i])
    row["last50"] = float(values[-50:].mean())
    row["seconds"] = float(seconds[-1])
    row["env_steps_s"] = float(steps[-1] / max(seconds[-1], 1e-9))
    return row


def learning_row(run_dir: Path, who: str, seed: int) -> dict:
    """reach_row of one finished training run of ours."""
    returns = read_returns(run_dir)
    wall = run_dir / "wall_seconds"
    wall_s = float(wall.read_text()) if wall.exists() else float(returns.seconds[-1])
    row = reach_row(returns.ret, returns.seconds, returns.env_steps, wall_s)
    return {"who": who, "seed": seed, **row}


def peer_row(result: dict, seed: int) -> dict:
    """reach_row of one run of the SB3 A2C peer (lab/peer_sb3.py's JSON)."""
    steps, seconds, values = zip(*result["episodes"])
    row = reach_row(values, seconds, steps, result["wall_seconds"])
    row["seconds"] = result["learn_seconds"]  # what "never" costs it: its whole run
    return {"who": "SB3 A2C (RL Zoo)", "seed": seed, **row}


def median_seconds(rows: list[dict], key: str) -> float:
    """Median over seeds of rows[key], a run that never got there counting its seconds."""
    return float(np.median([r[key] if r[key] is not None else r["seconds"] for r in rows]))


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
    ]  # fmt: skip
    for m, steps_s in lim["worker_loop"].items():
        what = f"worker inner loop, {m} env{'s' if int(m) > 1 else ''} (env steps + numpy policy)"
        lines.append(row(what, fmt(steps_s)))
    for steps, v in lim["learner"].items():
        what = f"{fmt(v['data_updates_s'])} updates ({fmt(v['data_steps_s'])} env steps)"
        lines.append(row(f"learner, data mode, {steps} steps per update", what))
    lines.append(row("learner, gradient applies", fmt(learner4["gradient_applies_s"])))
    if "diagnosed_updates_s" in learner4:  # the diagnostics' cost at their sampling rate
        extra = 1 / learner4["diagnosed_updates_s"] - 1 / learner4["data_updates_s"]
        lines.append(row(
            f"learner, diagnosed data update, 4 steps (and the learner ms per second it "
            f"adds at {DIAGNOSES_PER_S:g} a second)",
            f"{fmt(learner4['diagnosed_updates_s'])} updates "
            f"({fmt(DIAGNOSES_PER_S * max(extra, 0.0) * 1000, 2)} ms)",
        ))  # fmt: skip
    if "pipeline" in lim:
        p = lim["pipeline"]
        lines.append(row(
            f"limit: env steps/s the pipeline could carry on these {p['cores']} cores "
            f"(worker loop at 16 envs and learner at 64-step updates sharing them: "
            f"cores / (1/{fmt(p['worker_loop_s'])} + 1/{fmt(p['learner_s'])}))",
            fmt(p["limit_s"]),
        ))  # fmt: skip
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
    lines += vectorized_table(r)
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
    lines += learning_table(r)
    return "\n".join(lines) + "\n"


def learning_table(r: dict) -> list[str]:
    """Time to a good return: each run, then per program the medians over its seeds."""
    if not r.get("learning"):
        return []
    lines = ["", "## 5. Time to a good return (N=2 workers; the peer in one process)", "",
             row("program", "seed", "s to 20-ep mean >= -400", "s to >= -200",
                 "env steps to >= -400", "env steps to >= -200", "episodes",
                 "last-50 mean", "env steps/s", "wall s (with start-up)"),
             row(*["---"] * 10)]  # fmt: skip
    by_who: dict[str, list[dict]] = {}
    for x in r["learning"]:
        by_who.setdefault(x["who"], []).append(x)
        lines.append(row(
            x["who"], x["seed"], fmt(x["seconds_400"], 1), fmt(x["seconds_200"], 1),
            fmt(x["steps_400"]), fmt(x["steps_200"]), x["episodes"], fmt(x["last50"]),
            fmt(x["env_steps_s"]), fmt(x["wall_seconds"], 1),
        ))  # fmt: skip
    lines += ["", row("program", "seeds", "reached -200", "median s to -200 (never: the run's s)",
                      "median env steps to -200", "median wall s"),
              row(*["---"] * 6)]  # fmt: skip
    for who, runs in by_who.items():
        reached = [x["steps_200"] for x in runs if x["steps_200"] is not None]
        lines.append(row(
            who, len(runs), f"{len(reached)}/{len(runs)}",
            fmt(median_seconds(runs, "seconds_200"), 1),
            fmt(float(np.median(reached)) if reached else None),
            fmt(float(np.median([x["wall_seconds"] for x in runs])), 1),
        ))  # fmt: skip
    return lines


def vectorized_table(r: dict) -> list[str]:
    """The vectorized-workers section: N x M, both modes, beside the SB3 A2C peer."""
    if not r.get("vectorized"):
        return []
    peer = r.get("peer")
    peer_rate = peer["env_steps_per_s"] if peer else None
    limit = r["limits"].get("pipeline", {}).get("limit_s")
    lines = ["", "## 2b. Vectorized workers: N workers x M environments each "
             "(NxM/K: K pushes in flight per worker)", "",
             row("mode", "N x M", "env steps/s", "x SB3 A2C peer", "share of limit",
                 "learner busy",
                 "push p50 / p99 ms", "policy lag p50 / p99", "wire bytes per env step",
                 "server CPU (cores)", "workers CPU (cores)", "server CPU us per env step",
                 "worker RSS MB"),
             row(*["---"] * 13)]  # fmt: skip
    for mode, rows in r["vectorized"].items():
        for key, v in rows.items():
            lines.append(row(
                mode, key, fmt(v["env_steps_s"]),
                fmt(v["env_steps_s"] / peer_rate, 2) if peer_rate else "-",
                fmt(v["env_steps_s"] / limit, 2) if limit else "-",
                fmt(v["utilisation"], 2), pair(v["push_p50_ms"], v["push_p99_ms"]),
                pair(v["lag_p50"], v["lag_p99"]), fmt(v["wire_bytes_per_step"]),
                fmt(v["server_cpu"], 2), fmt(v["workers_cpu"], 2),
                fmt(v["server_cpu_us_per_step"], 1), fmt(v["worker_rss_mb"]),
            ))  # fmt: skip
    if peer:
        s = peer["settings"]
        lines.append(row(
            "SB3 A2C (peer)", f"1 x {s.get('n_envs', 8)}", fmt(peer_rate), "1.00",
            fmt(peer_rate / limit, 2) if limit else "-", *["-"] * 8,
        ))  # fmt: skip
        lines += ["", f"Peer: stable-baselines3 {peer['versions'].get('stable_baselines3', '?')} "
                  f"A2C, RL Zoo Pendulum-v1 settings, torch CPU with 1 thread, one process; "
                  f"{peer['env_steps']:,} env steps over its learn() call."]  # fmt: skip
    else:
        lines += ["", "Peer not installed (make bench-peers): no ratio."]
    return lines + profile_tables(r)


def profile_tables(r: dict) -> list[str]:
    """The server's py-spy profiles (lab/sampling.py), one per mode: the functions with the
    most samples on top of a stack (self) and anywhere in it (total), holding the GIL, and
    on top of a stack on every thread."""
    lines = []
    for mode, rows in r.get("vectorized", {}).items():
        for key, v in rows.items():
            p = v.get("profile")
            if not p:
                continue
            lines += ["", f"## 2c. The server at {key.replace('x', ' x ')}, {mode} mode, "
                      "sampled by py-spy", ""]  # fmt: skip
            if "error" in p:
                lines.append(f"No profile: {p['error']}")
                continue
            gil, every = p["gil"], p["all"]
            lines += [row("GIL: share (self)", "function", "GIL: share (total)", "function",
                          "all threads: share (self)", "function"),
                      row(*["---"] * 6)]  # fmt: skip
            for (a, f), (b, g), (c, h) in zip(gil["self"], gil["total"], every["self"]):
                lines.append(row(fmt(a, 2), f"`{f}`", fmt(b, 2), f"`{g}`", fmt(c, 2), f"`{h}`"))
            lines.append(
                f"\nThe GIL was held in {fmt(100 * p['gil_busy'])}% of the samples "
                f"({gil['samples']:,}; all threads: {every['samples']:,}); collapsed stacks "
                f"in {' and '.join(p['files'])}."
            )
    return lines


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(18, 4.5))
    for mode, rows in (r.get("vectorized") or {}).items():
        by_n: dict[tuple[int, int], list] = {}
        for key, v in rows.items():  # "NxM" or "NxM/K"
            nm, _, k = key.partition("/")
            n, m = (int(x) for x in nm.split("x"))
            by_n.setdefault((n, int(k or 1)), []).append((m, v["env_steps_s"]))
        for (n, k), points in sorted(by_n.items()):
            ms, rates = zip(*sorted(points))
            label = f"{mode} mode, N={n}" + (f", {k} in flight" if k > 1 else "")
            middle.plot(ms, rates, "o-" if k == 1 else "s--", label=label)
    if r.get("peer"):
        middle.axhline(r["peer"]["env_steps_per_s"], ls="--", c="k", label="SB3 A2C peer")
    middle.set_xscale("log", base=2)
    middle.set_xlabel("environments per worker M")
    middle.set_ylabel("trained env steps/s")
    middle.set_title("Vectorized workers")
    middle.grid(alpha=0.3)
    middle.legend(fontsize=8)
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
