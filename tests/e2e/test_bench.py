"""Benchmark smoke test: `make bench` with tiny settings writes every file, every cell a number."""

import json
import re
import subprocess

from lab.bench import PEER_PYTHON
from tests.conftest import ROOT
from tests.e2e.test_train import ENV

NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


def test_make_bench_tiny(tmp_path):
    flags = (
        "--modes data --workers 1 --in-flight 1 2 --vec-workers 1 --vec-envs 1 4 "
        "--vec-in-flight 1 2 --profile 1x4 "
        "--clients 2 "
        "--batches 1 2 --batch-clients 2 --seconds 2 --learning-episodes 2 --learning-seeds 1 "
        "--peer-steps 2000 --peer-budget 2000"
    )
    done = subprocess.run(
        ["make", "bench", f"OUT={tmp_path}", f"BENCH_FLAGS={flags}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("bench.md", "bench.json", "bench.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    results = json.loads((tmp_path / "bench.json").read_text())
    assert set(results) >= {"limits", "e2e", "vectorized", "peer", "capacity", "learning"}
    peer = PEER_PYTHON.exists()  # make bench-peers installs it; .ci/run does
    assert (results["peer"] is not None) == peer
    rows = [
        line for line in (tmp_path / "bench.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| ---")
    ]  # fmt: skip
    headers = {"what", "mode", "program", "SB3 A2C (peer)", "GIL: share (self)"}
    profile = [r for r in rows if "`" in r]  # its cells name functions
    body = [r for r in rows if r.split("|")[1].strip() not in headers and r not in profile]
    # limits (the diagnosed update's cost and the pipeline's limit among them), e2e (K = 1,
    # 2), vectorized (M = 1, 4; K = 1, 2), capacity (B = 1, 2), time to a good return (fast
    # data and the peer; their medians)
    runs = 2 if peer else 1
    assert len(body) == 12 + 2 + 4 + 2 + 2 * runs
    assert set(results["vectorized"]["data"]) == {"1x1", "1x1/2", "1x4", "1x4/2"}
    limit = results["limits"]["pipeline"]
    assert 0 < limit["limit_s"] < min(limit["worker_loop_s"], limit["learner_s"]) * limit["cores"]
    # The server at 1 x 4, sampled by py-spy: its busiest functions, the learner among them.
    sampled = results["vectorized"]["data"]["1x4"]["profile"]
    assert "error" not in sampled, sampled
    assert all((tmp_path / name).stat().st_size > 0 for name in sampled["files"])
    assert 0 < len(profile) <= 12 and sampled["gil"]["samples"] > 0 and sampled["gil_busy"] > 0
    # Stacks of the server's own code in both samplings; the learner thread, busy about a
    # third of the window, among every thread's.
    gil_file, all_file = ((tmp_path / name).read_text() for name in sampled["files"])
    assert "(server/" in gil_file and "(server/learner.py" in all_file
    text = (tmp_path / "bench.md").read_text()
    assert ("| SB3 A2C (peer) | 1 x 8 |" in text) == peer
    assert ("Peer not installed" in text) != peer
    for line in body:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for cell in cells[1:]:
            if cell in ("data",) or cell.startswith(("fast preset", "SB3 A2C")):
                continue
            words = r"updates|env steps|round trips|ms|[()/]|(?<=\d)x(?=\d)"
            tokens = re.sub(words, " ", cell).split()
            assert tokens, f"empty cell in {line!r}"
            for token in tokens:
                assert token == "-" or NUMBER.match(token), f"{cell!r} in {line!r}"
