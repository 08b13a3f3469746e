"""The 2020 scenario (``edml demo --scenario 2020``, ``bench/drift_2020.py``): the drift loop
against the real shift of spring 2020, on the local stack, from one command.

The champion is the model ``edml train`` ships (2018-01..2019-10). The real trips of
2020-01..2020-08 are replayed in event-time order, each request at its pickup and its
``TripCompleted`` at its dropoff, accelerated (a month in about ``seconds_per_month``),
through a scoring worker, the rollout controller (which also judges drift) and the
retrainer (``edml retrain --follow``), each a real process or thread of this machine:
nothing in between is simulated. At the end it prints, per month, the MAE of the
predictions consumers actually got, of the frozen champion (the same trips, scored
offline) and of the zone-pair median of 2018-19; the findings, retrain requests,
candidates and decisions in event time; and how many requests got no outcome.

Event time of a decision: the controller stamps its events with the wall clock; the
replay's own clock maps that back to event time (to within the replay's lag, well under
an event-time hour at the default speed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from rich.console import Console
from rich.table import Table

from controller.controller import running
from controller.settings import ControllerSettings
from edml.codec import Codec
from edml.columns import input_columns
from edml.contracts import (
    DeadLetter,
    ModelEvent,
    ModelMetadata,
    TripCompleted,
    TripPrediction,
    TripRequest,
)
from edml.kafka import consumer, flush_or_raise, producer, read_partition
from edml.local import LocalStack, StackSettings
from edml.local.processes import free_port, spawn
from edml.settings import KafkaSettings, TopicSettings
from services.probe import wait_ready
from services.replay import replay_trips

__all__ = ["ONSET", "ScenarioResult", "event_time_order", "monthly_table", "print_result",
           "run", "targets", "version_labels"]

MODEL = "trip-duration"
MONTHS = "2020-01..2020-08"
HISTORY = "2018-01..2019-10"  # the champion's months, and the zone-pair median's
ONSET = date(2020, 3, 15)  # the shift's onset: New York's schools closed on March 16
_DAY_S = 86_400
_SETTLE_S = 60.0  # after the replay: the last outcomes' wait
_DRAIN_EVERY_S = 0.5  # the predictions read back while replaying
_WORKER_FLUSH_S = 0.25  # the worker's drift windows: about 3 event-time hours each

Trip = tuple[TripRequest, TripCompleted]


@dataclass
class ScenarioResult:
    trips: pd.DataFrame  # per trip: month, actual, served, version, frozen, zone_pair
    events: list[tuple[datetime, str]]  # event time, what happened
    findings: list[ModelEvent]
    without_outcome: int
    seconds: float


@dataclass
class _Clock:
    """Event time <-> wall clock for an accelerated replay."""

    event_start: datetime
    wall_start: float  # time.time()
    speed: float  # event seconds per wall second

    def wall(self, at: datetime) -> float:
        return self.wall_start + (at - self.event_start).total_seconds() / self.speed

    def event(self, wall: float) -> datetime:
        return self.event_start + timedelta(seconds=(wall - self.wall_start) * self.speed)


@dataclass
class _Outcomes:
    served: dict[str, tuple[str, float]] = field(default_factory=dict)  # trip: version, s
    dead: set[str] = field(default_factory=set)


def _champion(home: Path, data: list[str], console: Console) -> Path:
    """The model ``edml train`` ships, trained once and kept under ``home``."""
    from trainer.export import KERAS_FILE
    from trainer.pipeline import train
    from trainer.settings import TrainSettings

    out = home / "champion-2018-01..2019-10"
    model = out / "saved_model"
    if not (model / KERAS_FILE).is_file():
        console.print("training the champion on 2018-01..2019-10 (once; about 30 s) ...")
        train(TrainSettings(out=out, months=HISTORY, data=tuple(data)), console)
    return model


def _frame(trips: list[Trip]) -> pd.DataFrame:
    return pd.DataFrame({
        "trip_id": [r.trip_id for r, _ in trips],
        "month": [r.pickup_datetime.strftime("%Y-%m") for r, _ in trips],
        "pickup_zone_id": [r.pickup_zone_id for r, _ in trips],
        "dropoff_zone_id": [r.dropoff_zone_id for r, _ in trips],
        "actual": [a.duration_seconds for _, a in trips]})


def _offline(model_dir: Path, trips: list[Trip], data: list[str]) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """The frozen champion's answers and the 2018-19 zone-pair medians, per trip."""
    from edml.savedmodel import load_savedmodel
    from trainer.evaluate import baselines

    model = load_savedmodel(model_dir)
    frozen = model.predict(input_columns(model.signature).from_requests(
        [r for r, _ in trips]))
    history = _frame(replay_trips(None, "history", data, months=HISTORY)).rename(
        columns={"actual": "duration_seconds"})
    pair = baselines(history, _frame(trips))["zone-pair median"]
    return np.asarray(frozen, dtype=np.float64), pair


