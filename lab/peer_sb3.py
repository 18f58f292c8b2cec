"""The peer a user would pick instead: Stable-Baselines3 A2C on Pendulum-v1, RL Zoo settings.

Standalone: it runs under `.venv-peers/bin/python` (made by `make peers-setup`) and imports
nothing from this repository, only torch, stable_baselines3, gymnasium, numpy and the stdlib.

    .venv-peers/bin/python lab/peer_sb3.py --seed 0 --steps 200000 --stop-at -200 \
        --t0 "$(date +%s.%N)" --out runs/peer.json

Hyperparameters are the RL Baselines3 Zoo's tuned A2C entry for Pendulum-v1,
hyperparams/a2c.yml of github.com/DLR-RM/rl-baselines3-zoo (read at commit 22e3ff2, 2026-04;
the entry last changed in eec15dc), applied the way the zoo's rl_zoo3/exp_manager.py applies
them. Every finished episode is recorded with its raw return (a Monitor sits under
VecNormalize), the env steps and the seconds since learn() started at its end.
"""

from __future__ import annotations

import time

T_SCRIPT = time.perf_counter()  # before the heavy imports: wall_seconds counts them
T_SCRIPT_EPOCH = time.time()

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from collections import deque  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import stable_baselines3 as sb3  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import A2C  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize  # noqa: E402

T_IMPORTED = time.perf_counter()

ENV_ID = "Pendulum-v1"
ZOO_SOURCE = "rl-baselines3-zoo hyperparams/a2c.yml, Pendulum-v1 (# Tuned), commit 22e3ff2"

# Each value with where it comes from. "zoo" = the Pendulum-v1 entry of hyperparams/a2c.yml;
# "exp_manager" = how rl_zoo3/exp_manager.py turns that entry into SB3 objects.
N_ENVS = 8  # zoo: n_envs: 8
N_TIMESTEPS = 1_000_000  # zoo: n_timesteps: !!float 1e6 (the length of the lr schedule)
NORMALIZE = True  # zoo: normalize: True -> exp_manager wraps VecNormalize(env, gamma=gamma)
LR_INITIAL = 7e-4  # zoo: learning_rate: lin_7e-4 -> exp_manager: SimpleLinearSchedule(7e-4)
A2C_KWARGS = dict(
    policy="MlpPolicy",  # zoo: policy: 'MlpPolicy'
    n_steps=8,  # zoo: n_steps: 8
    gamma=0.9,  # zoo: gamma: 0.9
    gae_lambda=0.9,  # zoo: gae_lambda: 0.9
    ent_coef=0.0,  # zoo: ent_coef: 0.0
    vf_coef=0.4,  # zoo: vf_coef: 0.4
    max_grad_norm=0.5,  # zoo: max_grad_norm: 0.5
    use_rms_prop=True,  # zoo: use_rms_prop: True
    normalize_advantage=False,  # zoo: normalize_advantage: False
    use_sde=True,  # zoo: use_sde: True
    policy_kwargs=dict(log_std_init=-2, ortho_init=False),  # zoo: policy_kwargs: "dict(...)"
)
# Not in the zoo entry, so SB3 2.9.2's A2C defaults (as in the zoo): rms_prop_eps=1e-5,
# sde_sample_freq=-1. exp_manager builds the envs with make_vec_env(..., seed=seed) on a
# DummyVecEnv (its default vec_env_type "dummy"), each env under a Monitor.


def linear_schedule(progress_remaining: float) -> float:
    """rl_zoo3.utils.SimpleLinearSchedule(7e-4): progress_remaining * initial value.

    SB3 computes progress_remaining = 1 - num_timesteps / total_timesteps of learn(); learn()
    is given the zoo's n_timesteps, so the rate falls over the zoo's 1M steps even when --steps
    or --stop-at end the run sooner.
    """
    return progress_remaining * LR_INITIAL


