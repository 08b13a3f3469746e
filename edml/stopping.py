"""How a long-running command stops: SIGTERM (Kubernetes) or Ctrl-C sets an event that its
loop checks between steps, so the step in hand finishes and its offsets are committed."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

__all__ = ["run_until_signalled"]


def run_until_signalled(run: Callable[[threading.Event], None]) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run(stop)
    return 0
