"""Workers on another host, for real: two network namespaces joined by a veth pair.

The server listens only on an address inside its namespace; the workers reach it over
the veth link, not loopback. Mid-run the link goes down for longer than the keepalive
timeout: workers notice, back off, reconnect, and the budget is still trained exactly.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, Output
from tests.e2e.test_train import ENV, episodes
from worker.client import KEEPALIVE_OPTIONS

# The workers' keepalive time plus its timeout: how long a cut link may go unnoticed.
KEEPALIVE_S = sum(v for k, v in KEEPALIVE_OPTIONS if k.startswith("grpc.keepalive_t")) / 1000

SERVER_IP, WORKER_IP = "10.213.7.1", "10.213.7.2"
# Long enough (about 10 s of training here) that a worker still in its connect backoff
# (at most 5 s) joins before the budget is spent.
BUDGET = 150


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def can_make_namespaces() -> str | None:
    """None when this process may create network namespaces, else why not."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"a3cprobe{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"ip netns add is not permitted here: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@pytest.fixture
def two_hosts():
    reason = can_make_namespaces()
    if reason:
        pytest.skip(reason)
    tag = os.getpid() % 100000
    ps, wk = f"a3cps{tag}", f"a3cwk{tag}"
    ps_if, wk_if = f"vps{tag}", f"vwk{tag}"
    try:
        sh("ip", "netns", "add", ps)
        sh("ip", "netns", "add", wk)
        sh("ip", "link", "add", ps_if, "type", "veth", "peer", "name", wk_if)
        sh("ip", "link", "set", ps_if, "netns", ps)
        sh("ip", "link", "set", wk_if, "netns", wk)
        for ns, dev, ip in ((ps, ps_if, SERVER_IP), (wk, wk_if, WORKER_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield ps, wk, wk_if
    finally:
        for ns in (ps, wk):
            subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.mark.parametrize("envs", [1, 4])
def test_workers_in_another_namespace_survive_a_cut_link(two_hosts, tmp_path, envs):
    ps, wk, wk_if = two_hosts
    run_dir = tmp_path / "run"
    server = subprocess.Popen(
        ["ip", "netns", "exec", ps, sys.executable, "-m", "server", "--host", SERVER_IP,
         "--port", "50051", "--metrics-port", "0", "--max-episodes", str(BUDGET * envs),
         "--lease-timeout", "5", "--run-dir", str(run_dir), "--progress", "false",
         "--exit-when-done", "false"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    workers = subprocess.Popen(
        ["ip", "netns", "exec", wk, sys.executable, "-m", "worker.launcher", "-n", "2",
         "--server", f"{SERVER_IP}:50051", "--mode", "data", "--connect-timeout", "120",
         "--num-envs", str(envs)],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    said = Output(workers)
    try:
        first = said.wait_for("connected to", timeout=180)
        said.wait_for("connected to", timeout=180, after=first)  # both workers
        deadline = time.monotonic() + 180
        while len(episodes(run_dir)) < 3:
            assert time.monotonic() < deadline, "no training across the veth link"
            assert server.poll() is None and workers.poll() is None
            time.sleep(0.2)
        sh("ip", "-n", wk, "link", "set", wk_if, "down")
        # Each worker notices within its keepalive time plus that timeout; from the first
        # notice to the second nothing is trained (pushes the server had are applied by then).
        notice = ("failed (", "lost the server")
        first = said.wait_for(*notice, timeout=KEEPALIVE_S + 10, after=said.read)
        cut_at = len(episodes(run_dir))
        said.wait_for(*notice, timeout=KEEPALIVE_S + 10, after=first)
        assert len(episodes(run_dir)) == cut_at, "nothing crosses a cut link"
        sh("ip", "-n", wk, "link", "set", wk_if, "up")
        # The server stays up once the budget is spent, so that no worker finds it gone.
        assert workers.wait(timeout=240) == 0, said.text[-3000:]
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        said.join(timeout=10)
        out = said.text
    finally:
        for proc in (server, workers):
            if proc.poll() is None:
                proc.kill()
    assert episodes(run_dir) == list(range(1, BUDGET * envs + 1))
    assert "resending" in out or "reconnecting" in out
    assert out.count("budget spent") == 2
