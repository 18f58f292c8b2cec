"""The architecture is the direction of imports: data-mode workers need no TensorFlow."""

import subprocess
import sys

from tests.conftest import ROOT

CHECK = """
import sys
import worker.__main__, worker.loop, worker.client, worker.launcher
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print(",".join(heavy), file=sys.stderr)
sys.exit(1 if heavy else 0)
"""


def test_data_mode_worker_modules_do_not_import_tensorflow():
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"worker imports {done.stderr.strip()}"


def test_server_and_worker_never_import_each_other():
    for side, other in (("server", "worker"), ("worker", "server")):
        for path in (ROOT / side).glob("*.py"):
            text = path.read_text()
            assert f"from {other}" not in text and f"import {other}" not in text, path


def test_the_shared_package_stands_on_neither_side():
    for path in (ROOT / "a3c").glob("*.py"):
        text = path.read_text()
        for side in ("server", "worker", "lab"):
            assert f"from {side}" not in text and f"import {side}" not in text, path


GRPC_FREE = """
import sys
import a3c.algo, a3c.trainer, a3c.rollout, a3c.model, a3c.policy, a3c.envs, a3c.normalization
import server.learner, server.budget
print(sorted(m for m in sys.modules if m == "grpc" or m.startswith("grpc.")), file=sys.stderr)
sys.exit(1 if "grpc" in sys.modules else 0)
"""


def test_the_learner_and_the_math_never_import_grpc():
    """Thin edges: only the servicer, the client and the processes' roots speak gRPC."""
    done = subprocess.run(
        [sys.executable, "-c", GRPC_FREE], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, f"imports grpc: {done.stderr.strip()}"
