"""The worker process (a3c-worker): composition root."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import threading

from a3c import config
from a3c.config import WorkerConfig
from a3c.model import EnvSpecError


def main(argv: list[str] | None = None) -> int:
    (wcfg,) = config.parse([WorkerConfig], argv, "A3C worker")
    if wcfg.mode not in ("gradient", "data"):
        print(f"a3c-worker: --mode must be gradient or data, not {wcfg.mode!r}", file=sys.stderr)
        return 2
    if wcfg.max_in_flight < 1:
        print("a3c-worker: --max-in-flight must be at least 1", file=sys.stderr)
        return 2
    if not wcfg.name:
        wcfg = dataclasses.replace(wcfg, name=f"{socket.gethostname()}:{os.getpid()}")
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s [{wcfg.name}] %(message)s",
        stream=sys.stdout,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from worker.loop import run
    from worker.metrics import WorkerMetrics

    metrics = WorkerMetrics()
    if wcfg.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(wcfg.metrics_port, registry=metrics.registry)
        except OSError as err:  # metrics are optional for a worker: train anyway
            logging.warning("role=worker no metrics on port %d: %s", wcfg.metrics_port, err)
    try:
        return run(wcfg, stop, metrics)
    except EnvSpecError as err:
        print(f"a3c-worker: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
