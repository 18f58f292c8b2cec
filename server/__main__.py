"""The parameter server process (a3c-server): composition root, lifecycle, progress line."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from a3c import config
from a3c.config import ServerConfig, TrainConfig
from a3c.envs import EnvSpec, EnvSpecError, env_defaults, env_of, env_spec
from a3c.tfimport import import_tensorflow
from a3c.v1 import a3c_pb2, a3c_pb2_grpc
from server.handlers import add_to_server
from server.metrics import ServerMetrics
from server.rpc_metrics import MetricsInterceptor
from server.security import TokenInterceptor, server_credentials, server_token

log = logging.getLogger("server")
SERVICE = a3c_pb2.DESCRIPTOR.services_by_name["ParameterServer"].full_name
# Workers ping every few seconds to notice a dead link while a push waits for its reply.
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 10000),  # and the server notices workers that vanished
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
]


def reached_text(reached: dict[float, tuple[int, float]]) -> str:
    """'20-ep mean >= -200 at episode 120 (5.3 s) | ' for the highest threshold reached."""
    if not reached:
        return ""
    threshold = max(reached)
    episode, seconds = reached[threshold]
    return f"20-ep mean >= {threshold:g} at episode {episode} ({seconds:.1f} s) | "


def of_budget(done: int, budget: int) -> str:
    """'5/10', or '5' where there is no such budget (0)."""
    return f"{done}/{budget}" if budget else str(done)


def eval_text(evaluations) -> str:
    """'eval -180.2 ± 12.1 at 40000 | ', or '' before the first evaluation."""
    last = evaluations.last
    return f"eval {last[1]:.1f} ± {last[2]:.1f} at {last[0]} | " if last else ""


class Progress(threading.Thread):
    """Prints episodes/budget, env steps/s and the mean return of the last 20 episodes."""

    def __init__(self, runlog, budget, learner, registry, evaluations, interval: float = 1.0):
        super().__init__(name="progress", daemon=True)
        self._evaluations = evaluations
        self._runlog, self._budget = runlog, budget
        self._learner, self._registry = learner, registry
        self._interval = interval
        self._tty = sys.stdout.isatty()
        self.stopped = threading.Event()

    def line(self, rate: float) -> str:
        mean = self._runlog.recent_mean()
        return reached_text(self._runlog.reached) + (
            f"episodes {of_budget(self._budget.completed, self._budget.max_episodes)} | "
            f"env steps {of_budget(self._runlog.env_steps, self._budget.max_env_steps)} "
            f"({rate:.0f}/s) | "
            f"mean return (last 20) {'-' if mean is None else f'{mean:.1f}'} | "
            f"{eval_text(self._evaluations)}"
            f"version {self._learner.version} | queue {self._learner.queue_depth()} | "
            f"workers {self._registry.active(60.0)} ({self._registry.active(60.0, envs=True)} envs)"
        )

    def run(self) -> None:
        last_steps, last_time, last_print = 0, time.monotonic(), 0.0
        while not self.stopped.wait(self._interval):
            now = time.monotonic()
            steps = self._runlog.env_steps
            rate = (steps - last_steps) / max(now - last_time, 1e-9)
            last_steps, last_time = steps, now
            if self._tty:
                print("\r" + self.line(rate), end="", flush=True)
            elif now - last_print >= 10:
                print("progress " + self.line(rate), flush=True)
                last_print = now
        if self._tty:
            print()

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive():
            self.join()


class Deferred(a3c_pb2_grpc.ParameterServerServicer):
    """Answers UNAVAILABLE until `target` is set, so the port can open (health
    NOT_SERVING) while TensorFlow loads and a checkpoint is restored."""

    target: a3c_pb2_grpc.ParameterServerServicer | None = None


def _deferred(name: str):
    def method(self, request, context):
        if self.target is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the server is starting; retry")
        return getattr(self.target, name)(request, context)

    return method


for _name in a3c_pb2.DESCRIPTOR.services_by_name["ParameterServer"].methods_by_name:
    setattr(Deferred, _name, _deferred(_name))


def build_grpc_server(
    servicer, health_servicer, scfg: ServerConfig, metrics
) -> tuple[grpc.Server, int]:
    interceptors: list[grpc.ServerInterceptor] = [MetricsInterceptor(metrics, SERVICE)]
    token = server_token(scfg)
    if token:
        interceptors.insert(0, TokenInterceptor(token))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=scfg.rpc_threads),
        interceptors=interceptors,
        options=[*KEEPALIVE_OPTIONS, ("grpc.max_receive_message_length", scfg.max_message_bytes)],
    )
    add_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    credentials = server_credentials(scfg)
    address = f"{scfg.host}:{scfg.port}"
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise SystemExit(f"a3c-server: cannot listen on {scfg.host}:{scfg.port}")
    return server, port


def set_health(health_servicer, serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.NOT_SERVING
    if serving:
        status = health_pb2.HealthCheckResponse.SERVING
    for name in ("", SERVICE):
        health_servicer.set(name, status)


def check(tcfg: TrainConfig, scfg: ServerConfig) -> EnvSpec:
    """Everything that can be wrong with the settings, before TensorFlow loads."""
    spec = env_spec(env_of(tcfg), tcfg.env_id)
    server_credentials(scfg)  # unreadable certificate or token files fail here
    server_token(scfg)
    return spec


def wait_for_end(app, scfg: ServerConfig, stop: threading.Event) -> None:
    """Returns on a signal, or once the budget is spent and the workers were told."""
    while not stop.is_set() and not app.budget.done:
        stop.wait(0.2)
    if not app.budget.done:
        return
    app.finish_training()
    if not scfg.exit_when_done:
        app.save()
        log.info("role=server budget spent; serving the final weights until stopped")
        stop.wait()
        return
    # An evaluator that is evaluating gets to report every point, the final one included.
    deadline = time.monotonic() + scfg.eval_wait_seconds
    while app.evaluations.connected and app.evaluations.pending and time.monotonic() < deadline:
        if stop.wait(0.1):
            return
    deadline = time.monotonic() + scfg.drain_seconds
    # Tell every live worker (they learn it from StartEpisode) before going away.
    while app.registry.active(scfg.lease_timeout) and time.monotonic() < deadline:
        if stop.wait(0.1):
            return


def main(argv: list[str] | None = None) -> int:
    tcfg, scfg = config.parse([TrainConfig, ServerConfig], argv, "A3C parameter server")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout
    )
    defaults = env_defaults(tcfg.env_id, tcfg.env_kwargs)
    metrics = ServerMetrics(return_buckets=defaults.buckets)
    try:
        spec = check(tcfg, scfg)
        if not defaults.known:
            log.info(
                "role=server %s is not in a3c.envs' table: generic defaults (no reward "
                "scaling, the preset's hyperparameters, solved at %s)",
                tcfg.env_id, defaults.solved if defaults.solved is not None else "no return",
            )  # fmt: skip
        if scfg.metrics_port:
            try:
                start_http_server(scfg.metrics_port, scfg.metrics_host, registry=metrics.registry)
            except OSError as err:
                raise OSError(f"metrics port {scfg.metrics_port}: {err.strerror}") from err
    except (EnvSpecError, OSError, ValueError) as err:
        print(f"a3c-server: {err}", file=sys.stderr)
        return 2
    run_dir = Path(scfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    effective = {"train": json.loads(tcfg.to_json()), "server": vars(scfg)}
    (run_dir / "config.json").write_text(json.dumps(effective, indent=2) + "\n")
    health_servicer = health.HealthServicer()
    set_health(health_servicer, False)
    deferred = Deferred()
    server, port = build_grpc_server(deferred, health_servicer, scfg, metrics)
    server.start()
    # TensorFlow loads only now: a bad flag, env id or port fails in a blink, and probes
    # see NOT_SERVING while it loads.
    import_tensorflow()
    from a3c.trainer import configure_threads
    from server.app import App
    from server.checkpoints import CheckpointError

    configure_threads(scfg.tf_threads)

    try:
        app = App(tcfg, scfg, spec, run_dir, metrics)
    except CheckpointError as err:
        print(f"a3c-server: cannot resume: {err}", file=sys.stderr)
        server.stop(grace=None)
        return 2
    deferred.target = app.servicer
    (run_dir / "server.port").write_text(f"{port}\n")
    app.learner.start()
    set_health(health_servicer, True)
    log.info(
        "role=server listening on %s:%d env=%s budget=%d episodes, %d env steps run_dir=%s",
        scfg.host, port, tcfg.env_id, tcfg.max_episodes, tcfg.max_env_steps, run_dir,
    )  # fmt: skip
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    progress = Progress(app.runlog, app.budget, app.learner, app.registry, app.evaluations)
    if scfg.progress:
        progress.start()
    wait_for_end(app, scfg, stop)
    progress.stop()
    set_health(health_servicer, False)
    server.stop(grace=3.0).wait()
    app.close()
    seconds = app.runlog.seconds
    for threshold, (episode, at) in sorted(app.runlog.reached.items()):
        log.info(
            "role=server 20-episode mean return reached %g at episode %d, %.1fs into training",
            threshold, episode, at,
        )  # fmt: skip
    if app.evaluations.last is not None:
        steps, mean, std = app.evaluations.last
        log.info(
            "role=server last evaluation: deterministic return %.1f ± %.1f at %d env steps",
            mean, std, steps,
        )  # fmt: skip
    if app.runlog.best is not None:
        mean, episode, at = app.runlog.best
        log.info(
            "role=server best 20-episode mean return %.1f, at episode %d, %.1fs into training",
            mean, episode, at,
        )  # fmt: skip
    log.info(
        "role=server stopped: %s episodes trained, %s env steps in %.1fs (%.0f env steps/s),"
        " version %d",
        of_budget(app.budget.completed, tcfg.max_episodes),
        of_budget(app.runlog.env_steps, tcfg.max_env_steps), seconds,
        app.runlog.env_steps / seconds if seconds > 0 else 0.0, app.learner.version,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
