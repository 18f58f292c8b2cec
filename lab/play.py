"""a3c-play: runs a trained run's deterministic policy and writes play.gif and play.png.

The policy is the actor's mean action (no exploration noise), computed with numpy from
RUN_DIR/actor.weights.h5 and the network shape in RUN_DIR/config.json. Episode k (from 0)
starts from env.reset(seed=SEED + k), so a replay with the same seed is the same.

play.gif: gymnasium's rgb_array frames at full size (500x500 for Pendulum), every
FRAME_STRIDE-th step: the frames of steps 0, 2, 4, ... (before each step's action), so a
200-step Pendulum episode gives 100 frames and 3 episodes 300 (about 0.5 MB). Each frame
shows for FRAME_MS = 50 ms (20 frames/s; GIF times are whole hundredths of a second), so
a Pendulum episode (10 s of simulated time at dt = 0.05 s) plays in 5 s. A thin
bar along the bottom of each frame shows how far the episode has got; it also keeps
consecutive frames distinct, since GIF writers merge identical ones.

play.png: for Pendulum, the pole angle (atan2(sin, cos) of the observation, 0 = upright)
and the torque over time, one line per episode; for other environments, every
observation dimension and action dimension of the first episode over time, named as in
a3c.envs' table (a discrete action as a step line over its named values).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from a3c.tfimport import import_tensorflow
from lab.runs import RunError, train_config

FRAME_STRIDE = 2
"""Keep the frame of every FRAME_STRIDE-th step in the GIF (or a longer stride, so that an
episode has at most MAX_FRAMES frames)."""
MAX_FRAMES = 150
FRAME_MS = 50
"""How long each GIF frame shows, in milliseconds."""
BAR_HEIGHT = 6
BAR_COLOUR = (70, 110, 200)


@dataclasses.dataclass
class Episode:
    """What one played episode leaves: observations and actions per step, GIF frames."""

    observations: np.ndarray  # [T, obs_dim], the observation each action was chosen on
    actions: np.ndarray  # [T, action_dim]
    ret: float
    frames: list[np.ndarray]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="run folder with actor.weights.h5")
    parser.add_argument("--episodes", type=int, default=3, help="episodes to play [3]")
    parser.add_argument("--out", type=Path, help="where play.gif and play.png go [RUN_DIR]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode [0]")
    parser.add_argument(
        "--policy", type=Path,
        help="play this exported policy.onnx (a3c-export) instead of the run's Keras weights",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    return args


def _load_error(err: Exception) -> str:
    """The gist of a Keras load error, in one line."""
    text = str(err)
    shapes = re.search(r"variable\.shape=(\([^)]*\)).*?value\.shape=(\([^)]*\))", text)
    if shapes:
        return f"a weight has shape {shapes[2]} in the file, the actor expects {shapes[1]}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("A total of")] or lines or [repr(err)]
    return useful[0][:200]


def load_actor_weights(run_dir: Path, spec, cfg) -> list[np.ndarray]:
    """The actor's weights from RUN_DIR/actor.weights.h5, checked against config.json.

    Keras reads the file in a child process: this one must not load TensorFlow, with
    which MuJoCo's off-screen (EGL) rendering crashes the process."""
    path = run_dir / "actor.weights.h5"
    if not path.is_file():
        raise RunError(f"no actor.weights.h5 in {run_dir}")
    import h5py  # a Keras dependency: refuses a non-HDF5 file before TensorFlow loads

    if not h5py.is_hdf5(path):
        raise RunError(f"{path} cannot be read as Keras weights: it is not an HDF5 file")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        ok, value = pool.apply(_read_actor_weights, (path, spec, cfg))
    if not ok:
        raise RunError(value)
    return value


def _read_actor_weights(path: Path, spec, cfg) -> tuple[bool, list[np.ndarray] | str]:
    """(True, the actor's weights) or (False, why not in one line); in a child process."""
    import_tensorflow()
    from a3c.model import build_actor

    actor = build_actor(spec, cfg)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            actor.load_weights(path)
    except OSError as err:  # h5py: not an HDF5 file, truncated, unreadable
        return False, f"{path} cannot be read as Keras weights: {err}"
    except Exception as err:  # Keras: ValueError for shapes or layers that do not match
        sizes = ",".join(map(str, cfg.hidden_sizes))
        return False, (
            f"{path} does not fit the actor of {cfg.env_id} with hidden sizes {sizes} "
            f"(config.json): {_load_error(err)}"
        )
    return True, actor.get_weights()


