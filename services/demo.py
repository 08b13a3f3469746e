"""``edml demo``: the whole system on this machine, live.

Starts the local stack, trains two quick models (or reuses them), publishes v1, starts a
scoring worker, replays real trips as requests at a steady rate (and their actual
durations a moment later), publishes v2 midway, and shows it all in the terminal: rate,
latency, the serving version, running MAE against the actual durations, dead letters.
Ctrl-C, or the end of ``--seconds``, stops everything cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from edml.codec import Codec
from edml.contracts import TripCompleted, TripPrediction
from edml.kafka import consumer, producer
from edml.local import LocalStack, StackSettings
from edml.local.processes import free_port
from edml.trip_data import default_trip_data
from services.probe import wait_ready
from services.replay import replay_trips

__all__ = ["run"]

MODEL = "trip-duration"
_ACTUAL_DELAY_S = 2.0  # the demo's stand-in for "the trip ends": actuals follow requests
_VIEW_EVERY_S = 0.1  # seconds between refreshes of the live view
_VIEW_WIDTH = 80  # columns; the last view stays on screen and must not wrap


@dataclass
class _Stats:
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    predicted: int = 0
    by_version: Counter[str] = field(default_factory=Counter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    errors_min: dict[str, list[float]] = field(default_factory=dict)
    recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=50))
    serving: str = "-"
    events: list[str] = field(default_factory=list)

    def rate(self) -> float:
        if len(self.recent) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.recent[0], self.recent[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def _models(console: Console, data: list[str], home: Path) -> tuple[Path, Path]:
    """Two quick models (different seeds) under .edml/demo, trained once and reused."""
    from trainer.pipeline import train
    from trainer.settings import TrainSettings

    paths = []
    for seed in (1, 2):
        out = home / f"model-seed{seed}"
        if not (out / "saved_model" / "saved_model.pb").is_file():
            console.print(f"training quick model (seed {seed}) ...")
            train(TrainSettings(quick=True, out=out, seed=seed, data=tuple(data)), console)
        paths.append(out / "saved_model")
    return paths[0], paths[1]


def _view(stats: _Stats, seconds: float) -> Group:
    """The live view; it stays on screen at the end, so it fits 80 columns."""
    table = Table(title=f"edml demo: {stats.sent:,} requests sent, "
                        f"{time.monotonic() - stats.started:,.0f} of {seconds:.0f} s",
                  show_header=False, min_width=60)
    table.add_row("serving", f"[bold green]{stats.serving}[/]")
    table.add_row("predictions", f"{stats.predicted:,}  ({stats.rate():,.0f}/s)")
    if stats.latencies_ms:
        lat = np.array(stats.latencies_ms)
        table.add_row("latency p50 / p99",
                      f"{np.percentile(lat, 50):,.0f} / {np.percentile(lat, 99):,.0f} ms "
                      "(last 2,000)")
    for version, errors in stats.errors_min.items():
        table.add_row(f"MAE {version}", f"{np.mean(errors):.2f} min over {len(errors):,} "
                                        f"trips of {stats.by_version[version]:,}")
    log = Table(show_header=False, box=None, padding=0, width=_VIEW_WIDTH)
    for line in stats.events[-6:]:
        log.add_row(Text(line, overflow="ellipsis", no_wrap=True))
    return Group(table, log)


def run(seconds: float = 40.0, rate: int = 200, data: list[str] | None = None,
        storage: str = "file") -> int:
    from model_publisher.publish import publish
    from model_publisher.settings import PublisherSettings

    console, codec, data = Console(), Codec(), data or []
    logging.getLogger().setLevel(logging.WARNING)  # the live view tells the story
    home = Path(".edml/demo")
    if not data:
        console.print(f"data: {default_trip_data().label}")
    v1_dir, v2_dir = _models(console, data, home)
    trips = replay_trips(int(seconds * rate) + rate, "demo", data, shuffle_seed=1)
    actual = {done.trip_id: done.duration_seconds for _, done in trips}
    stats = _Stats()
    with console.status("starting the local stack ..."):
        stack = LocalStack(StackSettings(storage=storage)).__enter__()  # type: ignore[arg-type]
    worker: subprocess.Popen[bytes] | None = None
    try:
        kafka, topics = stack.kafka_settings(), stack.topics
        publisher = PublisherSettings(kafka=kafka, topics=topics, storage=stack.storage_settings())
        stamp = time.strftime("%H%M%S")
        publish(v1_dir, MODEL, publisher, version=f"demo-{stamp}-v1")
        stats.events.append(f"published {MODEL} demo-{stamp}-v1")
        port = free_port()
        env = {**os.environ, **stack.env(), "TF_CPP_MIN_LOG_LEVEL": "2",
               "EDML_SCORING_MODEL_NAME": MODEL, "EDML_SCORING_WEB_HOST": "127.0.0.1",
               "EDML_SCORING_WEB_PORT": str(port),
               "EDML_SCORING_DATA_DIR": str(stack.workdir / "worker")}
        log_path = home / "worker.log"
        with log_path.open("w") as log:
            worker = subprocess.Popen([sys.executable, "-m", "edml.cli", "serve"], env=env,
                                      stdout=log, stderr=subprocess.STDOUT)
        with console.status("waiting for the scoring worker to load v1 ..."):
            wait_ready(port, worker)
        stats.events.append(f"scoring worker ready, log {log_path}")
        stats.events.append(f"metrics http://127.0.0.1:{port}/metrics")
        reader = consumer(kafka, None, **{"enable.partition.eof": False})
        reader.assign([TopicPartition(topics.predictions, p, OFFSET_BEGINNING)
                       for p in range(topics.partitions)])
        prod = producer(kafka)
        pending: deque[tuple[float, TripCompleted]] = deque()
        swapped = False
        with Live(_view(stats, seconds), console=console, refresh_per_second=4) as live:
            started = stats.started = time.monotonic()
            next_view = started
            for request, done in trips:
                elapsed = time.monotonic() - started
                if elapsed > seconds:
                    break
                prod.produce(topics.records, key=request.trip_id.encode(),
                             value=codec.encode(request))
                pending.append((time.monotonic() + _ACTUAL_DELAY_S, done))
                stats.sent += 1
                while pending and pending[0][0] <= time.monotonic():
                    completed = pending.popleft()[1]
                    prod.produce(topics.actuals, key=completed.trip_id.encode(),
                                 value=codec.encode(completed))
                if not swapped and elapsed > seconds / 2:
                    publish(v2_dir, MODEL, publisher, version=f"demo-{stamp}-v2")
                    stats.events.append(f"{elapsed:5.1f} s  published {MODEL} demo-{stamp}-v2")
                    swapped = True
                prod.poll(0)
                if time.monotonic() >= next_view:  # the view, not every request, at 10/s
                    _drain(reader, codec, stats, actual, elapsed)
                    live.update(_view(stats, seconds))
                    next_view += _VIEW_EVERY_S
                time.sleep(max(0.0, stats.sent / rate - (time.monotonic() - started)))
            prod.flush(10)
            end = time.monotonic() + 10
            while stats.predicted < stats.sent and time.monotonic() < end:
                _drain(reader, codec, stats, actual, time.monotonic() - started)
                live.update(_view(stats, seconds))
        reader.close()
        console.print(f"\n{stats.predicted:,} of {stats.sent:,} requests predicted")
    except KeyboardInterrupt:
        console.print("interrupted: stopping")
    finally:
        if worker is not None:
            worker.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(30)
            if worker.poll() is None:
                worker.kill()
        stack.__exit__(None, None, None)
        console.print("the worker and the local stack are stopped")
    return 0


def _drain(reader: object, codec: Codec, stats: _Stats, actual: dict[str, float],
           elapsed: float) -> None:
    for msg in reader.consume(1000, 0.005):  # type: ignore[attr-defined]
        if msg.error() is not None:
            continue
        p = codec.decode_record(msg.value(), TripPrediction.SCHEMA)
        version = p["model_version"]
        if version not in stats.by_version:  # versions only move forward
            stats.events.append(f"{elapsed:5.1f} s  first prediction of {version}")
            stats.serving = version
        stats.predicted += 1
        stats.by_version[version] += 1
        stats.latencies_ms.append(
            (p["predicted_at"].timestamp() - p["requested_at"].timestamp()) * 1000)
        truth = actual.get(p["trip_id"])
        if truth is not None:
            stats.errors_min.setdefault(version, []).append(
                abs(p["predicted_duration_seconds"] - truth) / 60)
    stats.recent.append((time.monotonic(), stats.predicted))
