"""a3c-plot: draws the learning curves of one or more run folders into curve.png.

Each run gets one colour: its raw episode returns faint, their 20-episode moving average
(a trailing mean; the first 19 episodes average what there is) bold. The x axis is the
episode number or the server's wall-clock seconds at the end of each episode.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lab.runs import WINDOW, RunError, env_id_of, moving_average, read_returns

X_LABELS = {"episodes": "episode", "seconds": "wall-clock time since server start (s)"}


def _label(run_dir: Path, names: list[str]) -> str:
    """A legend label: the folder's name, or its path when two runs share a name."""
    name = run_dir.resolve().name
    return str(run_dir) if names.count(name) > 1 else name


def write_curve(run_dirs: Sequence[Path | str], out_path: Path | str, x: str = "episodes") -> Path:
    """Writes the learning curves of run_dirs to out_path (a PNG); returns out_path.

    Raises RunError (a one-line message) when a folder has no readable returns.csv.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if x not in X_LABELS:
        raise ValueError(f"x must be one of {sorted(X_LABELS)}, not {x!r}")
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise RunError("no run folder given")
    runs = [(d, read_returns(d)) for d in dirs]
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    names = [d.resolve().name for d in dirs]
    for i, (run_dir, returns) in enumerate(runs):
        xs = returns.episode if x == "episodes" else returns.seconds
        colour = f"C{i % 10}"
        ax.plot(xs, returns.ret, color=colour, alpha=0.25, lw=0.8)
        ax.plot(xs, moving_average(returns.ret, WINDOW), color=colour, lw=2.2,
                label=f"{_label(run_dir, names)} ({len(returns)} episodes)")  # fmt: skip
    env_ids = sorted({env_id_of(d) for d in dirs} - {""})
    ax.set_title(
        f"Learning curve{'s' if len(dirs) > 1 else ''}"
        f"{': ' + ', '.join(env_ids) if env_ids else ''} "
        f"(faint: each episode; bold: {WINDOW}-episode moving average)"
    )
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel("episode return (sum of rewards)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--x", choices=sorted(X_LABELS), default="episodes",
                        help="x axis: episode number or wall-clock seconds [episodes]")  # fmt: skip
    parser.add_argument("--out", type=Path, help="the PNG to write [FIRST_RUN_DIR/curve.png]")
    args = parser.parse_args(argv)
    out = args.out or args.run_dirs[0] / "curve.png"
    try:
        print(f"wrote {write_curve(args.run_dirs, out, args.x)}")
    except RunError as err:
        print(f"a3c-plot: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
