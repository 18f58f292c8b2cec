"""Learner batching: B queued pushes make the update one would make by hand, and the
compiled steps never retrace once warm."""

import numpy as np

from a3c.config import ServerConfig, TrainConfig
from a3c.envs import env_spec, make_env
from a3c.rollout import pad
from server.app import App
from server.learner import Push, Slot, concat
from tests.pushes import rollout

CFG = TrainConfig(max_episodes=10, seed=7)


def app(tmp_path, name, **fields):
    scfg = ServerConfig(port=0, metrics_port=0, run_dir=str(tmp_path / name), **fields)
    (tmp_path / name).mkdir()
    return App(CFG, scfg, env_spec(make_env(CFG.env_id)), tmp_path / name)


def queued_then_applied(server: App, pushes: list[Push]) -> np.ndarray:
    """Queues every push before the learner starts, so it takes them in one batch."""
    for push in pushes:
        server.learner.submit(push, timeout=1)
    server.learner.start()
    outcomes = [push.result.result(timeout=30) for push in pushes]
    assert all(not o.lost for o in outcomes)
    assert {o.version for o in outcomes} == {1}, "one update for the whole batch"
    return server.learner.snapshot()[1]


def pushes_for(server: App, batches=None, grads=None) -> list[Push]:
    out = []
    for i in range(len(batches or grads)):
        _, [lease] = server.budget.request(f"w{i}")
        mode = "data" if batches else "gradient"
        push = Push(mode, f"w{i}", f"w{i}", base_version=0, slots=[Slot(lease, steps=4)])
        if batches:
            push.batch = batches[i]
        else:
            push.grads = grads[i]
        out.append(push)
    return out


def test_data_mode_batch_equals_one_big_batch_by_hand(tmp_path):
    batches = [pad([rollout(seed=s)], CFG.t_max) for s in range(3)]
    batched, by_hand = app(tmp_path, "a", learner_batch=4), app(tmp_path, "b")
    try:
        initial = batched.learner.snapshot()[1].copy()
        got = queued_then_applied(batched, pushes_for(batched, batches=batches))
        want = by_hand.trainer.data_step(concat(batches))
        assert not np.allclose(got, initial), "the update changed the weights"
        np.testing.assert_allclose(got, want, atol=1e-5)
    finally:
        batched.close()
        by_hand.close()


def test_gradient_mode_batch_equals_summed_gradients_by_hand(tmp_path):
    helper = app(tmp_path, "grads")
    grads = [helper.trainer.gradients(pad([rollout(seed=s)], CFG.t_max)) for s in range(3)]
    batched, by_hand = app(tmp_path, "a", learner_batch=4), app(tmp_path, "b")
    try:
        got = queued_then_applied(batched, pushes_for(batched, grads=grads))
        want = by_hand.trainer.gradient_step(np.sum(grads, axis=0))
        np.testing.assert_allclose(got, want, atol=1e-5)
    finally:
        for server in (helper, batched, by_hand):
            server.close()


def test_a_batch_of_rollouts_makes_the_summed_gradients_of_each(tmp_path):
    """One update over R rollouts (a vectorized worker's push, or merged pushes) is the sum
    of the R updates' gradients: each rollout's loss counts as it would alone."""
    server = app(tmp_path, "sum")
    try:
        rollouts = [rollout(seed=s, steps=1 + s % 4, terminated=s == 2) for s in range(5)]
        one_by_one = [server.trainer.gradients(pad([r], CFG.t_max)) for r in rollouts]
        together = server.trainer.gradients(pad(rollouts, CFG.t_max))
        np.testing.assert_allclose(together, np.sum(one_by_one, axis=0), rtol=1e-5, atol=1e-5)
    finally:
        server.close()


def test_compiled_steps_trace_once(tmp_path):
    server = app(tmp_path, "t")
    try:
        trainer = server.trainer
        for b in (1, 3, 16, 1):
            batch = concat([pad([rollout(seed=s, steps=1 + s % 4)], CFG.t_max) for s in range(b)])
            trainer.data_step(batch)
            trainer.gradient_step(trainer.gradients(batch))
            trainer.assign_flat(trainer.flat_weights())
            trainer.gradients_at(trainer.flat_weights(), batch)
            trainer.data_step(batch, diagnostics=True)
            trainer.gradient_step(trainer.gradients(batch), diagnostics=True)
        assert set(trainer.trace_counts().values()) == {1}
    finally:
        server.close()
