"""a3c-soak: one server at full speed for minutes, its memory and its workers' sampled.

`make soak MINUTES=30`: a parameter server (checkpoints, returns.csv, TensorBoard and
metrics on, as in a real run) trains Pendulum-v1 from 2 data-mode workers and 1 gradient-mode
worker of 16 environments each, at full speed, with an episode budget it never reaches.
Every --interval seconds it samples the resident memory (VmRSS) of the server and of each
worker and the server's trained env steps. It writes soak.csv, soak.png and soak.md into
--out and prints the table: per process, RSS at the first sample after minute 1 and at
the end, and the growth after minute 1 in MB per hour (least squares over those samples).
A stall (an interval with no env step trained) fails the run (exit 1). Flags it does not
know go to the server (e.g. --checkpoint-every 0).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lab import scrape
from lab.bench import Server, rss_mb, stop

WORKERS = (("data", 0), ("data", 1), ("gradient", 2))
"""(mode, seed) of each worker process."""


def growth_mb_per_hour(seconds: np.ndarray, mb: np.ndarray, after: float = 60.0) -> float:
    """The least-squares slope of mb over seconds, samples from `after` on, in MB/hour."""
    keep = seconds >= after
    if keep.sum() < 2:
        return float("nan")
    slope = np.polyfit(seconds[keep], mb[keep], 1)[0]
    return float(slope * 3600)


def write_plot(path: Path, seconds: np.ndarray, columns: dict[str, np.ndarray], rate) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6), dpi=110)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    minutes = seconds / 60
    for name, mb in columns.items():
        top.plot(minutes, mb, marker=".", label=name)
    top.set_ylabel("resident memory (MB)")
    top.legend(loc="best", fontsize="small")
    top.grid(alpha=0.3)
    bottom.plot(minutes[1:], rate, marker=".", color="tab:green")
    bottom.set_ylabel("trained env steps/s")
    bottom.set_xlabel("minutes")
    bottom.grid(alpha=0.3)
    fig.suptitle("a3c-soak: 2 data + 1 gradient workers x 16 environments, Pendulum-v1")
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--num-envs", type=int, default=16, help="environments per worker")
    parser.add_argument(
        "--out", type=Path, default=Path("runs") / time.strftime("soak-%Y%m%d-%H%M%S")
    )
    args, server_flags = parser.parse_known_args(argv)  # the rest go to the server
    args.out.mkdir(parents=True, exist_ok=True)
    server = Server(args.out / "run", "--preset", "fast", "--checkpoint-every", "50",
                    "--checkpoint-seconds", "60", *server_flags)  # fmt: skip
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker",
                "--server",
                server.address,
                "--mode",
                mode,
                "--seed",
                str(seed),
                "--num-envs",
                str(args.num_envs),
                "--name",
                f"{mode}{seed}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for mode, seed in WORKERS
    ]
    names = ["server", *(f"{mode} worker {seed}" for mode, seed in WORKERS)]
    pids = [server.proc.pid, *(w.pid for w in workers)]
    rows: list[list[float]] = []
    stalled = False
    try:
        server.wait_steps(1)  # every worker has connected, traced and pushed once or so
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            steps = scrape.value(server.samples(), "a3c_server_env_steps_total")
            rows.append([elapsed, steps, *(rss_mb(p) for p in pids)])
            mb = "  ".join(f"{n} {m:.0f}" for n, m in zip(names, rows[-1][2:]))
            print(f"soak: {elapsed / 60:5.1f} min  {steps:12.0f} env steps  RSS MB: {mb}",
                  flush=True)  # fmt: skip
            if len(rows) > 1 and rows[-1][1] <= rows[-2][1]:
                stalled = True
                print("a3c-soak: no env step trained in the last interval (a stall)")
            if any(w.poll() is not None for w in workers) or server.proc.poll() is not None:
                print("a3c-soak: a process exited", file=sys.stderr)
                stalled = True
            if stalled or elapsed >= args.minutes * 60:
                break
            time.sleep(max(0.0, start + len(rows) * args.interval - time.monotonic()))
    finally:
        stop(workers)
        server.stop()
    table = np.asarray(rows)
    seconds, columns = table[:, 0], dict(zip(names, table[:, 2:].T))
    with open(args.out / "soak.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["seconds", "env_steps", *(n.replace(" ", "_") + "_rss_mb" for n in names)])
        out.writerows([[f"{v:.1f}" for v in row] for row in rows])
    rate = np.diff(table[:, 1]) / np.maximum(np.diff(seconds), 1e-9)
    write_plot(args.out / "soak.png", seconds, columns, rate)
    after = seconds >= 60.0
    first = int(np.argmax(after)) if after.any() else 0
    lines = [
        f"Soak: {seconds[-1] / 60:.1f} minutes, {table[-1, 1]:,.0f} env steps trained "
        f"({np.mean(rate) if len(rate) else 0:,.0f}/s), RSS sampled every {args.interval:g} s.",
        "",
        "| process | RSS after minute 1 (MB) | RSS at the end (MB) | growth after minute 1 "
        "(MB/hour) |",
        "|---|---|---|---|",
    ]
    for name, mb in columns.items():
        growth = growth_mb_per_hour(seconds, mb)
        lines.append(f"| {name} | {mb[first]:.0f} | {mb[-1]:.0f} | {growth:+.1f} |")
    text = "\n".join(lines) + "\n"
    (args.out / "soak.md").write_text(text)
    print(text + f"soak: {args.out / 'soak.png'}, soak.csv, soak.md")
    return 1 if stalled else 0


if __name__ == "__main__":
    sys.exit(main())
