"""Real processes end to end: server, worker launcher and workers, over loopback gRPC."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from a3c.config import TrainConfig
from a3c.envs import ENVIRONMENTS
from lab.runs import WINDOW, first_reach, moving_average
from tests.conftest import ROOT, Output

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def rows(run_dir):
    with open(run_dir / "returns.csv") as f:
        return list(csv.DictReader(f))


def episodes(run_dir) -> list[int]:
    """Episode numbers logged so far ([] before the server made returns.csv)."""
    return [int(r["episode"]) for r in rows(run_dir)] if (run_dir / "returns.csv").exists() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_weights_load(run_dir, env_id="Pendulum-v1"):
    from a3c.config import TrainConfig
    from a3c.envs import env_spec, make_env
    from a3c.model import build_actor, build_critic

    cfg = TrainConfig(env_id=env_id)
    spec = env_spec(make_env(env_id))
    actor, critic = build_actor(spec, cfg), build_critic(spec, cfg)
    before = actor.get_weights()[0].copy()
    actor.load_weights(run_dir / "actor.weights.h5")
    critic.load_weights(run_dir / "critic.weights.h5")
    assert not np.array_equal(before, actor.get_weights()[0])


def make_train(run_dir, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`make train RUN_DIR=run_dir ARGS...` without metrics ports; fails the test unless it
    exits 0."""
    done = subprocess.run(
        ["make", "train", f"RUN_DIR={run_dir}", "METRICS_PORT=0", "WORKER_METRICS_PORT=0",
         *args],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def tensorboard_scalars(path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files under path: tag -> [(step, value)] in file order."""
    import tensorflow as tf

    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(path.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                out.setdefault(value.tag, []).append((event.step, number))
    return out


def assert_tensorboard_matches(run_dir, table) -> None:
    """RUN_DIR/tensorboard holds every episode's return (as returns.csv, at its env steps)
    and the learner's diagnostics."""
    from a3c.algo import LOSS_DIAGNOSTICS
    from a3c.trainer import APPLY_DIAGNOSTICS

    scalars = tensorboard_scalars(run_dir / "tensorboard")
    returns = scalars["episode/return"]
    assert [v for _, v in returns] == pytest.approx([float(r["return"]) for r in table], abs=1e-3)
    assert [s for s, _ in returns] == [int(r["env_steps"]) for r in table]
    for name in LOSS_DIAGNOSTICS + APPLY_DIAGNOSTICS:
        assert f"learner/{name}" in scalars, sorted(scalars)
    entropy = [v for _, v in scalars["learner/entropy"]]
    assert all(np.isfinite(entropy))
    rates = [v for _, v in scalars["learner/actor_lr"]]
    start = TrainConfig().actor_lr  # the default preset's
    assert rates == sorted(rates, reverse=True) and rates[0] <= start + 1e-9  # falls linearly


def test_make_train_data_mode_trains_exactly_the_budget(tmp_path):
    """The default preset (one environment per worker), data mode, 6 episodes."""
    run_dir = tmp_path / "data"
    done = subprocess.run(
        ["make", "train", "PRESET=default", "N=2", "MODE=data", "EPISODES=6", f"RUN_DIR={run_dir}",
         "METRICS_PORT=0", "WORKER_METRICS_PORT=0"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = rows(run_dir)
    assert [int(r["episode"]) for r in table] == [1, 2, 3, 4, 5, 6]
    assert {r["length"] for r in table} == {"200"}
    assert_tensorboard_matches(run_dir, table)
    # Not one step more than the budget's 6 episodes of 200 steps.
    assert int(table[-1]["env_steps"]) == 1200
    # One update per push: 50 pushes of 4 steps per episode.
    assert int(table[-1]["version"]) == 300
    assert len({r["worker"] for r in table}) == 2
    assert_weights_load(run_dir)
    assert "budget spent" in done.stdout


@pytest.mark.parametrize("mode", ["data", "gradient"])
def test_vectorized_workers_train_exactly_the_budget(tmp_path, mode):
    """3 workers of 5 environments each, 7 episodes: 15 environments want leases, 7 get
    them, the rest wait; exactly 7 episodes of 200 steps are trained."""
    run_dir = tmp_path / mode
    done = subprocess.run(
        ["make", "train", "N=3", "ENVS=5", f"MODE={mode}", "EPISODES=7", f"RUN_DIR={run_dir}",
         "METRICS_PORT=0", "WORKER_METRICS_PORT=0"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = rows(run_dir)
    assert [int(r["episode"]) for r in table] == list(range(1, 8))
    assert {r["length"] for r in table} == {"200"}
    assert int(table[-1]["env_steps"]) == 1400
    config = json.loads((run_dir / "config.json").read_text())
    assert config["workers"] == {"count": 3, "mode": mode, "num_envs": 5, "max_in_flight": 1}
    assert done.stdout.count("envs=5") == 3, "each worker says how many environments it steps"
    assert "env steps/s" in done.stdout
    assert_weights_load(run_dir)


@pytest.mark.parametrize("mode", ["data", "gradient"])
def test_an_env_step_budget_is_exact(tmp_path, mode):
    """make train STEPS=1234, 3 workers x 5 environments of 200-step episodes: exactly 1234
    env steps are trained (six episodes of 200 and one cut at 34), none beyond."""
    run_dir = tmp_path / mode
    done = make_train(run_dir, "N=3", "ENVS=5", f"MODE={mode}", "STEPS=1234")
    table = rows(run_dir)
    assert int(table[-1]["env_steps"]) == 1234
    assert sorted(int(r["length"]) for r in table) == [34] + [200] * 6
    assert "7 episodes trained, 1234/1234 env steps" in done.stdout
    assert json.loads((run_dir / "config.json").read_text())["train"]["max_episodes"] == 0


def test_the_evaluator_reports_the_deterministic_policy_at_the_promised_steps(tmp_path):
    """--eval-every 2000, 6000 env steps, running normalization: evals.csv has the points
    2000, 4000 and 6000 (the final weights), the training budget is exactly 6000 steps
    whatever the evaluator played, and the last row is what the deterministic policy of
    the saved weights and statistics scores on the same seeds."""
    run_dir = tmp_path / "eval"
    flags = "--eval-every 2000 --eval-episodes 3 --obs-normalization running"
    done = make_train(run_dir, "N=2", "ENVS=4", "MODE=data", "STEPS=6000", f"TRAIN_FLAGS={flags}")
    assert int(rows(run_dir)[-1]["env_steps"]) == 6000
    with open(run_dir / "evals.csv") as f:
        evals = list(csv.DictReader(f))
    assert [int(r["env_steps"]) for r in evals] == [2000, 4000, 6000]
    assert all(int(r["episodes"]) == 3 for r in evals)
    versions = [int(r["version"]) for r in evals]
    assert versions == sorted(versions) and versions[0] > 0
    assert "last evaluation: deterministic return" in done.stdout
    scalars = tensorboard_scalars(run_dir / "tensorboard")
    assert [s for s, _ in scalars["eval/return_mean"]] == [2000, 4000, 6000]

    from a3c.config import EVAL_SEED
    from a3c.envs import env_of, env_spec
    from a3c.evaluation import evaluate
    from a3c.policy import NumpyPolicy
    from lab.play import load_actor_weights, run_normalizer
    from lab.runs import train_config

    cfg = train_config(run_dir)
    env = env_of(cfg)
    spec = env_spec(env)
    policy = NumpyPolicy(spec, cfg, np.random.default_rng(0))
    policy.set_weights(load_actor_weights(run_dir, spec, cfg))
    returns, _ = evaluate(env, policy, EVAL_SEED, 3, run_normalizer(run_dir, spec, cfg))
    assert float(evals[-1]["mean"]) == pytest.approx(np.mean(returns), abs=1e-3)


@pytest.mark.parametrize("mode", ["data", "gradient"])
def test_running_normalization_counts_every_trained_step_and_plays(tmp_path, mode):
    """--obs-normalization and --reward-normalization running: the server's statistics,
    written beside the weights, count every trained env step's observation and return
    exactly once; a3c-play acts with them."""
    run_dir = tmp_path / mode
    flags = "--obs-normalization running --reward-normalization running"
    make_train(run_dir, "N=2", "ENVS=3", f"MODE={mode}", "EPISODES=5", f"TRAIN_FLAGS={flags}")
    table = rows(run_dir)
    assert int(table[-1]["env_steps"]) == 1000
    from server.checkpoints import read_statistics

    stats = read_statistics(run_dir)
    assert stats.obs.count == stats.returns.count == 1000
    # Pendulum's cos and sin of the angle lie in [-1, 1]; its returns are negative.
    assert np.all(np.abs(stats.obs.mean[:2]) <= 1) and stats.returns.mean[0] < 0
    played = subprocess.run(
        [str(ROOT / ".venv/bin/a3c-play"), str(run_dir), "--episodes", "1"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert played.returncode == 0, played.stderr[-2000:]
    assert "episode 1: return" in played.stdout


def test_gradient_workers_started_first_wait_for_the_server(tmp_path):
    port = free_port()
    run_dir = tmp_path / "gradient"
    workers = subprocess.Popen(
        [sys.executable, "-m", "worker.launcher", "-n", "2", "--server", f"127.0.0.1:{port}",
         "--mode", "gradient", "--seed", "1", "--connect-timeout", "120"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    said = Output(workers)
    first = said.wait_for("connecting to", timeout=120)
    said.wait_for("connecting to", timeout=60, after=first)  # both workers try
    assert workers.poll() is None, "workers wait for a server that is not up yet"
    # The server stays up once the budget is spent (as in Kubernetes): a worker still in
    # its reconnect backoff when 6 episodes are done (they take a second or two) is told
    # when it connects, instead of finding no server at all.
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port),
         "--max-episodes", "6", "--run-dir", str(run_dir), "--checkpoint-every", "3",
         "--metrics-port", "0", "--exit-when-done", "false"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert workers.wait(timeout=240) == 0, said.text[-3000:]
        server.send_signal(signal.SIGTERM)
        server_out, _ = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    said.join(timeout=10)
    out = said.text
    assert server.returncode == 0, server_out[-3000:]
    table = rows(run_dir)
    assert len(table) == 6 and int(table[-1]["env_steps"]) == 1200
    assert int(table[-1]["version"]) == 300
    assert out.count("budget spent") == 2
    assert_weights_load(run_dir)


def test_sigterm_stops_the_server_cleanly_mid_run(tmp_path):
    run_dir = tmp_path / "term"
    train = subprocess.Popen(
        [sys.executable, "-m", "lab.train", "-n", "2", "--mode", "data", "--run-dir",
         str(run_dir), "--max-episodes", "1000"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (run_dir / "returns.csv").exists() and len(rows(run_dir)) >= 2:
            break
        time.sleep(0.5)
    else:
        train.kill()
        pytest.fail("no episode trained in 120 s")
    train.send_signal(signal.SIGTERM)
    out, _ = train.communicate(timeout=60)
    assert train.returncode == 0, out[-3000:]
    trained = rows(run_dir)
    assert 2 <= len(trained) < 1000
    assert "role=server stopped" in out
    assert_weights_load(run_dir)


@pytest.mark.parametrize(
    "env_id, needle",
    [("NoSuchEnv-v9", "cannot be made"), ("FrozenLake-v1", "Discrete observation space")],
)
def test_unusable_env_is_refused_in_one_line(tmp_path, env_id, needle):
    done = subprocess.run(
        [sys.executable, "-m", "server", "--env-id", env_id, "--run-dir", str(tmp_path)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert needle in done.stderr
    if env_id == "FrozenLake-v1":
        assert "supported: Box observations and a Box (continuous) or Discrete" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_other_box_env_trains(tmp_path):
    run_dir = tmp_path / "car"
    done = subprocess.run(
        [sys.executable, "-m", "lab.train", "-n", "2", "--mode", "data", "--run-dir",
         str(run_dir), "--max-episodes", "2", "--env-id", "MountainCarContinuous-v0"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(rows(run_dir)) == 2
    assert_weights_load(run_dir, "MountainCarContinuous-v0")
    train = json.loads((run_dir / "config.json").read_text())["train"]
    assert (train["reward_shift"], train["reward_scale"]) == (0.0, 1.0)  # Pendulum's is not its


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_data_mode_2_workers_300_episodes_default_preset_learns(tmp_path, seed):
    """Data mode, 2 workers, 300 episodes, the default preset, one seed per test: the mean
    return of episodes 201-300 is far above anything a policy that does not learn gets."""
    run_dir = tmp_path / f"learn-s{seed}"
    done = subprocess.run(
        [sys.executable, "-m", "lab.train", "-n", "2", "--mode", "data", "--seed",
         str(seed), "--run-dir", str(run_dir), "--max-episodes", "300"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    returns = np.array([float(r["return"]) for r in rows(run_dir)])
    assert len(returns) == 300
    # Mean return of episodes 201-300 per run, measured with this test's command: the
    # default -494 to -297 (11 runs, seeds 0-9 and a rerun of 0); a random policy about
    # -1200, and the first 100 episodes of any run about -1,100 to -1,400. Asynchronous
    # runs differ from one run to the next even with the seed fixed, so the bar leaves
    # room below the worst run measured (the seed preset, -800 to -512, can pass it too).
    late = returns[200:].mean()
    assert late > -650, f"mean return of episodes 201-300: {late:.0f}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_make_train_with_no_options_reaches_minus_200_in_seconds_and_holds(tmp_path, seed):
    """`make train SEED=s` and nothing else: Pendulum-v1, the fast preset's 2 workers x 8
    environments in data mode, 500 episodes. The best 20-episode mean and the mean of the
    last 50 episodes, each far above anything a policy that does not learn gets."""
    run_dir = tmp_path / f"default-s{seed}"
    done = make_train(run_dir, f"SEED={seed}", timeout=600)
    assert done.stdout.count("envs=8") == 2 and "--mode data" in done.stdout
    assert "best 20-episode mean return" in done.stdout
    returns = np.array([float(r["return"]) for r in rows(run_dir)])
    assert len(returns) == 500
    # Measured with this test's command, 20 runs per seed (make train SEED=s): the best
    # 20-episode mean, seed 0 -211 to -149 (18 of 20 reached -200), seed 1 -260 to -155
    # (19 of 20); the mean of the last 50 episodes, seed 0 -361 to -215 (13 of 20 at -250
    # or better), seed 1 -368 to -184 (18 of 20). A random policy gets about -1,200, and
    # the first 100 episodes of any run -1,100 to -1,400.
    best = np.convolve(returns, np.ones(20) / 20, "valid").max()
    assert best > -300, f"best 20-episode mean return: {best:.0f}"
    last = returns[-50:].mean()
    assert last > -450, f"mean return of the last 50 episodes: {last:.0f}"


def test_pipelined_pushes_train_exactly_the_budget(tmp_path):
    """--max-in-flight 2: workers step on while a push awaits its reply; still exact."""
    run_dir = tmp_path / "pipelined"
    done = subprocess.run(
        [sys.executable, "-m", "lab.train", "-n", "2", "--mode", "gradient", "--run-dir",
         str(run_dir), "--max-episodes", "6", "--max-in-flight", "2"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = rows(run_dir)
    assert [int(r["episode"]) for r in table] == [1, 2, 3, 4, 5, 6]
    assert int(table[-1]["env_steps"]) == 1200 and int(table[-1]["version"]) == 300


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "env_id, mode, episodes, bar",
    [
        # The bar: the best 20-episode mean return of the budget, per seed, measured with
        # this test's very command. A uniformly random policy gets about 22 on
        # CartPole-v1 and about -497 on Acrobot-v1 (3 in 100 episodes swing up within
        # 500 steps); a run stuck there fails. CartPole (seeds 0-5, both modes, 12 runs):
        # 448 to 494. The end of a CartPole run is no bar: 1 of those 12 runs fell back
        # after it had learned (20-episode means 494, then 126).
        ("CartPole-v1", "data", 300, 350.0),
        ("CartPole-v1", "gradient", 300, 350.0),
        # Acrobot, 20 runs per seed: data mode over 300 episodes, seed 0 -164 (2nd -146,
        # median -81), seed 1 -91 (median -80). Gradient mode learns less surely (its
        # critic trains from stale weights): over 300 episodes seed 1 left 2 of 20 runs
        # below -250 (-389, -268, both still learning); over 500 episodes seed 0 -131
        # (2nd -85, median -78), seed 1 -257 (2nd -93, median -77: one late learner).
        # Its bar says it escapes the random plateau (-497), far from that worst run.
        ("Acrobot-v1", "data", 300, -250.0),
        ("Acrobot-v1", "gradient", 500, -400.0),
    ],
)
def test_discrete_env_trains_exactly_its_budget_and_learns(
    tmp_path, env_id, mode, episodes, bar, seed
):
    """make train ENV=... with no other flag: the environment's own defaults (a3c.envs),
    a categorical policy, one seed per test, both modes over real gRPC."""
    run_dir = tmp_path / f"{env_id}-{mode}-s{seed}"
    done = subprocess.run(
        ["make", "train", f"ENV={env_id}", "N=2", f"MODE={mode}", f"EPISODES={episodes}",
         f"SEED={seed}", f"RUN_DIR={run_dir}", "METRICS_PORT=0", "WORKER_METRICS_PORT=0"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = rows(run_dir)
    assert [int(r["episode"]) for r in table] == list(range(1, episodes + 1))
    train = json.loads((run_dir / "config.json").read_text())["train"]
    assert {k: train[k] for k in ENVIRONMENTS[env_id].train} == dict(ENVIRONMENTS[env_id].train)
    returns = np.array([float(r["return"]) for r in table])
    best = moving_average(returns)[WINDOW - 1 :].max()
    assert first_reach(returns, bar) is not None, (
        f"{env_id} {mode} seed {seed}: best 20-episode mean {best:.0f}"
    )
    # The server's last lines say when the 20-episode mean reached the environment's
    # "good" return (CartPole 200, Acrobot -200), as its progress line did: at the
    # episode returns.csv says, and nothing when the run never got there.
    good = ENVIRONMENTS[env_id].good
    first = first_reach(returns, good)
    said = f"20-episode mean return reached {good:g} at episode"
    if first is None:
        assert said not in done.stdout
    else:
        assert f"{said} {first + 1}," in done.stdout
