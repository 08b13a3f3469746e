"""What the contenders share: the scoring worker's group settings, and a loop that runs
until the benchmark stops it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from edml.settings import KafkaSettings
from services.settings import ScoringSettings

# every contender's consumer group as the benchmarked workers' (bench.common.worker_env):
# the local broker holds a join for about half the session, so start-ups compare fairly
SESSION_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS = 3000, 500
# and the worker's micro-batch: the most records it takes at once, and how long it waits
BATCH = int(ScoringSettings.model_fields["batch_size"].default)
BATCH_WAIT_S = float(ScoringSettings.model_fields["batch_wait_s"].default)


def kafka_settings(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap=bootstrap, session_timeout_ms=SESSION_TIMEOUT_MS,
                         heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS)


def run_until_stopped(step: Callable[[], None]) -> None:
    """``step()`` over and over until SIGTERM or SIGINT; the step in hand finishes first,
    so every output it produced is delivered before the process exits."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        step()
