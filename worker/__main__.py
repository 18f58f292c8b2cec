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
from a3c.envs import EnvSpecError
from a3c.tfimport import import_tensorflow


def main(argv: list[str] | None = None) -> int:
    (wcfg,) = config.parse([WorkerConfig], argv, "A3C worker")
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
    if wcfg.role == "evaluator":
        from worker.evaluator import run_evaluator

        try:
            return run_evaluator(wcfg, stop)
        except EnvSpecError as err:
            print(f"a3c-worker: {err}", file=sys.stderr)
            return 2
    if wcfg.mode == "gradient":
        import_tensorflow()  # for the local gradient step; data mode needs none
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
