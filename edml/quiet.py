"""Keep TensorFlow's native start-up chatter off a person's terminal.

TensorFlow 2.21 logs through absl before its log level applies: ``TF_CPP_MIN_LOG_LEVEL``
no longer hides the oneDNN notice, and a graph saved by an older TensorFlow logs an
``E0000 ... NodeDef mentions attribute use_unbounded_threadpool`` line that is no error at
all. Written by C++ straight to file descriptor 2, these can only be filtered there: fd 2
becomes a pipe read by a thread that drops those lines and passes everything else on, so
a real native error still shows. Python's own ``sys.stderr`` (logging, rich, tracebacks)
keeps writing to the terminal directly, and stays a terminal for rich.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

__all__ = ["NOISE", "quiet_tensorflow"]

NOISE = re.compile(
    rb"^WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|^I\d{4} [\d:.]+ +\d+ \S+\] "  # absl INFO lines (oneDNN notice, CPU features)
    rb"|^To enable the following instructions: .*rebuild TensorFlow"  # the CPU-feature notice
    rb"|NodeDef mentions attribute use_unbounded_threadpool"
)
_installed = False


def quiet_tensorflow() -> None:
    """Filter fd 2 for the rest of this process; call before TensorFlow is imported."""
    global _installed
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # what TensorFlow still honours
    if _installed:
        return
    _installed = True
    terminal = os.dup(2)
    sys.stderr.flush()
    # Python's stderr on its own descriptor to the terminal, line-buffered as before
    sys.stderr = open(os.dup(terminal), "w", buffering=1, encoding=sys.stderr.encoding,  # noqa: SIM115
                      errors="backslashreplace")
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, terminal), name="native-stderr",
                            daemon=True)
    pump.start()

    def restore() -> None:
        os.dup2(terminal, 2)  # closes our write end: the pump sees the end and stops
        pump.join(timeout=1.0)

    atexit.register(restore)


def _pump(read_end: int, terminal: int) -> None:
    with os.fdopen(read_end, "rb") as pipe:
        for line in pipe:
            if not NOISE.search(line):
                os.write(terminal, line)