def event_time_order(trips: list[Trip]) -> list[tuple[datetime, bool, TripRequest | TripCompleted]]:
    """Requests at their pickups and actuals at their dropoffs, in event-time order."""
    return sorted([(r.pickup_datetime, True, r) for r, _ in trips]
                  + [(a.dropoff_datetime, False, a) for _, a in trips],
                  key=lambda item: item[0])


def _reader(kafka: KafkaSettings, topics: TopicSettings) -> object:
    reader = consumer(kafka, None, **{"enable.partition.eof": False})
    reader.assign([TopicPartition(t, p, OFFSET_BEGINNING)
                   for t in (topics.predictions, topics.dead_letters)
                   for p in range(topics.partitions)])
    return reader


def _drain(reader: object, codec: Codec, topics: TopicSettings, outcomes: _Outcomes) -> None:
    for msg in reader.consume(5000, 0.01):  # type: ignore[attr-defined]
        if msg.error() is not None:
            continue
        if msg.topic() == topics.dead_letters:
            letter = codec.decode(msg.value(), DeadLetter)
            if letter.key:
                outcomes.dead.add(letter.key.decode())
            continue
        p = codec.decode_record(msg.value(), TripPrediction.SCHEMA)
        outcomes.served.setdefault(p["trip_id"], (p["model_version"],
                                                  p["predicted_duration_seconds"]))


@contextlib.contextmanager
def _process(args: list[str], log_path: Path, env: dict[str, str]) -> Iterator[
        subprocess.Popen[bytes]]:
    proc = spawn([sys.executable, "-m", "edml.cli", *args], log_path, env)
    try:
        yield proc
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _said(clock: _Clock, model_event: ModelEvent) -> tuple[datetime, str]:
    at = clock.event(model_event.at.timestamp())
    if model_event.drift is not None:
        d = model_event.drift
        return (datetime.combine(d.window_end, datetime.min.time()) + timedelta(days=1),
                f"drift on {model_event.model_version}: {d.detector} {d.statistic:.3f} > "
                f"{d.threshold:g} (window {d.window_start}..{d.window_end})")
    if model_event.retrain is not None:
        r = model_event.retrain
        return at, (f"retrain requested: {r.reason}; window {r.train_start}..{r.train_end}")
    if (decision := model_event.decision) is not None:
        return at, (f"{model_event.kind} {model_event.model_version}: {decision.rule}, "
                    f"{decision.paired:,} pairs, mean diff "
                    f"{decision.mean_diff_seconds or 0:+.1f} s")
    return at, f"{model_event.kind} {model_event.model_version}"


