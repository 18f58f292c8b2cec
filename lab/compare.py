"""a3c-compare: trains every mode with every seed, then compares them in compare.png and .md.

Runs go one after another (each one a `lab.train` on localhost) into OUT/MODE-sSEED.
Nothing is ever deleted or trained over: a run folder whose returns.csv already holds the
whole budget (same budget, seed and env id in its config.json) is reused as it is; an
unfinished one is renamed to MODE-sSEED.incomplete-TIMESTAMP and trained afresh.
Flags this command does not know go to lab.train and on to the server (e.g.
--reward-shift 0); the reuse check does not look at them.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from a3c.config import PRESETS
from a3c.envs import env_defaults
from lab.runs import (
    FINAL_EPISODES,
    STABILITY_EPISODES,
    WINDOW,
    ModeSummary,
    RunError,
    is_complete,
    move_aside,
    moving_average,
    summarize,
)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = ("gradient", "data")
    parser.add_argument("--modes", nargs="+", choices=modes, default=list(modes))
    parser.add_argument("--presets", nargs="*", choices=tuple(PRESETS), default=[],
                        help="also compare these hyperparameter presets: every mode runs "
                        "with each (default: none named, the server's own default)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..SEEDS-1 per mode [3]")
    parser.add_argument("--episodes", type=int, default=500, help="episode budget per run")
    parser.add_argument("-n", "--workers", type=int, default=2, help="workers per run [2]")
    parser.add_argument("--num-envs", type=int, default=0,
                        help="environments per worker (0: each preset's own) [0]")  # fmt: skip
    parser.add_argument("--env-id", default=os.environ.get("A3C_ENV_ID", "Pendulum-v1"))
    parser.add_argument("--env-kwargs", default=os.environ.get("A3C_ENV_KWARGS", ""),
                        help="keyword arguments of the environment, KEY=VALUE,...")  # fmt: skip
    parser.add_argument("--thresholds", type=float, nargs="+",
                        help="returns whose first reach is reported [the environment's good "
                        "and solved returns, a3c.envs; Pendulum: -400 -200]")  # fmt: skip
    parser.add_argument("--out", type=Path,
                        default=Path("runs") / time.strftime("compare-%Y%m%d-%H%M%S"),
                        help="the comparison folder [runs/compare-TIMESTAMP]")  # fmt: skip
    args, extra = parser.parse_known_args(argv)
    if args.seeds < 1 or args.episodes < 1 or args.workers < 1:
        parser.error("--seeds, --episodes and --workers must be at least 1")
    if not args.thresholds:
        args.thresholds = env_defaults(args.env_id, args.env_kwargs).thresholds
    args.modes = list(dict.fromkeys(args.modes))
    args.presets = list(dict.fromkeys(args.presets))
    return args, extra


def train(run_dir: Path, mode: str, seed: int, args: argparse.Namespace, extra: list[str]) -> int:
    """Runs lab.train for one mode and seed to the end of the budget; its exit code."""
    cmd = [sys.executable, "-m", "lab.train", "-n", str(args.workers), "--mode", mode,
           "--seed", str(seed), "--run-dir", str(run_dir),
           "--max-episodes", str(args.episodes), "--env-id", args.env_id,
           "--env-kwargs", args.env_kwargs,
           "--num-envs", str(args.num_envs), *extra]  # fmt: skip
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # lab.train stops its server and workers on SIGTERM
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        return 130


def ensure_runs(args: argparse.Namespace, extra: list[str]) -> dict[str, list[Path]] | int:
    """Every mode's run folders, trained where needed; an exit code when training failed."""
    runs: dict[str, list[Path]] = {}
    presets: list[str | None] = list(args.presets) or [None]
    total, k = len(presets) * len(args.modes) * args.seeds, 0
    for preset, mode, seed in itertools.product(presets, args.modes, range(args.seeds)):
        k += 1
        label = mode if preset is None else f"{mode} ({preset})"
        run_dir = args.out / (f"{mode}-s{seed}" if preset is None else f"{preset}-{mode}-s{seed}")
        runs.setdefault(label, []).append(run_dir)
        flags = extra if preset is None else ["--preset", preset, *extra]
        if is_complete(run_dir, args.episodes, seed, args.env_id, preset):
            print(f"compare: [{k}/{total}] reusing {run_dir} (complete)", flush=True)
            continue
        if run_dir.exists():
            moved = move_aside(run_dir)
            print(f"compare: {run_dir} is unfinished or differs; moved it to {moved}")
        print(f"compare: [{k}/{total}] training {label} seed {seed} -> {run_dir}", flush=True)
        code = train(run_dir, mode, seed, args, flags)
        if code != 0 or not is_complete(run_dir, args.episodes, seed, args.env_id, preset):
            print(f"a3c-compare: training {label} seed {seed} failed (exit {code}); "
                  "run again to resume: finished runs are reused", file=sys.stderr)  # fmt: skip
            return code or 1
    return runs


def verdict(summaries: list[ModeSummary]) -> str:
    """One sentence, from the numbers: which mode was steadier and which reached higher."""
    if len(summaries) < 2:
        return f"Only {summaries[0].mode} was run, so there is nothing to compare."
    last = min(STABILITY_EPISODES, summaries[0].stats[0].episodes)
    steady, steady2 = sorted(summaries, key=lambda m: m.mean("spread"))[:2]
    high, high2 = sorted(summaries, key=lambda m: -m.mean("final"))[:2]
    why_steady = (
        f"std of returns over the last {last} episodes {steady.mean('spread'):.1f} "
        f"against {steady2.mean('spread'):.1f} for {steady2.mode}"
    )
    why_high = (
        f"final return {high.mean('final'):.1f} against {high2.mean('final'):.1f} for {high2.mode}"
    )
    if steady is high:
        text = f"{steady.mode} was both steadier ({why_steady}) and reached higher ({why_high})"
    else:
        text = (
            f"{steady.mode} was steadier ({why_steady}) and {high.mode} reached higher ({why_high})"
        )
    seed_spread = max(np.std([s.final for s in m.stats]) for m in (high, high2))
    if high.mean("final") - high2.mean("final") <= seed_spread:
        text += "; the gap in final return is within the spread across seeds"
    return text + "."


