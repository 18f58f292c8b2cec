"""TensorFlow imported without the log lines its libraries write while they load.

TensorFlow 2.21's C++ libraries log while `import tensorflow` loads them
(libtensorflow_framework.so.2, then the profiler plugin, each with its own copy of absl):
absl's "WARNING: All log messages before absl::InitializeLog() is called are written to
STDERR" and the INFO line "oneDNN custom operations are on ...", twice. No setting reaches
them: TensorFlow applies TF_CPP_MIN_LOG_LEVEL only once those libraries have loaded, absl
reads no environment variable, and TF_ENABLE_ONEDNN_OPTS=0 would hide the line by turning
oneDNN off, which changes the numerics. So the import runs with file descriptor 2 on a
temporary file, and what was written there is passed on to stderr afterwards, less the lines
TF_CPP_MIN_LOG_LEVEL hides: a one-line error stays one line, while warnings, errors and
tracebacks written during the import still show (once it ends). Only a hard crash inside the
import (an abort in C++) would take what it wrote with it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

# absl's prefix: severity, MMDD (0000 before InitializeLog), time, thread id, file:line]
_LOG_LINE = re.compile(rb"([IWEF])\d{4} [\d:.]+ +\d+ [^\s\]]+:\d+\] ")
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called"
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


def import_tensorflow():
    """The tensorflow module. Call it before anything that imports tensorflow or keras; it
    sets TF_CPP_MIN_LOG_LEVEL to 2 (errors only) unless it is set already."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        level = int(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    except ValueError:
        level = 0
    if sys.stderr is not None:
        sys.stderr.flush()
    with tempfile.TemporaryFile() as caught:
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow
        finally:
            if sys.stderr is not None:
                sys.stderr.flush()  # Python's own writes during the import, in their place
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = memoryview(b"".join(line for line in caught if not _hidden(line, level)))
            while kept:
                kept = kept[os.write(2, kept) :]
    return tensorflow


def _hidden(line: bytes, level: int) -> bool:
    if level < 1:
        return False
    if line.startswith(_ABSL_PREAMBLE):
        return True
    match = _LOG_LINE.match(line)
    return match is not None and _SEVERITY[match.group(1)] < level