def run(seconds_per_month: float = 60.0, data: list[str] | None = None,
        console: Console | None = None) -> ScenarioResult:
    """Replay 2020-01..08 through the whole loop; returns what it measured."""
    from model_publisher.publish import publish
    from model_publisher.settings import PublisherSettings

    console, data, codec = console or Console(), data or [], Codec()
    began = time.monotonic()
    logging.getLogger().setLevel(logging.ERROR)  # what happens is printed as it happens
    home = Path(".edml/scenario-2020")
    champion = _champion(home, data, console)
    with console.status("reading the trips of 2020-01..08 and of 2018-19 ..."):
        trips = replay_trips(None, "t2020", data, months=MONTHS)
        frozen, zone_pair = _offline(champion, trips, data)
    timeline = event_time_order(trips)
    speed = 30 * _DAY_S / seconds_per_month
    outcomes = _Outcomes()
    run_id = uuid.uuid4().hex[:6]
    with LocalStack(StackSettings(storage="file")) as stack:
        kafka, topics = stack.kafka_settings(), stack.topics
        publisher = PublisherSettings(kafka=kafka, topics=topics,
                                      storage=stack.storage_settings())
        publish(champion, MODEL, publisher, version="2019")
        port = free_port()
        env = {**os.environ, **stack.env(), "TF_CPP_MIN_LOG_LEVEL": "2",
               "EDML_SCORING_MODEL_NAME": MODEL, "EDML_SCORING_WEB_HOST": "127.0.0.1",
               "EDML_SCORING_WEB_PORT": str(port),
               "EDML_SCORING_DATA_DIR": str(stack.workdir / "worker"),
               "EDML_SCORING_DRIFT_FLUSH_S": str(_WORKER_FLUSH_S),
               "EDML_RETRAIN_WORK_DIR": str(home / f"retrain-{run_id}"),
               "EDML_RETRAIN_GROUP_ID": f"retrainer-{run_id}"}
        with _process(["serve"], home / "worker.log", env) as worker, \
                _process(["retrain", "--follow"], home / "retrainer.log", env), \
                running(ControllerSettings(kafka=kafka, topics=topics,
                                           storage=publisher.storage)) as controller:
            with console.status("waiting for the worker to load the champion ..."):
                wait_ready(port, worker)
            console.print(f"replaying {len(trips):,} trips of {MONTHS}, a month in about "
                          f"{seconds_per_month:.0f} s; logs in {home}")
            reader = _reader(kafka, topics)
            clock = _Clock(timeline[0][0], time.time(), speed)
            prod, told, month, next_drain = producer(kafka), [0, 0], "", 0.0
            for at, is_request, record in timeline:
                delay = clock.wall(at) - time.time()
                if delay > 0:
                    time.sleep(delay)
                prod.produce(topics.records if is_request else topics.actuals,
                             key=record.trip_id.encode(), value=codec.encode(record))
                prod.poll(0)
                if time.monotonic() >= next_drain:
                    _drain(reader, codec, topics, outcomes)
                    next_drain = time.monotonic() + _DRAIN_EVERY_S
                if at.strftime("%Y-%m") != month:
                    month = at.strftime("%Y-%m")
                    console.print(f"[dim]{month}: {len(outcomes.served):,} predictions so "
                                  "far[/]")
                for i, made in enumerate((controller.drift_events, controller.decisions)):
                    for model_event in made[told[i]:]:
                        when, what = _said(clock, model_event)
                        console.print(f"  {when:%Y-%m-%d %H:%M}  {what}")
                        told[i] += 1
            flush_or_raise(prod, 30)
            wanted = {r.trip_id for r, _ in trips}
            settle_until = time.monotonic() + _SETTLE_S
            while time.monotonic() < settle_until and \
                    len(wanted - set(outcomes.served) - outcomes.dead) > 0:
                _drain(reader, codec, topics, outcomes)
            _drain(reader, codec, topics, outcomes)
            reader.close()  # type: ignore[attr-defined]
            events = [_said(clock, e) for e in _model_events(kafka, topics, codec)]
            events += _publications(kafka, topics, codec, clock)
            findings = list(controller.drift_events)
    frame = _frame(trips)
    served = [outcomes.served.get(t) for t in frame["trip_id"]]
    frame["version"] = [s[0] if s else None for s in served]
    frame["served"] = [s[1] if s else np.nan for s in served]
    frame["frozen"], frame["zone_pair"] = frozen, zone_pair
    without = len(wanted - set(outcomes.served) - outcomes.dead)
    return ScenarioResult(frame, sorted(events), [f for f in findings if f.drift], without,
                          time.monotonic() - began)


def _model_events(kafka: KafkaSettings, topics: TopicSettings, codec: Codec
                  ) -> list[ModelEvent]:
    """The retrain requests and the decisions on the model-events topic, decoded once."""
    decoded = (codec.decode(m.value() or b"", ModelEvent)
               for m in read_partition(kafka, topics.model_events))
    return [e for e in decoded if e.kind in ("retrain_requested", "promoted", "rolled_back")]


def _publications(kafka: KafkaSettings, topics: TopicSettings, codec: Codec,
                  clock: _Clock) -> list[tuple[datetime, str]]:
    """Each retrained candidate's arrival on the model topic."""
    out, seen = [], set()
    for msg in read_partition(kafka, topics.models):
        state = codec.decode(msg.value() or b"", ModelMetadata)
        if state.rollout is not None and state.rollout.candidate.version not in seen:
            candidate = state.rollout.candidate
            seen.add(candidate.version)
            out.append((clock.event(state.rollout.started_at.timestamp()),
                        f"candidate {candidate.version} in {state.rollout.mode} (answers "
                        f"{candidate.retrain_request})"))
    return out


