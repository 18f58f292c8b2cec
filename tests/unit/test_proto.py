"""The committed generated code is what `make proto` makes from proto/ now."""

import subprocess
import sys

from tests.conftest import ROOT


def test_generated_code_is_fresh(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", "proto", f"--python_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}", "proto/a3c/v1/a3c.proto"],
        cwd=ROOT, check=True,
    )  # fmt: skip
    for name in ("a3c_pb2.py", "a3c_pb2_grpc.py", "a3c_pb2.pyi"):
        fresh = (tmp_path / "a3c" / "v1" / name).read_text()
        committed = (ROOT / "a3c" / "v1" / name).read_text()
        assert fresh == committed, f"a3c/v1/{name} is stale: run `make proto`"


def test_grpc_module_uses_package_qualified_import():
    text = (ROOT / "a3c" / "v1" / "a3c_pb2_grpc.py").read_text()
    assert "from a3c.v1 import a3c_pb2" in text