def table(summaries: list[ModeSummary], thresholds: list[float]) -> list[str]:
    """The markdown table: one row per mode."""
    n = min(s.episodes for m in summaries for s in m.stats)  # the headers name shrunk windows
    last = min(STABILITY_EPISODES, n)
    block, window = max(1, min(WINDOW, last // 2)), min(WINDOW, n)
    head = ["mode", "seeds", f"final return (last {min(FINAL_EPISODES, n)})"]
    head += [f"return std (last {last})", f"mean abs change of {block}-ep means"]
    for t in thresholds:
        head += [f"first episode, {window}-ep mean >= {t:g}", f"seconds, {window}-ep mean >= {t:g}"]
    head += ["env steps/s", "wall time s: total (per run)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in summaries:
        finals = [s.final for s in m.stats]
        walls = [s.wall_seconds for s in m.stats]
        drift = m.mean("drift")  # nan for 1-episode runs: no two blocks to compare
        row = [m.mode, str(len(m.stats)), f"{np.mean(finals):.1f} ± {np.std(finals):.1f}",
               f"{m.mean('spread'):.1f}", "n/a" if np.isnan(drift) else f"{drift:.1f}"]  # fmt: skip
        for t in thresholds:
            row += [m.reach_cell(t, 0), m.reach_cell(t, 1)]
        row += [f"{m.mean('steps_per_second'):.0f}", f"{sum(walls):.1f} ({np.mean(walls):.1f})"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


DEFINITIONS = f"""\
## How the numbers are computed

Per run (one mode, one seed), then over the seeds of a mode. A window longer than a run
shrinks to the whole run. Standard deviations are population ones (ddof 0).

- **final return**: the mean episode return of the run's last {FINAL_EPISODES} episodes;
  mean ± std over seeds.
- **return std**: the std of the episode returns of the run's last {STABILITY_EPISODES}
  episodes; mean over seeds. Lower is steadier.
- **mean abs change of {WINDOW}-ep means**: take the run's last L = min({STABILITY_EPISODES},
  episodes) episodes, cut them from the end into consecutive blocks of b = min({WINDOW},
  floor(L / 2)) episodes (leftovers at the start dropped), and average |m(i+1) - m(i)| over
  successive block means m(i); mean over seeds. Lower is steadier.
- **first episode, {WINDOW}-ep mean >= T**: the first episode e >= {WINDOW} whose trailing
  {WINDOW}-episode mean return (episodes e-{WINDOW - 1}..e) is >= T; median over the seeds
  that got there, with (seeds that got there / seeds). **seconds** is the server's
  wall-clock time at that episode (returns.csv `seconds`), likewise.
- **env steps/s**: env steps trained over the server's wall time, at the run's last episode;
  mean over seeds.
- **wall time**: the server's wall time at the run's last episode, summed over seeds (mean
  per run in brackets).
"""


def write_markdown(
    summaries: list[ModeSummary], thresholds: list[float], title: str, path: Path
) -> str:
    """compare.md: the table, the verdict and the definitions; returns its text."""
    lines = [f"# Comparison: {title}", "", *table(summaries, thresholds), ""]
    lines += [f"**Verdict**: {verdict(summaries)}", "", DEFINITIONS]
    text = "\n".join(lines)
    path.write_text(text)
    return text


def write_plot(
    summaries: list[ModeSummary], thresholds: list[float], title: str, path: Path
) -> None:
    """compare.png: per mode, the mean over seeds of the moving average, band min..max."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, m in enumerate(summaries):
        n = min(len(r) for r in m.returns)
        curves = np.stack([moving_average(r.ret[:n], WINDOW) for r in m.returns])
        x, colour = np.arange(1, n + 1), f"C{i % 10}"
        ax.fill_between(x, curves.min(0), curves.max(0), color=colour, alpha=0.2, lw=0,
                        label=f"{m.mode}: min..max over seeds")  # fmt: skip
        ax.plot(x, curves.mean(0), color=colour, lw=2, marker="o" if n < 10 else None,
                label=f"{m.mode}: mean over {len(m.returns)} seed(s)")  # fmt: skip
    for k, t in enumerate(thresholds):
        ax.axhline(t, color="grey", lw=0.8, ls=":", label="thresholds" if k == 0 else None)
    ax.set_title(f"{title}\n{WINDOW}-episode moving average of the return")
    ax.set_xlabel("episode")
    ax.set_ylabel(f"mean return of the last {WINDOW} episodes")
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="best", fontsize="small")
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = ensure_runs(args, extra)
    if isinstance(runs, int):
        return runs
    try:
        summaries = summarize(runs, args.thresholds)
    except RunError as err:
        print(f"a3c-compare: {err}", file=sys.stderr)
        return 2
    title = (
        f"{args.env_id}: {args.seeds} seed(s) x {args.episodes} episodes per mode, "
        f"{args.workers} workers"
    )
    write_plot(summaries, args.thresholds, title, args.out / "compare.png")
    text = write_markdown(summaries, args.thresholds, title, args.out / "compare.md")
    print(text, end="")
    print(f"wrote {args.out / 'compare.png'} and {args.out / 'compare.md'}")
    folders = " ".join(str(d) for dirs in runs.values() for d in dirs)
    print(f'to see the runs side by side in TensorBoard: make tensorboard RUN_DIR="{folders}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
