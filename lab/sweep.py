"""a3c-sweep: screens hyperparameter settings fast, in one process, before `make compare`.

Each setting trains data-mode A3C over several seeds without gRPC: N simulated workers of
M environments each (--num-envs) take turns (round robin), each steps its environments
t_max steps with the weights it got after its own last push, then its rollouts make one
update, as N data-mode workers with one push in flight would (policy lag N - 1). One
TensorFlow thread per process: run two sweeps side by side on a 2-core machine. It
approximates a real run's learning per episode, not its timing: confirm a finding with
`make compare`.

    a3c-sweep --seeds 0 1 2 --set actor_lr=3e-4 --set std_mode=param --name mine

Appends one JSON line per seed to OUT/sweep.jsonl and prints the summary table of every
setting found there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from a3c.tfimport import import_tensorflow
from lab.runs import WINDOW, first_reach, moving_average


def train(values: dict, seed: int, episodes: int, workers: int, num_envs: int = 1) -> np.ndarray:
    """The returns of one synchronous run of `episodes` episodes: `workers` simulated
    workers of `num_envs` environments each (a3c.rollout.Collector, as a real worker steps
    them) take turns, each making one update from its window's rollouts."""
    import_tensorflow()
    import keras

    from a3c import envs as environments
    from a3c import model
    from a3c.config import TrainConfig, from_mapping
    from a3c.normalization import Normalizer, Statistics
    from a3c.policy import NumpyPolicy
    from a3c.rollout import Collector, env_seeds, pad
    from a3c.trainer import Trainer, configure_threads

    configure_threads(1)
    cfg = from_mapping(TrainConfig, {**values, "seed": seed, "max_episodes": episodes})
    keras.utils.set_random_seed(seed)
    spec = environments.env_spec(environments.env_of(cfg))
    trainer = Trainer(model.build_actor(spec, cfg), model.build_critic(spec, cfg), spec, cfg)
    actor_shapes = model.weight_shapes(spec, cfg)[0]
    stats = Statistics.zeros(spec.obs_dim) if cfg.running_normalization else None
    collectors = []
    for i in range(workers):
        policy = NumpyPolicy(spec, cfg, np.random.default_rng(seed * 100 + i))
        policy.set_weights(model.split_flat(trainer.flat_weights(), actor_shapes))
        envs = [environments.env_of(cfg) for _ in range(num_envs)]
        normalizer = Normalizer.of_config(spec.obs_dim, num_envs, cfg)
        seeds = env_seeds(seed * 100 + i, num_envs)
        collectors.append(Collector(envs, policy, cfg.t_max, seeds, normalizer))
    returns: list[float] = []
    leased = 0  # episodes started: as the server's budget, never more than `episodes`
    while len(returns) < episodes:
        for c in collectors:
            for k in c.idle:
                if leased < episodes:
                    leased += 1
                    c.start(k, leased)
            if not c.leases:
                continue
            pieces = c.collect()
            trainer.set_progress(len(returns) / episodes)
            flat = trainer.data_step(pad([p.rollout for p in pieces], cfg.t_max))
            c.policy.set_weights(model.split_flat(flat, actor_shapes))
            if c.normalizer is not None:  # as the server merges a push's increments
                stats = stats.merge(c.normalizer.take())
                c.normalizer.set(stats)
            returns += [p.episode_return for p in pieces if p.episode_end]
    return np.array(returns[:episodes])


EARLY = 0.6
"""A setting reaches `solved` early in a run when it does so in the first 60% of it."""


def summary(returns: np.ndarray, good: float, solved: float) -> dict:
    """Episodes to a 20-episode mean of `good` and of `solved` (the environment's, a3c.envs),
    the last 50 episodes' mean, the worst 20-episode mean after the first 60% of the run."""
    means = moving_average(returns, WINDOW)
    start = int(len(returns) * EARLY)
    late = means[start:] if len(means) > start else means[-1:]
    first = {t: first_reach(returns, t) for t in (good, solved)}
    return {
        "good": good,
        "solved": solved,
        "first_good": None if first[good] is None else first[good] + 1,
        "first_solved": None if first[solved] is None else first[solved] + 1,
        "last50": float(returns[-50:].mean()),
        "worst20_late": float(late.min()),
    }


def table(lines: list[dict], hold: float) -> str:
    """Markdown: one row per setting, medians and counts over its seeds."""
    by_name: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        by_name[line["name"]].append(line)
    solved = lines[0]["solved"]
    episodes = lines[0]["episodes"]
    early = int(episodes * EARLY)
    out = [f"| setting | seeds | first ep. 20-ep mean >= {solved:g}: median (seeds <= {early}) | "
           f"last 50: mean (seeds >= {hold:g}) | worst 20-ep mean after ep. {early} (median) |",
           "|---|---|---|---|---|"]  # fmt: skip
    for name, runs in by_name.items():
        reached = [r["first_solved"] for r in runs if r["first_solved"] is not None]
        first = f"{np.median(reached):.0f}" if reached else "not reached"
        in_time = sum(1 for r in reached if r <= early)
        last = [r["last50"] for r in runs]
        held = sum(1 for x in last if x >= hold)
        worst = np.median([r["worst20_late"] for r in runs])
        out.append(f"| {name} | {len(runs)} | {first} ({in_time}/{len(runs)}) | "
                   f"{np.mean(last):.0f} ({held}/{len(runs)}) | {worst:.0f} |")  # fmt: skip
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the setting's name in the table")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a TrainConfig field (repeatable), e.g. actor_lr=3e-4")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("-n", "--workers", type=int, default=2)
    parser.add_argument("--num-envs", type=int, default=0,
                        help="environments per worker (0: the config's num_envs) [0]")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("runs/sweep"))
    args = parser.parse_args(argv)
    values = {}
    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set needs FIELD=VALUE, got {item!r}")
        values[field.strip().replace("-", "_")] = value.strip()
    try:
        from a3c.config import TrainConfig, from_mapping
        from a3c.envs import env_defaults

        cfg = from_mapping(TrainConfig, values)
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    defaults = env_defaults(cfg.env_id, cfg.env_kwargs)
    if defaults.good is None or defaults.solved is None:
        parser.error(f"{cfg.env_id} has no good and solved returns in a3c.envs' table")
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "sweep.jsonl"
    for seed in args.seeds:
        start = time.monotonic()
        num_envs = args.num_envs or cfg.num_envs
        returns = train(values, seed, args.episodes, args.workers, num_envs)
        line = {"name": args.name, "seed": seed, "set": values, "episodes": args.episodes,
                "workers": args.workers, "num_envs": num_envs,
                "seconds": round(time.monotonic() - start, 1),
                **summary(returns, defaults.good, defaults.solved)}  # fmt: skip
        np.save(args.out / f"{args.name}-s{seed}.npy", returns)
        with open(log, "a") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    lines = [x for x in lines if x.get("solved") == defaults.solved]  # this environment's
    print(table(lines, defaults.holds_at), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
