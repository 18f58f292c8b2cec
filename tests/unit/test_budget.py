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
