"""What the contenders share: a loop that runs until the benchmark stops it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def run_until_stopped(step: Callable[[], None]) -> None:
    """``step()`` over and over until SIGTERM or SIGINT; the step in hand finishes first,
    so every output it produced is delivered before the process exits."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        step()
