"""a3c-bench: where the time goes: limits, end to end, server capacity, batching, memory.

Writes bench.json, bench.md and bench.png into --out and prints the tables. Every figure
of one table comes from the same run of this command; compare ratios, not absolute
numbers, across machines. Throughput is measured with the seed's hyperparameters
(`--preset seed`); section 5 races the fast preset (both modes, N=2) against the peer a
user would pick instead, SB3 A2C with the RL Zoo settings (make bench-peers), per seed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np

from a3c.config import preset_config
from a3c.tfimport import import_tensorflow
from lab import scrape
from lab.bench_report import learning_row, peer_row, write_outputs
from lab.echo import echo
from lab.loadgen import wait_serving
from lab.runs import is_complete, move_aside, train_config
from lab.sampling import record as profile_server

MODES = ("gradient", "data")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except OSError:
        return []
    return [int(p) for p in out.split()]


def rate_loop(fn, seconds: float) -> float:
    """Calls per second of fn over about `seconds`."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def stepper(collector):
    """A function stepping collector one window (every environment leased anew when its
    episode ends, as a worker would); it returns the window's pieces."""
    leases = iter(range(1, 1 << 62))

    def step():
        for k in collector.idle:
            collector.start(k, next(leases))
        return collector.collect()

    return step


def record(collector, count: int) -> list:
    """count rollouts stepped by collector (one environment: each of t_max steps)."""
    step, rollouts = stepper(collector), []
    while len(rollouts) < count:
        rollouts += [p.rollout for p in step()]
    return rollouts[:count]


