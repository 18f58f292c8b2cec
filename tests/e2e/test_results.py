"""The results tools end to end: a3c-compare trains real runs; play, plot and compare read them.

One comparison (both modes x 2 seeds x 4 episodes, 2 workers) is trained once for the module;
the other tests read its run folders. The statistics are also checked on made-up returns.
"""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from lab.compare import verdict
from lab.runs import ModeSummary, Returns, drift, first_reach, moving_average, seed_stats
from tests.conftest import ROOT

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
EPISODES, SEEDS = 4, 2


def run(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """python -m module args in its own process group, all of it stopped if it runs too long."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=ENV,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    out, err = "", ""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the command, its server and workers
            os.killpg(proc.pid, sig)
            try:
                out, err = proc.communicate(timeout=30)
                break
            except subprocess.TimeoutExpired:
                continue
        pytest.fail(f"{module} ran past {timeout} s:\n{out[-3000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_png(path: Path) -> None:
    """A readable, non-blank PNG of a plot's size."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    image = iio.imread(path)
    assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 500
    assert image.std() > 10, f"{path} looks blank"


def assert_one_line_error(done: subprocess.CompletedProcess, needle: str) -> None:
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert needle in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """OUT of one comparison; OUT held a note and an unfinished data-s1 beforehand."""
    out = tmp_path_factory.mktemp("compare")
    (out / "notes.txt").write_text("keep me\n")
    (out / "data-s1").mkdir()
    (out / "data-s1" / "returns.csv").write_text("episode,worker,return\n1,w,-1.0\n")
    done = run("lab.compare", "--modes", "gradient", "data", "--seeds", SEEDS,
               "--episodes", EPISODES, "--workers", 2, "--out", out)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done


def test_compare_trains_every_run_and_writes_the_report(compared):
    out, done = compared
    for mode in ("gradient", "data"):
        for seed in range(SEEDS):
            lines = (out / f"{mode}-s{seed}" / "returns.csv").read_text().splitlines()
            assert len(lines) == 1 + EPISODES
            assert (out / f"{mode}-s{seed}" / "actor.weights.h5").is_file()
    assert done.stdout.count("training ") == 2 * SEEDS
    # Nothing deleted: the note stays, the unfinished run is moved aside as it was.
    assert (out / "notes.txt").read_text() == "keep me\n"
    (aside,) = out.glob("data-s1.incomplete-*")
    assert (aside / "returns.csv").read_text().endswith("1,w,-1.0\n")
    assert_png(out / "compare.png")
    md = (out / "compare.md").read_text()
    number = r"-?\d+\.\d"
    for mode in ("gradient", "data"):
        row = re.search(
            rf"^\| {mode} \| {SEEDS} \| {number} ± {number} \| {number} \| (.*)$", md, re.M
        )
        assert row, md
        assert row[1].count("not reached") + len(re.findall(r"\d+ \(\d/2\)", row[1])) == 4
    assert re.search(r"\*\*Verdict\*\*: (gradient|data) was (both )?steadier .* reached higher", md)
    assert "mean abs change" in md and "blocks of" in md  # the definitions


def test_tensorboard_shows_compared_runs_side_by_side_under_their_names(compared):
    """make tensorboard RUN_DIR="a b" (the command compare prints): a real TensorBoard
    lists each run under its folder's name."""
    import socket
    import time
    import urllib.request

    out, done = compared
    (command,) = [ln for ln in done.stdout.splitlines() if "make tensorboard RUN_DIR=" in ln]
    folders = re.search(r'RUN_DIR="([^"]+)"', command)[1].split()
    assert sorted(Path(f).name for f in folders) == sorted(
        f"{mode}-s{seed}" for mode in ("gradient", "data") for seed in range(SEEDS)
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        ["make", "tensorboard", f"RUN_DIR={' '.join(folders[:2])}", f"TB_PORT={port}"],
        cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline, runs = time.monotonic() + 120, []
        while time.monotonic() < deadline and len(runs) < 2:
            assert proc.poll() is None, "make tensorboard exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as r:
                    runs = json.loads(r.read())
            except OSError:
                pass
            time.sleep(0.5)
        assert sorted(runs) == sorted(Path(f).name for f in folders[:2])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_compare_again_reuses_every_run(compared):
    out, _ = compared
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*-s[0-9]/returns.csv")}
    assert len(stamps) == 2 * SEEDS
    done = run("lab.compare", "--seeds", SEEDS, "--episodes", EPISODES, "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("reusing") == 2 * SEEDS and "training " not in done.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_play_writes_a_gif_and_a_plot(compared, tmp_path):
    from lab.play import FRAME_MS, FRAME_STRIDE

    out, _ = compared
    done = run("lab.play", out / "data-s0", "--episodes", 2, "--out", tmp_path, "--seed", 3)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(re.findall(r"^episode \d: return -?\d+\.\d \(200 steps\)$", done.stdout, re.M)) == 2
    frames = iio.imread(tmp_path / "play.gif", index=None)
    assert frames.shape == (2 * math.ceil(200 / FRAME_STRIDE), 500, 500, 3)
    assert iio.immeta(tmp_path / "play.gif")["duration"] == FRAME_MS
    assert_png(tmp_path / "play.png")


@pytest.mark.parametrize("env_id, steps_max", [("CartPole-v1", 500), ("InvertedPendulum-v5", 1000)])
def test_play_shows_any_environment(tmp_path, env_id, steps_max):
    """A discrete environment and a MuJoCo one (rendered off-screen): a GIF of at most
    MAX_FRAMES frames per episode and a plot of the observations and actions, named."""
    from a3c.envs import env_defaults
    from lab.play import MAX_FRAMES

    extra = env_defaults(env_id).extra
    if extra:  # gymnasium's extra -> the module it brings
        module = {"box2d": "Box2D", "mujoco": "mujoco"}[extra]
        pytest.importorskip(module, reason=f"{env_id} needs gymnasium[{extra}]: make setup")
    run_dir = tmp_path / "run"
    trained = run("lab.train", "-n", 1, "--mode", "data", "--max-episodes", 2, "--env-id",
                  env_id, "--run-dir", run_dir, "--metrics-port", 0)  # fmt: skip
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    done = run("lab.play", run_dir, "--episodes", 1, "--out", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (steps,) = map(int, re.findall(r"^episode 1: return -?\d+\.\d \((\d+) steps\)$",
                                   done.stdout, re.M))  # fmt: skip
    assert 1 <= steps <= steps_max
    frames = iio.imread(tmp_path / "play.gif", index=None)
    assert 1 <= frames.shape[0] <= MAX_FRAMES and frames.shape[-1] == 3
    assert frames.std() > 10, "the frames are blank"
    assert_png(tmp_path / "play.png")


@pytest.mark.parametrize(
    "damage, needle",
    [
        ("no folder", "no run folder at"),
        ("no weights", "no actor.weights.h5 in"),
        ("other network", "does not fit the actor"),
        ("garbage weights", "cannot be read as Keras weights"),
    ],
)
def test_play_refuses_a_bad_run_folder_in_one_line(compared, tmp_path, damage, needle):
    out, _ = compared
    run_dir = tmp_path / "run"
    if damage != "no folder":
        shutil.copytree(out / "data-s0", run_dir)
    weights, config = run_dir / "actor.weights.h5", run_dir / "config.json"
    if damage == "no weights":
        weights.unlink()
    elif damage == "garbage weights":
        weights.write_bytes(b"not hdf5")
    elif damage == "other network":
        config.write_text(
            re.sub(r'"hidden_sizes": \[[^]]*\]', '"hidden_sizes": [8]', config.read_text())
        )
    assert_one_line_error(run("lab.play", run_dir, "--out", tmp_path / "o"), needle)
    assert not (tmp_path / "o" / "play.gif").exists()


def test_plot_draws_one_curve_per_run(compared, tmp_path):
    out, _ = compared
    runs = [out / "gradient-s0", out / "data-s0"]
    done = run("lab.plot", *runs)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_png(out / "gradient-s0" / "curve.png")
    done = run("lab.plot", *runs, "--x", "seconds", "--out", tmp_path / "sub" / "curve.png")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_png(tmp_path / "sub" / "curve.png")
    assert_one_line_error(run("lab.plot", tmp_path / "nothing"), "no returns.csv in")


def test_write_curve_is_callable_in_process(compared, tmp_path):
    from lab.plot import write_curve

    out, _ = compared
    path = write_curve([out / "data-s1"], tmp_path / "c.png", x="seconds")
    assert path == tmp_path / "c.png"
    assert_png(path)


def returns_of(values) -> Returns:
    ret = np.asarray(values, dtype=np.float64)
    n = len(ret)
    return Returns(np.arange(1, n + 1), ret, np.arange(1, n + 1) * 200, np.arange(1, n + 1) * 0.5)


def test_windows_shrink_when_the_budget_is_below_them():
    values = [-700.0, -500.0, -300.0, -100.0]
    stats = seed_stats(returns_of(values), [-400.0, -200.0])
    assert stats.final == pytest.approx(-400.0)  # all 4, not the last 50
    assert stats.spread == pytest.approx(np.std(values))
    assert stats.drift == pytest.approx(400.0)  # blocks of 2: means -600, -200
    assert stats.reach == {-400.0: (4, 2.0), -200.0: None}  # the 4-episode mean is -400
    assert stats.steps_per_second == pytest.approx(400.0)
    single = seed_stats(returns_of([-50.0]), [-400.0])
    assert single.reach == {-400.0: (1, 0.5)} and math.isnan(single.drift)


def test_first_reach_needs_a_whole_window():
    values = np.r_[[-100.0], np.full(30, -1000.0), np.full(40, -100.0)]
    # Episode 1 alone is -100, but no 20-episode mean reaches -400 until episode 31 + 14.
    assert first_reach(values, -400.0) == 44
    assert moving_average(np.array([1.0, 2.0, 3.0]), 2).tolist() == [1.0, 1.5, 2.5]


def test_drift_is_the_mean_change_of_successive_block_means():
    values = np.r_[np.full(20, 0.0), np.full(20, 10.0), np.full(20, 4.0), np.full(20, 4.0)]
    assert drift(values) == pytest.approx((10 + 6 + 0) / 3)


def test_verdict_follows_the_numbers():
    def mode(name: str, values: list[float]) -> ModeSummary:
        return ModeSummary(name, [], [seed_stats(returns_of(values), [])])

    noisy_high, steady_low = (
        mode("gradient", [-100.0, -300.0] * 50),
        mode("data", [-390.0, -410.0] * 50),
    )
    assert verdict([noisy_high, steady_low]).startswith("data was steadier (std of returns")
    assert "and gradient reached higher (final return -200.0 against -400.0" in verdict(
        [noisy_high, steady_low]
    )
    steady_high = mode("gradient", [-100.0, -101.0] * 50)
    assert verdict([steady_high, steady_low]).startswith("gradient was both steadier")
    assert "nothing to compare" in verdict([steady_high])


def test_compare_presets_runs_each_mode_with_each(tmp_path):
    out = tmp_path / "presets"
    args = ["--modes", "data", "--presets", "seed", "default", "--seeds", 1, "--episodes", 2]
    done = run("lab.compare", *args, "--workers", 1, "--out", out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for preset in ("seed", "default"):
        config = json.loads((out / f"{preset}-data-s0" / "config.json").read_text())
        assert config["train"]["preset"] == preset
        assert re.search(rf"^\| data \({preset}\) \| 1 \| ", (out / "compare.md").read_text(), re.M)
    seed_cfg = json.loads((out / "seed-data-s0" / "config.json").read_text())["train"]
    assert seed_cfg["actor_lr"] == 1e-4 and seed_cfg["entropy_coef"] == 0.0
    again = run("lab.compare", *args, "--out", out)
    assert again.returncode == 0 and again.stdout.count("reusing") == 2


def test_sweep_screens_a_setting_and_tabulates_it(tmp_path):
    args = ["--name", "fast-actor", "--set", "actor_lr=3e-4", "--set", "std_mode=state",
            "--seeds", 0, 1, "--episodes", 3, "--out", tmp_path]  # fmt: skip
    done = run("lab.sweep", *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [json.loads(x) for x in (tmp_path / "sweep.jsonl").read_text().splitlines()]
    assert [(x["name"], x["seed"], x["episodes"]) for x in lines] == [
        ("fast-actor", 0, 3),
        ("fast-actor", 1, 3),
    ]
    assert all(-2000 < x["last50"] < 0 for x in lines)
    assert len(np.load(tmp_path / "fast-actor-s0.npy")) == 3
    assert re.search(
        r"^\| fast-actor \| 2 \| not reached \(0/2\) \| -\d+ \(0/2\) \| -\d+ \|$", done.stdout, re.M
    )
    bad = run("lab.sweep", "--name", "x", "--set", "std_mode=wide", "--out", tmp_path)
    assert bad.returncode == 2 and "std_mode" in bad.stderr