class OnnxPolicy:
    """An exported policy.onnx run by onnxruntime, as play_episode plays a policy
    (normalization, if any, is inside the graph)."""

    def __init__(self, path: Path, spec):
        import onnxruntime

        try:
            self._session = onnxruntime.InferenceSession(str(path))
        except Exception as err:  # onnxruntime: a missing, unreadable or invalid file
            raise RunError(f"{path} cannot be run as an ONNX policy: {err}") from None
        self._spec = spec

    def act_deterministic(self, obs: np.ndarray) -> np.ndarray:
        action = self._session.run(None, {"obs": np.asarray(obs, np.float32)[None]})[-1][0]
        return np.asarray(action, np.float32).reshape(-1)

    def env_action(self, action: np.ndarray):
        return self._spec.env_action(action)


def run_normalizer(run_dir: Path, spec, cfg):
    """The observation normalizer of a run trained with running statistics (from
    RUN_DIR/normalization.npz, written with the weights), or None."""
    from a3c.normalization import Normalizer
    from server.checkpoints import STATISTICS, read_statistics

    normalizer = Normalizer.of_config(spec.obs_dim, 1, cfg)
    if normalizer is None:
        return None
    stats = read_statistics(run_dir)
    if stats is None:
        raise RunError(f"{run_dir} trained with running normalization but has no {STATISTICS}")
    normalizer.set(stats)
    return normalizer


def with_progress_bar(frame: np.ndarray, fraction: float) -> np.ndarray:
    """A copy of frame with a bar across the bottom, `fraction` of the width long."""
    out = np.array(frame[..., :3], dtype=np.uint8, copy=True)
    width = max(1, round(out.shape[1] * min(max(fraction, 0.0), 1.0)))
    out[-BAR_HEIGHT:, :width] = BAR_COLOUR
    return out


def play_episode(env, policy, seed: int, normalizer=None) -> Episode:
    """One episode of the deterministic policy, recording every FRAME_STRIDE-th frame;
    with a normalizer (a3c.normalization), the policy sees normalized observations."""
    from a3c.evaluation import deterministic_episode

    limit = (env.spec.max_episode_steps if env.spec else None) or 1000
    stride = max(FRAME_STRIDE, math.ceil(limit / MAX_FRAMES))
    observations, actions, frames = [], [], []

    def observe(t: int, obs: np.ndarray, action: np.ndarray) -> None:
        if t % stride == 0:
            frames.append(with_progress_bar(env.render(), (t + 1) / limit))
        observations.append(np.asarray(obs, np.float64))
        actions.append(np.asarray(action, np.float64).reshape(-1))

    ret, _ = deterministic_episode(env, policy, seed, normalizer, observe)
    return Episode(np.array(observations), np.array(actions), ret, frames)


def write_gif(frames: list[np.ndarray], path: Path) -> None:
    """Writes frames as a looping GIF, FRAME_MS milliseconds each."""
    import imageio.v3 as iio

    iio.imwrite(path, np.stack(frames), extension=".gif", duration=FRAME_MS, loop=0)


def _time_axis(n: int, dt: float | None) -> tuple[np.ndarray, str]:
    if dt:
        return np.arange(n) * dt, "time (s)"
    return np.arange(n, dtype=np.float64), "time (env steps)"


