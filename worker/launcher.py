"""a3c-workers: runs N worker processes and stops them all on Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import time

from a3c import config
from a3c.config import WorkerConfig


def worker_command(wcfg: WorkerConfig, index: int) -> tuple[list[str], dict[str, str]]:
    """Command line and environment of worker `index`: wcfg's settings travel as A3C_*
    variables (a token stays out of `ps`); seed and metrics port are wcfg's plus index."""
    env = dict(os.environ)
    for f in dataclasses.fields(WorkerConfig):
        env["A3C_" + f.name.upper()] = str(getattr(wcfg, f.name))
    env["A3C_SEED"] = str(wcfg.seed + index)
    env["A3C_METRICS_PORT"] = str(wcfg.metrics_port + index if wcfg.metrics_port else 0)
    env["A3C_NAME"] = ""
    return [sys.executable, "-m", "worker"], env


def stop_all(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM every live process, then SIGKILL what is left after grace seconds."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run N A3C worker processes")
    parser.add_argument("-n", "--workers", type=int, default=2, help="number of workers")
    config.add_arguments(parser, WorkerConfig)
    args = parser.parse_args(argv)
    wcfg = config.resolve(WorkerConfig, args, os.environ)
    commands = [worker_command(wcfg, i) for i in range(args.workers)]
    procs = [subprocess.Popen(cmd, env=env) for cmd, env in commands]
    interrupted = False

    def on_signal(*_):
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not interrupted and any(p.poll() is None for p in procs):
        time.sleep(0.2)
    stop_all(procs)
    codes = [p.returncode for p in procs]
    return 0 if interrupted else max((c for c in codes if c > 0), default=0)


if __name__ == "__main__":
    sys.exit(main())
