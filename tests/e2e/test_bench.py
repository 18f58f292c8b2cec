"""Benchmark smoke test: `make bench` with tiny settings writes every file, every cell a number."""

import json
import re
import subprocess

from tests.conftest import ROOT
from tests.e2e.test_train import ENV

NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


def test_make_bench_tiny(tmp_path):
    flags = (
        "--modes data --workers 1 --in-flight 1 2 --clients 2 --batches 1 2 --batch-clients 2 "
        "--seconds 2 --learning-episodes 2"
    )
    done = subprocess.run(
        ["make", "bench", f"OUT={tmp_path}", f"BENCH_FLAGS={flags}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("bench.md", "bench.json", "bench.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    results = json.loads((tmp_path / "bench.json").read_text())
    assert set(results) >= {"limits", "e2e", "capacity", "learning"}
    rows = [
        line for line in (tmp_path / "bench.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| ---")
    ]  # fmt: skip
    headers = {"what", "mode"}
    body = [r for r in rows if r.split("|")[1].strip() not in headers]
    # limits, e2e (K = 1, 2), capacity (B = 1, 2), learning (defaults, best settings)
    assert len(body) == 9 + 2 + 2 + 2
    for line in body:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for cell in cells[1:]:
            if cell in ("data", "defaults") or cell.startswith("--"):
                continue
            tokens = re.sub(r"updates|env steps|round trips|ms|[()/]", " ", cell).split()
            assert tokens, f"empty cell in {line!r}"
            for token in tokens:
                assert token == "-" or NUMBER.match(token), f"{cell!r} in {line!r}"
