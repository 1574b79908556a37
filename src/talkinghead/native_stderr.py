"""Quiet use of mediapipe: its C++ graphs log INFO/WARNING lines (TFLite delegate, feedback manager,
NORM_RECT) straight to the process's stderr before absl logging is initialised, which no environment
variable silences and which would bury our progress bars. :func:`native_stderr_silenced` points file
descriptor 2 at /dev/null around graph construction and inference; Python exceptions are unaffected.
"""

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