def limits(seconds: float, recorded_path: Path) -> dict:
    """Section 1, in this process: env, worker inner loop, the learner alone. Also records
    the rollouts and gradients the capacity test replays."""
    import_tensorflow()
    from a3c.config import preset_config
    from a3c.envs import env_of, env_spec
    from a3c.model import build_actor, build_critic, weight_shapes
    from a3c.policy import NumpyPolicy
    from a3c.rollout import Collector, env_seeds, pad
    from a3c.trainer import Trainer

    cfg = preset_config("seed")
    env = env_of(cfg)
    spec = env_spec(env)
    env.reset(seed=0)
    action = np.zeros(spec.action_dim, np.float32)
    out = {"env_steps_s": rate_loop(lambda: env.step(action), seconds)}
    trainer = Trainer(build_actor(spec, cfg), build_critic(spec, cfg), spec, cfg)
    policy = NumpyPolicy(spec, cfg, np.random.default_rng(0))
    policy.set_weights(trainer.actor.get_weights())
    out["worker_loop"] = {}  # M environments stepped as a worker steps them: env steps/s
    for m in (1, 16):
        envs = [env_of(cfg) for _ in range(m)]
        window = stepper(Collector(envs, policy, cfg.t_max, env_seeds(1, m)))
        out["worker_loop"][m] = rate_loop(window, seconds) * m * cfg.t_max
    rollouts = record(Collector([env], policy, cfg.t_max, [2]), 64)
    learner = {}
    for steps in (4, 16, 32, 64, 128):  # B = 1, 4, 8, 16, 32 rollouts of t_max = 4
        batch = pad([rollouts[i % len(rollouts)] for i in range(steps // cfg.t_max)], cfg.t_max)
        updates = rate_loop(lambda b=batch: trainer.data_step(b), seconds)
        learner[steps] = {"data_updates_s": updates, "data_steps_s": updates * steps}
    # A diagnosed update (server.learner: one per DIAGNOSE_SECONDS at most) costs this.
    batch = pad(rollouts[:1], cfg.t_max)
    diagnosed = rate_loop(lambda: trainer.data_step(batch, diagnostics=True), seconds)
    learner[4]["diagnosed_updates_s"] = diagnosed
    grads = [trainer.gradients(pad([r], cfg.t_max)) for r in rollouts]
    applies = rate_loop(lambda: trainer.gradient_step(grads[0]), seconds)
    for steps in learner:
        learner[steps]["gradient_applies_s"] = applies
    out["learner"] = learner
    # The pipeline's limit on this many cores: each env step costs the worker loop's and
    # the learner's CPU (64-step updates, as 16 environments x t_max 4 push), nothing else.
    cores = len(os.sched_getaffinity(0))
    worker, learn = out["worker_loop"][16], learner[64]["data_steps_s"]
    out["pipeline"] = {"cores": cores, "worker_loop_s": worker, "learner_s": learn,
                       "limit_s": cores / (1 / worker + 1 / learn)}  # fmt: skip
    out["grpc_echo"] = echo(seconds)
    np.savez(
        recorded_path,
        states=np.stack([r.states for r in rollouts]),
        actions=np.stack([r.actions for r in rollouts]),
        rewards=np.stack([r.rewards for r in rollouts]),
        next_states=np.stack([r.next_state for r in rollouts]),
        log_probs=np.stack([r.log_probs for r in rollouts]),
        grads=np.stack(grads),
        shapes=np.array(json.dumps(weight_shapes(spec, cfg))),
    )
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Server:
    """A parameter server process with a huge budget, measured through its /metrics; its
    run folder starts empty (a measurement never resumes an earlier one)."""

    def __init__(self, run_dir: Path, *flags: str):
        shutil.rmtree(run_dir, ignore_errors=True)
        self.port, self.metrics_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--metrics-port", str(self.metrics_port), "--max-episodes", "1000000",
             "--run-dir", str(run_dir), "--progress", "false", "--checkpoint-every", "0",
             "--checkpoint-seconds", "0", "--preset", "seed", *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        with grpc.insecure_channel(self.address) as channel:
            wait_serving(channel)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def samples(self) -> scrape.Samples:
        return scrape.scrape(self.metrics_port)

    def wait_steps(self, more: float, timeout: float = 180) -> None:
        target = scrape.value(self.samples(), "a3c_server_env_steps_total") + more
        deadline = time.monotonic() + timeout
        while scrape.value(self.samples(), "a3c_server_env_steps_total") < target:
            if time.monotonic() > deadline:
                raise RuntimeError("no training progress")
            time.sleep(0.3)

    def window(self, seconds: float, mode: str, watch: list[int]) -> dict:
        """Throughput, utilisation, latency and lag over `seconds`, and peak RSS (MB) of the
        server and of the processes in watch."""
        cpu_before = [cpu_seconds(p) for p in (self.proc.pid, *watch)]
        before, start = self.samples(), time.monotonic()
        peak = {"server": 0.0, "other": 0.0}
        while time.monotonic() - start < seconds:
            peak["server"] = max(peak["server"], rss_mb(self.proc.pid))
            peak["other"] = max([peak["other"], *(rss_mb(p) for p in watch)])
            time.sleep(0.25)
        after, elapsed = self.samples(), time.monotonic() - start
        cpu = [cpu_seconds(p) - c for p, c in zip((self.proc.pid, *watch), cpu_before)]
        d = scrape.delta(after, before)
        method = "PushSamples" if mode == "data" else "PushGradients"
        q = scrape.quantile
        steps = scrape.value(d, "a3c_server_env_steps_total")
        wire = scrape.value(d, "a3c_server_rpc_received_bytes_total", method=method)
        wire += scrape.value(d, "a3c_server_rpc_sent_bytes_total", method=method)
        return {
            "env_steps_s": steps / elapsed,
            # CPU seconds per second (1.0 = one core busy), and per trained env step.
            "server_cpu": cpu[0] / elapsed,
            "workers_cpu": sum(cpu[1:]) / elapsed,
            "server_cpu_us_per_step": 1e6 * cpu[0] / max(steps, 1),
            "wire_bytes_per_step": wire / max(steps, 1),
            "updates_s": scrape.value(d, "a3c_server_updates_total", mode=mode) / elapsed,
            "utilisation": scrape.value(d, "a3c_server_learner_busy_seconds_total") / elapsed,
            "push_p50_ms": 1e3 * q(d, "a3c_server_rpc_duration_seconds", 0.5, method=method),
            "push_p99_ms": 1e3 * q(d, "a3c_server_rpc_duration_seconds", 0.99, method=method),
            "lag_p50": q(d, "a3c_server_policy_lag_versions", 0.5, mode=mode),
            "lag_p99": q(d, "a3c_server_policy_lag_versions", 0.99, mode=mode),
            "queue_wait_p50_ms": 1e3
            * q(d, "a3c_server_learner_queue_wait_seconds", 0.5, mode=mode),
            "queue_wait_p99_ms": 1e3
            * q(d, "a3c_server_learner_queue_wait_seconds", 0.99, mode=mode),
            "server_rss_mb": peak["server"],
            "worker_rss_mb": peak["other"],
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def measure_workers(server: Server, mode: str, n: int, flags: list[str], warm: int,
                    seconds: float, profile: Path | None = None) -> dict:  # fmt: skip
    """N real workers (worker.launcher with flags) against server: measured over `seconds`
    once `warm` more env steps are trained (every worker imported, traced and pushing).
    With profile, then a py-spy profile of the server over as long, written there."""
    launcher = subprocess.Popen(
        [sys.executable, "-m", "worker.launcher", "-n", str(n), "--server", server.address,
         "--mode", mode, "--seed", str(n), *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        server.wait_steps(warm)
        result = server.window(seconds, mode, children(launcher.pid))
        if profile is not None:  # after the window: the sampling costs CPU too
            result["profile"] = profile_server(server.proc.pid, seconds, profile)
        return result
    finally:
        stop([launcher])


def end_to_end(
    out: Path, mode: str, counts: list[int], in_flight: list[int], seconds: float
) -> dict:
    """Section 2: one server per mode; N real workers at a time, each allowed K pushes in
    flight, measured after warm-up. Keys: "N" for K = 1, "N/K" otherwise."""
    server = Server(out / f"e2e-{mode}")
    results = {}
    try:
        for k in in_flight:
            for n in counts:
                key = str(n) if k == 1 else f"{n}/{k}"
                flags = ["--max-in-flight", str(k)]
                results[key] = measure_workers(server, mode, n, flags, 200 * n, seconds)
                rate = results[key]["env_steps_s"]
                print(f"  e2e {mode} N={n} in flight {k}: {rate:.0f} env steps/s", flush=True)
    finally:
        server.stop()
    return results


def vectorized(out: Path, mode: str, counts: list[int], envs: list[int], seconds: float,
               profiled: str = "2x16", in_flight: tuple[int, ...] = (1,)) -> dict:  # fmt: skip
    """Section 2b: N workers of M environments each, each allowed K pushes in flight, one
    server per mode, measured after warm-up, the server of `profiled` ("NxM", K = 1)
    profiled after its window. Keys "NxM" for K = 1, "NxM/K" otherwise."""
    server = Server(out / f"vec-{mode}")
    results = {}
    try:
        for m in envs:
            for n in counts:
                warm = max(200 * n, 16 * n * m)
                for k in in_flight:
                    key = f"{n}x{m}" if k == 1 else f"{n}x{m}/{k}"
                    flags = ["--num-envs", str(m), "--max-in-flight", str(k)]
                    profile = out / f"profile-{mode}-{key}.txt" if key == profiled else None
                    results[key] = measure_workers(server, mode, n, flags, warm, seconds, profile)
                    rate = results[key]["env_steps_s"]
                    print(f"  vectorized {mode} N={n} M={m} in flight {k}: {rate:.0f} env steps/s",
                          flush=True)  # fmt: skip
    finally:
        server.stop()
    return results


PEER_PYTHON = Path(__file__).resolve().parents[1] / ".venv-peers" / "bin" / "python"


def peer(out: Path, steps: int) -> dict | None:
    """The SB3 A2C peer (RL Zoo Pendulum-v1 settings) for `steps` env steps, in its own
    virtual environment (make bench-peers); None when it is not installed."""
    if not PEER_PYTHON.exists():
        print("  peer not installed (make bench-peers); going on without it", flush=True)
        return None
    path = out / "peer-sb3-a2c.json"
    script = Path(__file__).with_name("peer_sb3.py")
    subprocess.run(
        [str(PEER_PYTHON), str(script), "--seed", "0", "--steps", str(steps), "--out", str(path)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    result = json.loads(path.read_text())
    print(f"  peer SB3 A2C: {result['env_steps_per_s']:.0f} env steps/s", flush=True)
    return result


def capacity(out: Path, mode: str, clients: list[int], batch: int, seconds: float,
             recorded: Path) -> dict:  # fmt: skip
    """Sections 3-4: K synthetic workers replaying recorded pushes as fast as answered."""
    server = Server(out / f"cap-{mode}-b{batch}", "--learner-batch", str(batch))
    results = {}
    try:
        for k in clients:
            procs = min(k, 4)
            gens = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "lab.loadgen",
                        "--server",
                        server.address,
                        "--mode",
                        mode,
                        "--threads",
                        str(k // procs),
                        "--seconds",
                        str(seconds + 4),
                        "--recorded",
                        str(recorded),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                for _ in range(procs)
            ]
            try:
                server.wait_steps(400)
                results[k] = server.window(seconds, mode, [])
            finally:
                stop(gens)
            r = results[k]
            print(f"  capacity {mode} B={batch} K={k}: {r['env_steps_s']:.0f} env steps/s, "
                  f"utilisation {r['utilisation']:.2f}", flush=True)  # fmt: skip
    finally:
        server.stop()
    return results


def learning(out: Path, mode: str, seed: int, episodes: int) -> dict:
    """Section 5: a real run of the fast preset, N=2, `episodes`; reused when complete and
    trained with the fast preset as it is now (else moved aside and trained afresh)."""
    run_dir = out / f"learn-fast-{mode}-s{seed}"
    want = preset_config("fast", seed=seed, max_episodes=episodes)
    complete = is_complete(run_dir, episodes, seed, want.env_id, "fast")
    if not (complete and train_config(run_dir) == want):
        if run_dir.exists():
            move_aside(run_dir, "stale" if complete else "incomplete")
        start = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "lab.train", "-n", "2", "--mode", mode, "--run-dir",
             str(run_dir), "--max-episodes", str(episodes), "--preset", "fast",
             "--seed", str(seed)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        (run_dir / "wall_seconds").write_text(f"{time.monotonic() - start:.1f}\n")
    return learning_row(run_dir, f"fast preset, {mode} mode", seed)


def peer_learning(out: Path, seed: int, budget: int) -> dict | None:
    """Section 5: the peer on its own schedule, stopped at a 20-episode mean of -200 or at
    `budget` env steps; None when it is not installed."""
    if not PEER_PYTHON.exists():
        return None
    path = out / f"peer-learn-s{seed}.json"
    script = Path(__file__).with_name("peer_sb3.py")
    subprocess.run(
        [str(PEER_PYTHON), str(script), "--seed", str(seed), "--steps", str(budget),
         "--stop-at", "-200", "--t0", f"{time.time():.6f}", "--out", str(path)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return peer_row(json.loads(path.read_text()), seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path(f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument(
        "--in-flight", type=int, nargs="+", default=[1, 2], help="workers' --max-in-flight"
    )
    parser.add_argument("--vec-workers", type=int, nargs="+", default=[1, 2, 4],
                        help="vectorized workers: N")  # fmt: skip
    parser.add_argument("--vec-envs", type=int, nargs="+", default=[1, 4, 16, 64],
                        help="vectorized workers: environments per worker M")  # fmt: skip
    parser.add_argument("--vec-in-flight", type=int, nargs="+", default=[1, 2],
                        help="vectorized workers: their --max-in-flight K")  # fmt: skip
    parser.add_argument("--profile", default="2x16",
                        help="vectorized workers: the NxM whose server py-spy samples")  # fmt: skip
    parser.add_argument("--peer-steps", type=int, default=200_000,
                        help="env steps of the SB3 A2C peer's run (0: skip)")  # fmt: skip
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--batch-clients", type=int, default=16, help="K for the batching test")
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring window")
    parser.add_argument(
        "--learning-episodes",
        type=int,
        default=500,
        help="section 5: episodes of each run of ours (0: skip section 5)",
    )
    parser.add_argument("--learning-seeds", type=int, default=5, help="section 5: seeds")
    parser.add_argument(
        "--peer-budget",
        type=int,
        default=1_000_000,
        help="section 5: the peer's env steps at most (its zoo schedule)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    recorded = args.out / "recorded.npz"
    results: dict = {"settings": {k: str(v) for k, v in vars(args).items()}}
    print("limits", flush=True)
    results["limits"] = limits(min(args.seconds, 3.0), recorded)
    results["e2e"] = {
        m: end_to_end(args.out, m, args.workers, args.in_flight, args.seconds) for m in args.modes
    }
    print("vectorized workers", flush=True)
    results["vectorized"] = {
        m: vectorized(
            args.out,
            m,
            args.vec_workers,
            args.vec_envs,
            args.seconds,
            args.profile,
            tuple(args.vec_in_flight),
        )  # fmt: skip
        for m in args.modes
    }
    results["peer"] = peer(args.out, args.peer_steps) if args.peer_steps else None
    results["capacity"] = {}
    for mode in args.modes:
        per_batch = {}
        for b in args.batches:
            ks = args.clients if b == 1 else [args.batch_clients]
            per_batch[b] = capacity(args.out, mode, ks, b, args.seconds, recorded)
        results["capacity"][mode] = per_batch
    results["learning"] = []
    if args.learning_episodes:
        print("time to a good return", flush=True)
        for seed in range(args.learning_seeds):
            for mode in args.modes:
                results["learning"].append(learning(args.out, mode, seed, args.learning_episodes))
            peer_result = peer_learning(args.out, seed, args.peer_budget)
            if peer_result:
                results["learning"].append(peer_result)
            done = ", ".join(f"{x['who']}: {x['seconds_200']}" for x in results["learning"][-3:])
            print(f"  seed {seed}: seconds to -200: {done}", flush=True)
    print(write_outputs(results, args.out), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