def version_labels(trips: pd.DataFrame, champion: str = "2019") -> dict[str, str]:
    """Short names for the table: the champion's own, then r1, r2, ... for the retrained
    versions in the order they first answered a trip."""
    labels = {champion: champion}
    for version in trips["version"].dropna().drop_duplicates():
        labels.setdefault(str(version), f"r{len(labels)}")
    return labels


def monthly_table(trips: pd.DataFrame) -> pd.DataFrame:
    """Per month: trips, MAE (minutes) of what consumers got, of the frozen champion and
    of the zone-pair median, and the share of trips each version answered."""
    def mae(column: str) -> pd.Series:
        return ((trips[column] - trips["actual"]).abs() / 60).groupby(trips["month"]).mean()

    labels = version_labels(trips)
    by_month = trips.groupby("month")
    return pd.DataFrame({
        "trips": by_month.size(), "served": mae("served"), "frozen": mae("frozen"),
        "zone-pair": mae("zone_pair"),
        "versions": by_month["version"].agg(lambda v: ", ".join(
            f"{label} {n / len(v):.0%}" for n, label in sorted(
                ((n, labels[str(k)]) for k, n in v.value_counts().items()),
                key=lambda item: (-item[0], item[1])))),
    })


def print_result(result: ScenarioResult, console: Console) -> None:
    table = Table(title=f"2020 replayed (onset {ONSET}): MAE in minutes")
    for column in ("month", "trips", "served", "frozen", "zone-pair", "versions"):
        table.add_column(column, justify="left" if column in ("month", "versions") else "right")
    monthly = monthly_table(result.trips)
    for month, row in monthly.iterrows():
        table.add_row(str(month), f"{row['trips']:,}", f"{row['served']:.2f}",
                      f"{row['frozen']:.2f}", f"{row['zone-pair']:.2f}", str(row["versions"]))
    console.print(table)
    labels = version_labels(result.trips)
    for when, what in result.events:
        for version, label in labels.items():
            what = what.replace(version, label)
        console.print(f"  {when:%Y-%m-%d %H:%M}  {what}")
    found = sorted(f.drift.window_end for f in result.findings if f.drift is not None)
    after = [day for day in found if day >= ONSET]
    console.print(f"findings before the onset: {len(found) - len(after)}; first after it: "
                  + (f"{after[0]} ({(after[0] - ONSET).days} event-time days)" if after
                     else "none"))
    served, frozen = _shifted_mae(result.trips)
    console.print(f"2020-04..08: served MAE {served:.2f} min, frozen champion {frozen:.2f} "
                  f"min: {1 - served / frozen:.0%} lower")
    console.print(f"requests without an outcome: {result.without_outcome}; "
                  f"{result.seconds:.0f} s in all")
    for target, met in targets(result).items():
        console.print(f"{'met    ' if met else 'MISSED '} {target}")


def _shifted_mae(trips: pd.DataFrame) -> tuple[float, float]:
    """Served and frozen MAE (minutes) over 2020-04..08, the months after the shift."""
    after = trips[trips["month"] >= "2020-04"]
    return (float((after["served"] - after["actual"]).abs().mean() / 60),
            float((after["frozen"] - after["actual"]).abs().mean() / 60))


def targets(result: ScenarioResult) -> dict[str, bool]:
    """Issue 12's targets, each with whether this run met it."""
    found = sorted(f.drift.window_end for f in result.findings if f.drift is not None)
    monthly = monthly_table(result.trips)
    after = monthly[monthly.index >= "2020-04"]
    served, frozen = _shifted_mae(result.trips)
    return {
        "no finding before the onset": not [day for day in found if day < ONSET],
        "first finding within 7 event-time days of the onset":
            bool(found) and ONSET <= found[0] <= ONSET + timedelta(days=7),
        "served 2020-04..08 at least 20% below the frozen champion": served <= 0.8 * frozen,
        "served below the zone-pair median in every month 2020-04..08":
            bool((after["served"] < after["zone-pair"]).all()),
        "no request without an outcome": result.without_outcome == 0,
    }
