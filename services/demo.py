"""``edml demo``: the whole system on this machine, live.

Starts the local stack, trains two quick models (or reuses them), publishes v1, starts a
scoring worker and the rollout controller, and replays real trips as requests at a steady
rate (their actual durations a moment later). Early on, v2 (trained on more trips) arrives
as a shadow candidate: its paired evidence grows and the controller promotes it on its
own. Once it has decided, v3 arrives as a 20% canary: v2 answering five minutes longer, a
deliberately worse version, which the controller rolls back on its own. The terminal shows
it all: rate, latency, the serving version, running MAE per version against the actual
durations, the rollout's evidence and the decisions. Ctrl-C, or the end of ``--seconds``,
stops everything cleanly.
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

from controller.controller import running
from controller.settings import ControllerSettings
from edml.codec import Codec
from edml.contracts import (
    ModelEvent,
    RolloutEvidence,
    RolloutPolicy,
    TripCompleted,
    TripPrediction,
)
from edml.kafka import consumer, producer
from edml.local import LocalStack, StackSettings
from edml.local.processes import free_port, spawn
from edml.trip_data import default_trip_data
from services.probe import wait_ready
from services.replay import replay_trips

__all__ = ["run"]

MODEL = "trip-duration"
_ACTUAL_DELAY_S = 2.0  # the demo's stand-in for "the trip ends": actuals follow requests
_VIEW_EVERY_S = 0.1  # seconds between refreshes of the live view
_VIEW_WIDTH = 80  # columns; the last view stays on screen and must not wrap
_SHADOW_AT, _CANARY_AT = 0.15, 0.5  # shares of the run: v2 in shadow, then v3 as canary
_POLICY = RolloutPolicy(min_paired=200)  # a verdict within seconds at the demo's rate
_WORSE_BY_S = 300.0  # v3: v2 answering five minutes longer


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
    last_versions: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    # the rollout's evidence so far, per candidate: (paired trips, sum of differences)
    evidence: dict[str, tuple[int, float]] = field(default_factory=dict)

    def rate(self) -> float:
        if len(self.recent) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.recent[0], self.recent[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def _models(console: Console, data: list[str], home: Path) -> tuple[Path, Path, Path]:
    """Under .edml/demo, made once and reused: v1, a quick model on 1,500 trips; v2, one on
    6,000; v3, v2 answering five minutes longer."""
    from trainer.pipeline import train
    from trainer.settings import TrainSettings
    from trainer.variants import adding_seconds

    paths = []
    for seed, rows in ((1, 1500), (2, 6000)):
        out = home / f"model-{rows}-trips"
        if not (out / "saved_model" / "saved_model.pb").is_file():
            console.print(f"training a quick model on {rows:,} trips ...")
            train(TrainSettings(quick=True, quick_rows=rows, out=out, seed=seed,
                                data=tuple(data)), console)
        paths.append(out / "saved_model")
    worse = home / "model-6000-trips-plus-5-min"
    if not (worse / "saved_model.pb").is_file():
        adding_seconds(paths[1], worse, _WORSE_BY_S)
    return paths[0], paths[1], worse


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
    for version, (paired, total) in stats.evidence.items():
        table.add_row(f"evidence {version}", f"{paired:,} pairs, mean diff "
                                             f"{total / paired:+.1f} s" if paired else "-")
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
    v1_dir, v2_dir, v3_dir = _models(console, data, home)
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
        # with a parent-death signal: a demo killed from outside leaves no worker behind
        worker = spawn([sys.executable, "-m", "edml.cli", "serve"], log_path, env)
        with console.status("waiting for the scoring worker to load v1 ..."):
            wait_ready(port, worker)
        stats.events.append(f"scoring worker ready, log {log_path}")
        stats.events.append(f"metrics http://127.0.0.1:{port}/metrics")
        reader = consumer(kafka, None, **{"enable.partition.eof": False})
        reader.assign([TopicPartition(topics.predictions, p, OFFSET_BEGINNING)
                       for p in range(topics.partitions)]
                      + [TopicPartition(topics.evaluations, 0, OFFSET_BEGINNING)])
        prod = producer(kafka)
        pending: deque[tuple[float, TripCompleted]] = deque()
        shadowed = canaried = False
        decided = 0
        with running(ControllerSettings(kafka=kafka, topics=topics,
                                        storage=publisher.storage)) as controller, \
                Live(_view(stats, seconds), console=console, refresh_per_second=4) as live:
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
                if not shadowed and elapsed > seconds * _SHADOW_AT:
                    publish(v2_dir, MODEL, publisher, version=f"demo-{stamp}-v2",
                            mode="shadow", policy=_POLICY)
                    stats.events.append(f"{elapsed:5.1f} s  v2 published as a shadow")
                    shadowed = True
                if shadowed and not canaried and controller.decisions and \
                        elapsed > seconds * _CANARY_AT:
                    publish(v3_dir, MODEL, publisher, version=f"demo-{stamp}-v3",
                            mode="canary", weight=0.2, policy=_POLICY)
                    stats.events.append(f"{elapsed:5.1f} s  v3 (v2 + 5 min) published as a "
                                        f"20% canary")
                    canaried = True
                for decision in controller.decisions[decided:]:
                    stats.events.append(f"{elapsed:5.1f} s  controller: {_said(decision)}")
                    decided += 1
                prod.poll(0)
                if time.monotonic() >= next_view:  # the view, not every request, at 10/s
                    _drain(reader, codec, stats, actual, elapsed, topics.evaluations)
                    live.update(_view(stats, seconds))
                    next_view += _VIEW_EVERY_S
                time.sleep(max(0.0, stats.sent / rate - (time.monotonic() - started)))
            prod.flush(10)
            end = time.monotonic() + 10
            while stats.predicted < stats.sent and time.monotonic() < end:
                _drain(reader, codec, stats, actual, time.monotonic() - started,
                       topics.evaluations)
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
           elapsed: float, evaluations: str) -> None:
    """New predictions and rollout evidence into the view's numbers."""
    for msg in reader.consume(1000, 0.005):  # type: ignore[attr-defined]
        if msg.error() is not None:
            continue
        if msg.topic() == evaluations:
            e = codec.decode_if(msg.value(), RolloutEvidence)
            if e is None:  # the workers' drift windows travel there too
                continue
            paired, total = stats.evidence.get(e.candidate_version, (0, 0.0))
            stats.evidence[e.candidate_version] = (paired + e.paired, total + e.sum_diff)
            continue
        p = codec.decode_record(msg.value(), TripPrediction.SCHEMA)
        version = p["model_version"]
        if version not in stats.by_version:
            stats.events.append(f"{elapsed:5.1f} s  first prediction of {version}")
        stats.last_versions.append(version)
        stats.predicted += 1
        stats.by_version[version] += 1
        stats.latencies_ms.append(
            (p["predicted_at"].timestamp() - p["requested_at"].timestamp()) * 1000)
        truth = actual.get(p["trip_id"])
        if truth is not None:
            stats.errors_min.setdefault(version, []).append(
                abs(p["predicted_duration_seconds"] - truth) / 60)
    stats.recent.append((time.monotonic(), stats.predicted))
    if stats.last_versions:  # the champion answers most trips, even beside a canary
        stats.serving = Counter(stats.last_versions).most_common(1)[0][0]


def _said(decision: ModelEvent) -> str:
    d = decision.decision
    if d is None:
        return f"{decision.kind} {decision.model_version}"
    short = decision.model_version.rsplit("-", 1)[-1]
    interval = "" if d.ci_low_seconds is None or d.ci_high_seconds is None \
        else f" [{d.ci_low_seconds:+.0f}, {d.ci_high_seconds:+.0f}]"
    mean = "" if d.mean_diff_seconds is None else f", mean {d.mean_diff_seconds:+.1f} s"
    return f"{decision.kind} {short}: {d.rule}, {d.paired:,} pairs{mean}{interval}"
