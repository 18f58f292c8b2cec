"""The episode budget: exact, and leases of silent workers given out again."""

import threading

from server.budget import Budget, Grant


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_never_more_leases_than_remaining_episodes():
    budget = Budget(max_episodes=2, lease_timeout=10, clock=Clock())
    g1, [l1] = budget.request("a")
    g2, [l2] = budget.request("b")
    assert (g1, g2) == (Grant.GRANTED, Grant.GRANTED)
    assert budget.request("c") == (Grant.WAIT, [])
    assert budget.complete(l1) == 1
    assert budget.request("c")[0] == Grant.WAIT  # 1 done + 1 out = budget
    assert budget.complete(l2) == 2
    assert budget.done
    assert budget.request("a") == (Grant.DONE, [])


def test_silent_lease_is_reissued_and_old_holder_refused():
    clock = Clock()
    budget = Budget(max_episodes=1, lease_timeout=5, clock=clock)
    reissued = []
    budget.on_reissue = lambda: reissued.append(1)
    _, [old] = budget.request("dead")
    clock.now = 4
    assert budget.request("live")[0] == Grant.WAIT
    clock.now = 10
    grant, [new] = budget.request("live")
    assert grant == Grant.GRANTED and new != old
    assert len(reissued) == 1
    assert not budget.renew(old, "dead")
    assert budget.renew(new, "live")
    assert budget.complete(new) == 1 and budget.done


def test_renewal_keeps_a_lease():
    clock = Clock()
    budget = Budget(max_episodes=1, lease_timeout=5, clock=clock)
    _, [lease] = budget.request("a")
    for t in (4, 8, 12):
        clock.now = t
        assert budget.renew(lease, "a")
        assert budget.request("b")[0] == Grant.WAIT


def test_asking_again_drops_the_workers_previous_lease():
    budget = Budget(max_episodes=1, lease_timeout=100, clock=Clock())
    _, [first] = budget.request("a")
    grant, [second] = budget.request("a")
    assert grant == Grant.GRANTED and not budget.renew(first, "a")


def test_many_leases_per_worker_and_held_ones_kept():
    budget = Budget(max_episodes=8, lease_timeout=100, clock=Clock())
    grant, leases = budget.request("a", count=3)
    assert grant == Grant.GRANTED and len(set(leases)) == 3
    assert len(budget.request("b", count=4)[1]) == 4
    assert len(budget.request("c", count=5)[1]) == 1, "only what remains of the budget"
    assert budget.request("d", count=1) == (Grant.WAIT, [])
    # a ends one episode and asks for another, holding its other two: nothing is left.
    budget.complete(leases[0])
    assert budget.request("a", count=1, held=leases[1:]) == (Grant.WAIT, [])
    assert budget.renew(leases[1], "a") and budget.renew(leases[2], "a")
    # Holding fewer gives the rest back at once.
    assert budget.request("a", count=0, held=[leases[1]]) == (Grant.WAIT, [])
    assert not budget.renew(leases[2], "a") and budget.renew(leases[1], "a")
    assert len(budget.request("d", count=5)[1]) == 1


def test_exact_under_concurrency():
    budget = Budget(max_episodes=50, lease_timeout=100)
    trained = []
    lock = threading.Lock()

    def worker(name):
        while True:
            grant, leases = budget.request(name, wait=0.5, count=3)
            if grant == Grant.DONE:
                return
            for lease in leases:
                if budget.renew(lease, name):
                    n = budget.complete(lease)
                    with lock:
                        trained.append(n)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(trained) == list(range(1, 51))


def test_an_env_step_budget_reserves_steps_per_lease_and_is_exact():
    """1234 env steps, episodes of up to 200: six leases of 200 and one of 34; steps a
    lease does not use go back, steps past a lease's limit are refused, and the budget is
    done at exactly 1234."""
    clock = Clock()
    budget = Budget(0, lease_timeout=5, clock=clock, max_env_steps=1234, episode_steps=200)
    grant, leases = budget.request_limited("a", count=15)
    assert grant == Grant.GRANTED
    assert [limit for _, limit in leases] == [200] * 6 + [34]
    assert budget.request_limited("b") == (Grant.WAIT, [])
    first, short = leases[0][0], leases[-1][0]
    assert not budget.renew(short, "a", 35)  # past its limit: not trained
    assert budget.renew(short, "a", 34) and budget.trained_steps == 34
    assert not budget.renew(short, "a", 1)
    budget.complete(short)
    assert budget.renew(first, "a", 50)
    budget.complete(first)  # ended after 50 steps: 150 go back to the pool
    grant, [(b_lease, limit)] = budget.request_limited("b", held=[])
    assert grant == Grant.GRANTED and limit == 150
    # A silent lease's unused steps go back too; what it pushed stays trained.
    assert budget.renew(leases[1][0], "a", 20)
    clock.now = 4
    for lease_id in [lease_id for lease_id, _ in leases[2:-1]] + [b_lease]:
        assert budget.renew(lease_id, "a" if lease_id != b_lease else "b", 0)
    clock.now = 8
    grant, again = budget.request_limited("c", count=5)
    assert [limit for _, limit in again] == [180]  # the 1 expired lease frees 180 steps
    assert budget.progress < 1 and not budget.done
    for lease_id, limit in again:
        assert budget.renew(lease_id, "c", limit)
    assert budget.trained_steps == 34 + 50 + 20 + 180
    assert budget.request_limited("d") == (Grant.WAIT, [])


def test_with_both_budgets_the_first_reached_ends_the_run():
    budget = Budget(max_episodes=2, lease_timeout=5, max_env_steps=10_000, episode_steps=200)
    _, leases = budget.request_limited("a", count=5)
    assert len(leases) == 2  # the episode budget binds first
    for lease_id, _ in leases:
        assert budget.renew(lease_id, "a", 200)
        budget.complete(lease_id)
    assert budget.done and budget.progress == 1.0
    steps = Budget(max_episodes=100, lease_timeout=5, max_env_steps=300, episode_steps=200)
    _, leases = steps.request_limited("a", count=5)
    assert [limit for _, limit in leases] == [200, 100]
    for lease_id, limit in leases:
        assert steps.renew(lease_id, "a", limit)
    assert steps.done and steps.completed == 0
