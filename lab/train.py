"""a3c-train: a parameter server and N workers on localhost, to the end of the budget.

Flags not listed here go to the server (see a3c-server --help): --max-episodes, --run-dir,
--env-id, --seed, ... The server prints the live progress line.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from worker.launcher import stop_all


def wait_for_port(path: Path, server: subprocess.Popen, timeout: float = 120.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.1)
    return None


def wait_for_serving(port: int, server: subprocess.Popen, timeout: float = 300.0) -> bool:
    """Until the server's health service says SERVING (its port opens while TensorFlow is
    still loading): workers started then connect at once instead of backing off."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and server.poll() is None:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    return False


def record_workers(run_dir: Path, args: argparse.Namespace) -> None:
    """Adds the workers' settings to the server's config.json (a "workers" section)."""
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    config["workers"] = {
        "count": args.workers, "mode": args.mode,
        "num_envs": args.num_envs or config["train"]["num_envs"],
        "max_in_flight": args.max_in_flight,
    }  # fmt: skip
    path.write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--workers", type=int, default=2, help="number of worker processes")
    parser.add_argument("--mode", choices=("gradient", "data"), default="gradient")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and workers")
    parser.add_argument("--run-dir", default="runs/latest", help="the run folder")
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="server's Prometheus port (0: off)"
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=1,
        help="pushes a worker may have unanswered while it steps on (1: the seed's way)",
    )
    parser.add_argument(
        "--num-envs",
        type=int,
        default=0,
        help="environments each worker steps, with one push for all of them per t_max steps "
        "(0: the preset's num_envs)",
    )
    parser.add_argument(
        "--worker-metrics-port",
        type=int,
        default=0,
        help="first worker's Prometheus port; worker i gets this + i (0: off)",
    )
    args, server_args = parser.parse_known_args(argv)
    run_dir = Path(args.run_dir)
    port_file = run_dir / "server.port"
    port_file.unlink(missing_ok=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # children get Ctrl-C themselves
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0",
         "--run-dir", str(run_dir), "--seed", str(args.seed),
         "--metrics-port", str(args.metrics_port), *server_args]
    )  # fmt: skip
    port = wait_for_port(port_file, server)
    if port is None or not wait_for_serving(port, server):
        server.terminate()
        return server.wait() or 1
    record_workers(run_dir, args)
    workers = subprocess.Popen(
        [sys.executable, "-m", "worker.launcher", "-n", str(args.workers),
         "--server", f"127.0.0.1:{port}", "--mode", args.mode, "--seed", str(args.seed),
         "--connect-timeout", "30", "--metrics-port", str(args.worker_metrics_port),
         "--max-in-flight", str(args.max_in_flight), "--num-envs", str(args.num_envs)]
    )  # fmt: skip

    evaluator = subprocess.Popen(  # exits at once when the server evaluates nothing
        [sys.executable, "-m", "worker", "--role", "evaluator", "--name", "evaluator",
         "--server", f"127.0.0.1:{port}", "--connect-timeout", "30"]
    )  # fmt: skip

    def forward_sigterm(*_):
        # Only signal here: waiting inside a handler can deadlock with server.wait() below.
        for proc in (server, workers, evaluator):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward_sigterm)
    while server.poll() is None:
        if workers.poll() not in (None, 0):
            # Every worker failed: the server would wait for pushes forever.
            print("a3c-train: the workers exited early; stopping the server", file=sys.stderr)
            stop_all([server, evaluator])
            return workers.returncode
        time.sleep(0.2)
    code = server.returncode
    for proc in (workers, evaluator):
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_all([proc])
    if code == 0 and (run_dir / "returns.csv").exists():
        from lab.plot import write_curve
        from lab.runs import RunError

        try:
            print(f"learning curve: {write_curve([run_dir], run_dir / 'curve.png')}")
        except RunError as err:  # a run with no episode has no curve; the run still counts
            print(f"a3c-train: no curve: {err}", file=sys.stderr)
        print(f"run folder: {run_dir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