def _angle(t: np.ndarray, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pendulum's pole angle in radians (0 upright) over t, broken where it wraps at ±π."""
    theta = np.arctan2(obs[:, 1], obs[:, 0])
    jumps = np.nonzero(np.abs(np.diff(theta)) > math.pi)[0] + 1
    return np.insert(t, jumps, np.nan), np.insert(theta, jumps, np.nan)


def write_plot(
    episodes: list[Episode], env_id: str, spec, dt: float | None, path: Path, env_kwargs: str = ""
) -> None:
    """play.png: angle and torque for Pendulum, observations and actions otherwise."""
    from a3c.envs import env_defaults

    defaults = env_defaults(env_id, env_kwargs)

    def name(labels: tuple[str, ...], i: int, fallback: str) -> str:
        return labels[i] if i < len(labels) else fallback

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    pendulum = env_id.startswith("Pendulum")
    for k, ep in enumerate(episodes):
        t, xlabel = _time_axis(len(ep.actions), dt)
        label = f"episode {k + 1} (return {ep.ret:.0f})"
        if pendulum:
            top.plot(*_angle(t, ep.observations), label=label)
            bottom.plot(t, ep.actions[:, 0], label=label)
            continue
        if k > 0:  # one episode's lines are as many as a plot can show
            continue
        for i in range(ep.observations.shape[1]):
            top.plot(t, ep.observations[:, i], color=f"C{i}", alpha=0.8, lw=1,
                     label=name(defaults.obs_labels, i, f"obs[{i}]"))  # fmt: skip
        if spec.discrete:
            bottom.step(t, ep.actions[:, 0], where="post", color="C0", lw=1, label=label)
            continue
        for i in range(ep.actions.shape[1]):
            bottom.plot(t, ep.actions[:, i], color=f"C{i}", alpha=0.8, lw=1,
                        label=name(defaults.action_labels, i, f"action[{i}]"))  # fmt: skip
    if pendulum:
        top.axhline(0.0, color="grey", lw=0.8, ls="--")
        top.set(title="Pole angle (0 = upright, ±π = hanging down)", ylabel="angle (rad)")
        top.set_ylim(-math.pi - 0.2, math.pi + 0.2)
        bottom.set(title="Torque applied (deterministic policy)", ylabel="torque (N·m)")
        for bound in (spec.action_low[0], spec.action_high[0]):
            bottom.axhline(bound, color="grey", lw=0.8, ls="--")
        fig.legend(*top.get_legend_handles_labels(), loc="outside lower center",
                   ncols=min(len(episodes), 4), fontsize="small")  # fmt: skip
    else:
        top.set(title=f"Observations (the first episode, return {episodes[0].ret:.0f})",
                ylabel="observation (env units)")  # fmt: skip
        bottom.set(title="Actions (deterministic policy)", ylabel="action (env units)")
        if spec.discrete:
            values = range(spec.n_actions)
            bottom.set_yticks(
                list(values), [name(defaults.action_labels, i, str(i)) for i in values]
            )
            bottom.set_ylabel("action")
        top.legend(fontsize="small", loc="upper right")
        bottom.legend(fontsize="small", loc="upper right")
    bottom.set_xlabel(xlabel)
    fig.suptitle(f"{env_id}: {len(episodes)} episode(s) of the trained policy")
    fig.savefig(path, dpi=100)


def play(
    run_dir: Path, episodes: int, out: Path, seed: int, onnx_policy: Path | None = None
) -> list[Episode]:
    """Plays `episodes` episodes, prints their returns, writes play.gif and play.png."""
    from gymnasium.error import DependencyNotInstalled

    from a3c.envs import EnvSpecError, env_of, env_spec
    from a3c.policy import NumpyPolicy

    if not run_dir.is_dir():
        raise RunError(f"no run folder at {run_dir}")
    cfg = train_config(run_dir)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # rgb_array needs no display
    os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo renders off-screen (Mesa's EGL)
    try:
        env = env_of(cfg, render_mode="rgb_array")
        spec = env_spec(env, cfg.env_id)
    except EnvSpecError as err:
        raise RunError(str(err)) from None
    played = []
    try:
        if onnx_policy is not None:
            policy, normalizer = OnnxPolicy(onnx_policy, spec), None
        else:
            policy = NumpyPolicy(spec, cfg, np.random.default_rng(seed))
            policy.set_weights(load_actor_weights(run_dir, spec, cfg))
            normalizer = run_normalizer(run_dir, spec, cfg)
        for k in range(episodes):
            played.append(play_episode(env, policy, seed + k, normalizer))
            steps = len(played[-1].actions)
            print(f"episode {k + 1}: return {played[-1].ret:.1f} ({steps} steps)", flush=True)
    except DependencyNotInstalled as err:  # rendering needs pygame: gymnasium[classic-control]
        raise RunError(f"cannot render {cfg.env_id}: {err}") from None
    finally:
        env.close()
    out.mkdir(parents=True, exist_ok=True)
    write_gif([f for ep in played for f in ep.frames], out / "play.gif")
    dt = getattr(env.unwrapped, "dt", None)
    write_plot(played, cfg.env_id, spec, dt, out / "play.png", cfg.env_kwargs)
    print(f"wrote {out / 'play.gif'} and {out / 'play.png'}")
    return played


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        play(args.run_dir, args.episodes, args.out or args.run_dir, args.seed, args.policy)
    except RunError as err:
        print(f"a3c-play: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
