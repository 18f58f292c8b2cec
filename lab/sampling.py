"""A sampling profile of a running process (py-spy, from outside it), twice: the thread
holding the GIL (the Python work; the share of samples with one says how busy the GIL is)
and every thread py-spy sees running (TensorFlow's ops and gRPC's core run without the GIL;
py-spy also counts some threads blocked in C calls, e.g. Condition.wait, as running). Each
as collapsed stacks and as the functions that take the most samples."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    """py-spy beside this interpreter (make setup installs it), else on PATH."""
    here = Path(sys.executable).with_name("py-spy")
    return str(here) if here.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, rate: int = 100) -> dict:
    """Samples pid for `seconds` holding the GIL (into out, collapsed stacks: one
    "frame;...;frame N" a line) and then as long on every thread (out with "-all" before
    its suffix), without pausing it. {"gil_busy": share of GIL samples taken, "gil": top,
    "all": top, "files"}, or {"error": why}."""
    tool = py_spy()
    if tool is None:
        return {"error": "py-spy not installed (make setup)"}
    duration = max(1, round(seconds))
    result: dict = {"files": []}
    every = out.with_name(f"{out.stem}-all{out.suffix}")
    for key, flags, path in (("gil", ["--gil"], out), ("all", [], every)):
        done = subprocess.run(
            [tool, "record", "--pid", str(pid), "--duration", str(duration), "--rate",
             str(rate), "--nonblocking", "--format", "raw", "--output", str(path), *flags],
            capture_output=True, text=True, timeout=duration + 60,
        )  # fmt: skip
        if done.returncode != 0 or not path.exists():
            return {"error": (done.stderr or done.stdout).strip()[-500:] or "py-spy failed"}
        result[key] = top(path.read_text())
        result["files"].append(path.name)
    result["gil_busy"] = min(1.0, result["gil"]["samples"] / (rate * duration))
    return result


def top(collapsed: str, n: int = 12) -> dict:
    """The n functions with the most samples on top of the stack (self) and anywhere in
    it (total), each as (share of samples, "function (file)")."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_LINE.sub(")", f) for f in stack.split(";")]
        k = int(count)
        samples += k
        own[frames[-1]] += k
        for f in set(frames):
            total[f] += k
    share = max(samples, 1)
    return {
        "samples": samples,
        "self": [(c / share, f) for f, c in own.most_common(n)],
        "total": [(c / share, f) for f, c in total.most_common(n)],
    }
