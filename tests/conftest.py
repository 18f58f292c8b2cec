"""Shared fixtures: an in-process parameter server on a loopback port, real gRPC to it."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class LiveServer:
    app: object
    server: grpc.Server
    address: str
    channel: grpc.Channel
    stub: object


def start_live_server(run_dir: Path, tcfg=None, **server_fields) -> LiveServer:
    """App + gRPC server in this process (TensorFlow loads once per test session)."""
    from grpc_health.v1 import health

    from a3c.config import ServerConfig, TrainConfig
    from a3c.envs import env_spec, make_env
    from a3c.v1 import a3c_pb2_grpc
    from server.__main__ import build_grpc_server, set_health
    from server.app import App

    tcfg = tcfg or TrainConfig(max_episodes=10)
    run_dir.mkdir(parents=True, exist_ok=True)
    scfg = ServerConfig(
        host="127.0.0.1", port=0, metrics_port=0, run_dir=str(run_dir), **server_fields
    )
    app = App(tcfg, scfg, env_spec(make_env(tcfg.env_id)), run_dir)
    health_servicer = health.HealthServicer()
    server, port = build_grpc_server(app.servicer, health_servicer, scfg, app.metrics)
    server.start()
    app.learner.start()
    set_health(health_servicer, True)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = a3c_pb2_grpc.ParameterServerStub(channel)
    return LiveServer(app, server, f"127.0.0.1:{port}", channel, stub)


def stop_live_server(live: LiveServer) -> None:
    live.channel.close()
    live.server.stop(grace=None)
    live.app.close()


@pytest.fixture
def live_server_factory(tmp_path: Path) -> Iterator:
    """start(tcfg=None, **server_fields) -> LiveServer; all stopped after the test."""
    started: list[LiveServer] = []

    def start(tcfg=None, **server_fields) -> LiveServer:
        live = start_live_server(tmp_path / f"run{len(started)}", tcfg, **server_fields)
        started.append(live)
        return live

    yield start
    for live in started:
        stop_live_server(live)


class Output(threading.Thread):
    """A process's stdout, read line by line as it comes, so a test can wait on what the
    process says instead of sleeping (start the process with stdout=PIPE, text=True)."""

    def __init__(self, proc):
        super().__init__(daemon=True)
        self.proc = proc
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self.start()

    def run(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_for(self, *needles: str, timeout: float, after: int = 0) -> int:
        """Waits until a line (from line `after` on) contains one of needles; returns the
        number of lines read then. Fails the test at the deadline or at the output's end."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(after, len(self._lines)):
                    if any(n in self._lines[i] for n in needles):
                        return i + 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    tail = "".join(self._lines[-20:])
                    pytest.fail(f"no line with {needles} in {timeout:.0f} s; last lines:\n{tail}")
                self._cond.wait(remaining)

    @property
    def read(self) -> int:
        """Lines read so far (for wait_for's `after`)."""
        with self._cond:
            return len(self._lines)

    @property
    def text(self) -> str:
        """Everything read; all of it once the process has exited and join() returned."""
        with self._cond:
            return "".join(self._lines)
