"""Faults done for real: SIGKILL a worker, SIGKILL the server and start it again; with one
environment per worker and with several (each holding its own episode lease)."""

import csv
import signal
import subprocess
import sys
import time

import pytest

from lab import scrape
from tests.conftest import ROOT, Output
from tests.e2e.test_train import ENV, assert_weights_load, episodes, free_port


def wait_for_episodes(run_dir, n: int, procs, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(episodes(run_dir)) < n:
        assert time.monotonic() < deadline, f"fewer than {n} episodes in {timeout}s"
        for p in procs:
            assert p.poll() is None, f"{p.args} exited early"
        time.sleep(0.1)


def server_cmd(port: int, run_dir, budget: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port),
        "--metrics-port", "0", "--max-episodes", str(budget), "--run-dir", str(run_dir),
        "--progress", "false", *extra,
    ]  # fmt: skip


def worker_cmd(port: int, seed: int, envs: int = 1, mode: str = "data") -> list[str]:
    return [
        sys.executable, "-m", "worker", "--server", f"127.0.0.1:{port}", "--mode", mode,
        "--seed", str(seed), "--connect-timeout", "120", "--num-envs", str(envs),
    ]  # fmt: skip


def popen(cmd):
    return subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def stop_holding_a_lease(victim, metrics_port: int, timeout: float = 60) -> None:
    """SIGSTOPs victim, the only worker, at a moment it holds an episode lease (read from
    the server's a3c_server_leases_held); it may sit between two episodes, holding none."""
    deadline = time.monotonic() + timeout
    while True:
        victim.send_signal(signal.SIGSTOP)
        if scrape.value(scrape.scrape(metrics_port), "a3c_server_leases_held") > 0:
            return
        victim.send_signal(signal.SIGCONT)
        assert time.monotonic() < deadline, "the worker never held a lease"
        time.sleep(0.01)


def train_past_a_killed_worker(run_dir, envs: int, budget_flags: list[str]) -> str:
    """A server and one worker of `envs` environments; the worker SIGKILLed while it holds
    a lease, two others train the rest. The server's output."""
    port, metrics_port = free_port(), free_port()
    server = popen(
        server_cmd(port, run_dir, 0, *budget_flags, "--lease-timeout", "3")
        + ["--metrics-port", str(metrics_port)]
    )  # fmt: skip
    victim = popen(worker_cmd(port, 0, envs))
    others = []
    try:
        wait_for_episodes(run_dir, envs, [server, victim])
        stop_holding_a_lease(victim, metrics_port)
        victim.send_signal(signal.SIGKILL)
        others = [popen(worker_cmd(port, seed, envs)) for seed in (1, 2)]
        out, _ = server.communicate(timeout=240)
        assert server.returncode == 0, out[-3000:]
        for w in others:
            assert w.wait(timeout=60) == 0
    finally:
        for p in (server, victim, *others):
            if p.poll() is None:
                p.kill()
    assert "given out again" in out
    return out


@pytest.mark.parametrize("envs", [1, 3])
def test_sigkill_a_worker_mid_episode(tmp_path, envs):
    run_dir, budget = tmp_path / "run", 12 * envs
    train_past_a_killed_worker(run_dir, envs, ["--max-episodes", str(budget)])
    assert episodes(run_dir) == list(range(1, budget + 1))
    assert_weights_load(run_dir)


def test_sigkill_a_worker_under_an_env_step_budget(tmp_path):
    """--max-env-steps 5000: a worker SIGKILLed while it holds leases; the steps it pushed
    stay trained, the rest of its leases' steps go back to the pool, and the others train
    exactly the rest."""
    run_dir = tmp_path / "run"
    out = train_past_a_killed_worker(run_dir, 3, ["--max-env-steps", "5000"])
    assert "5000/5000 env steps" in out
    with open(run_dir / "returns.csv") as f:
        table = list(csv.DictReader(f))
    assert int(table[-1]["env_steps"]) == 5000
    # Episodes the killed worker left unfinished are not logged (their pushed steps are
    # trained and counted).
    assert sum(int(r["length"]) for r in table) <= 5000


@pytest.mark.parametrize("envs", [1, 3])
def test_sigkill_the_server_and_start_it_again(tmp_path, envs):
    port, run_dir, budget = free_port(), tmp_path / "run", 16 * envs
    first = popen(server_cmd(port, run_dir, budget, "--checkpoint-every", "2"))
    workers = popen(
        [sys.executable, "-m", "worker.launcher", "-n", "2", "--server", f"127.0.0.1:{port}",
         "--mode", "data", "--connect-timeout", "120", "--num-envs", str(envs)]
    )  # fmt: skip
    said, second = Output(workers), None
    try:
        wait_for_episodes(run_dir, 5, [first, workers])
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        trained_before_kill = len(episodes(run_dir))
        said.wait_for("push failed", "lost the server", timeout=60)  # they found it gone
        # The new server stays up once the budget is spent: a worker still in its reconnect
        # backoff when the rest of the budget is done is told when it connects.
        second = popen(
            server_cmd(port, run_dir, budget, "--checkpoint-every", "2")
            + ["--exit-when-done", "false"]
        )  # fmt: skip
        assert workers.wait(timeout=240) == 0, said.text[-3000:]
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 0, out[-3000:]
        said.join(timeout=10)
        worker_out = said.text
    finally:
        for p in (first, workers, second):
            if p is not None and p.poll() is None:
                p.kill()
    assert "resumed from" in out
    assert trained_before_kill >= 5
    assert episodes(run_dir) == list(range(1, budget + 1))
    assert worker_out.count("budget spent") == 2
    assert_weights_load(run_dir)


def test_chaos_both_modes_a_worker_and_the_server_sigkilled(tmp_path):
    """One server, a data and a gradient worker of 3 environments each: the data worker is
    SIGKILLed while it holds leases and another takes its place, then the server is
    SIGKILLed and started again from its checkpoint. Every episode of the budget is
    trained exactly once, and both surviving workers end with the budget."""
    port, metrics_port, run_dir, budget = free_port(), free_port(), tmp_path / "run", 60
    serve = [*server_cmd(port, run_dir, budget, "--checkpoint-every", "2", "--lease-timeout",
                         "3"), "--metrics-port", str(metrics_port)]  # fmt: skip
    first, second = popen(serve), None
    victim = popen(worker_cmd(port, 0, 3, "data"))
    workers = [popen(worker_cmd(port, 1, 3, "gradient"))]
    said = [Output(workers[0])]
    try:
        wait_for_episodes(run_dir, 6, [first, victim, *workers])
        stop_holding_a_lease(victim, metrics_port)
        victim.send_signal(signal.SIGKILL)
        workers.append(popen(worker_cmd(port, 2, 3, "data")))
        said.append(Output(workers[1]))
        wait_for_episodes(run_dir, len(episodes(run_dir)) + 6, [first, *workers])
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        for s in said:
            s.wait_for("push failed", "lost the server", timeout=60)
        second = popen(serve + ["--exit-when-done", "false"])
        for w, s in zip(workers, said, strict=True):
            assert w.wait(timeout=300) == 0, s.text[-3000:]
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 0, out[-3000:]
    finally:
        for p in (first, second, victim, *workers):
            if p is not None and p.poll() is None:
                p.kill()
    assert "resumed from" in out
    assert episodes(run_dir) == list(range(1, budget + 1))
    for s in said:
        s.join(timeout=10)
        assert "budget spent" in s.text
    assert_weights_load(run_dir)