class EpisodeRecorder(BaseCallback):
    """Records finished episodes; ends learn() at --steps or at the --stop-at rule."""

    def __init__(self, t_learn: list[float], steps: int, stop_at: float | None, window: int):
        super().__init__(verbose=0)
        self.t_learn = t_learn  # [perf_counter at the learn() call], filled in just before it
        self.steps = steps
        self.stop_at = stop_at
        self.recent: deque[float] = deque(maxlen=window)
        self.episodes: list[list[float]] = []
        self.stopped_by = "schedule_end"
        self.reached: dict | None = None
        self._stop_now = False

    def _on_step(self) -> bool:
        if self._stop_now:  # the rollout that crossed --steps has been trained on
            return False
        now = time.perf_counter() - self.t_learn[0]
        for info in self.locals["infos"]:
            ep = info.get("episode")  # set by Monitor: raw, unnormalized return
            if ep is None:
                continue
            ret = float(ep["r"])
            self.episodes.append([int(self.num_timesteps), round(now, 4), ret])
            self.recent.append(ret)
        if (
            self.stop_at is not None
            and len(self.recent) == self.recent.maxlen
            and float(np.mean(self.recent)) >= self.stop_at
        ):
            self.stopped_by = "stop_at"
            self.reached = {
                "env_steps": int(self.num_timesteps),
                "seconds": round(now, 4),
                "mean_return": float(np.mean(self.recent)),
                "episodes": len(self.episodes),
            }
            return False
        return True

    def _on_rollout_end(self) -> None:
        # Checked at the rollout's end so that its update still happens (SB3 trains after
        # this hook); learn() then stops on the next env step (n_envs more steps, untrained).
        if self.num_timesteps >= self.steps and self.num_timesteps < self.model._total_timesteps:
            self.stopped_by = "steps"
            self._stop_now = True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--steps",
        type=int,
        default=N_TIMESTEPS,
        help="total env steps (all envs together); the lr schedule still spans the zoo's 1M",
    )
    ap.add_argument(
        "--stop-at",
        type=float,
        default=None,
        help="stop once the mean raw return of the last 20 finished episodes is >= this",
    )
    ap.add_argument("--window", type=int, default=20, help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, default=None, help="epoch seconds of process launch")
    ap.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    schedule_steps = max(N_TIMESTEPS, args.steps)  # over 1M: the schedule spans --steps

    env = make_vec_env(ENV_ID, n_envs=N_ENVS, seed=args.seed, vec_env_cls=DummyVecEnv)
    env = VecNormalize(env, gamma=A2C_KWARGS["gamma"])  # exp_manager: normalize_kwargs gamma
    model = A2C(
        env=env,
        learning_rate=linear_schedule,
        seed=args.seed,
        device="cpu",
        verbose=0,
        **copy.deepcopy(A2C_KWARGS),  # A2C adds optimizer_class etc. into policy_kwargs
    )

    t_learn = [0.0]
    rec = EpisodeRecorder(t_learn, args.steps, args.stop_at, args.window)
    t_learn[0] = time.perf_counter()
    model.learn(total_timesteps=schedule_steps, callback=rec, progress_bar=False)
    learn_seconds = time.perf_counter() - t_learn[0]
    env.close()

    env_steps = int(model.num_timesteps)
    tail = [e[2] for e in rec.episodes[-args.window :]]
    result = {
        "peer": "sb3-a2c",
        "versions": {
            "python": platform.python_version(),
            "stable_baselines3": sb3.__version__,
            "torch": torch.__version__,
            "gymnasium": gym.__version__,
            "numpy": np.__version__,
        },
        "settings": {
            "env_id": ENV_ID,
            "source": ZOO_SOURCE,
            "n_envs": N_ENVS,
            "normalize": {"VecNormalize": True, "gamma": A2C_KWARGS["gamma"]},
            "n_timesteps_schedule": schedule_steps,
            "learning_rate": f"lin_{LR_INITIAL:g}",
            **A2C_KWARGS,
            "vec_env": "DummyVecEnv",
            "device": "cpu",
            "torch_threads": torch.get_num_threads(),
            "steps_limit": args.steps,
            "stop_at": args.stop_at,
            "stop_window": args.window,
        },
        "seed": args.seed,
        "env_steps": env_steps,
        "learn_seconds": round(learn_seconds, 4),
        "env_steps_per_s": round(env_steps / learn_seconds, 1) if learn_seconds > 0 else None,
        "import_seconds": round(T_IMPORTED - T_SCRIPT, 4),
        "setup_seconds": round(t_learn[0] - T_SCRIPT, 4),
        "stopped_by": rec.stopped_by,
        "reached": rec.reached,
        "final_mean_return": float(np.mean(tail)) if tail else None,
        "episodes": rec.episodes,
    }
    result["wall_seconds"] = round(time.perf_counter() - T_SCRIPT, 4)
    if args.t0 is not None:  # from process launch: adds interpreter start-up
        result["wall_seconds_since_t0"] = round(time.time() - args.t0, 4)
        result["startup_seconds_before_script"] = round(T_SCRIPT_EPOCH - args.t0, 4)

    summary = {k: v for k, v in result.items() if k not in ("episodes", "settings", "versions")}
    summary["n_episodes"] = len(rec.episodes)
    print(json.dumps(summary), file=sys.stderr)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
