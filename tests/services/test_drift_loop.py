"""Drift noticed on the stream, end to end on the real local broker: ten days of real
October 2019 trips replayed in event-time order (each request at its pickup, its actual
at its dropoff) through a worker serving a model with its reference profile; the
controller judges the merged windows and writes what it finds to the model-events topic."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest

from controller.controller import running
from controller.settings import ControllerSettings
from edml.codec import Codec
from edml.contracts import DriftWindow, TripCompleted, TripRequest
from edml.kafka import flush_or_raise, producer, read_partition
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from model_publisher.models import status
from model_publisher.publish import publish
from model_publisher.settings import PublisherSettings
from services.drift_scenario import event_time_order
from tests.services.workers import Workers, read_model_events, real_trips, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.gcs, pytest.mark.tf, pytest.mark.timeout(300)]

CODEC = Codec()
Trip = tuple[TripRequest, TripCompleted]


def _ten_days(passengers_from_day_6: int | None = None) -> list[Trip]:
    trips = [t for t in real_trips(20_000, "drift") if t[0].pickup_datetime.day <= 10]
    if passengers_from_day_6 is None:
        return trips
    return [(dataclasses.replace(r, passenger_count=passengers_from_day_6), a)
            if r.pickup_datetime.day >= 6 else (r, a) for r, a in trips]


def _replay(kafka: KafkaSettings, topics: TopicSettings, trips: list[Trip]) -> None:
    """Requests at their pickups and actuals at their dropoffs, in event-time order."""
    prod = producer(kafka)
    for _, is_request, record in event_time_order(trips):
        prod.produce(topics.records if is_request else topics.actuals,
                     key=record.trip_id.encode(), value=CODEC.encode(record))
    flush_or_raise(prod, 30)


def _serve_and_replay(quick_model: Path, publisher: PublisherSettings, workers: Workers,
                      kafka: KafkaSettings, topics: TopicSettings, trips: list[Trip]) -> None:
    publish(quick_model, "trips", publisher, version="v1")
    worker = workers.make("w1", extra_env={"EDML_SCORING_DRIFT_FLUSH_S": "0.2"}).start()
    worker.wait_ready("v1")
    _replay(kafka, topics, trips)


def _controller(kafka: KafkaSettings, topics: TopicSettings,
                gcs: StorageSettings) -> ControllerSettings:
    # two settle days: the request waits for October 9, the last day judged here
    return ControllerSettings(kafka=kafka, topics=topics, storage=gcs, retrain_settle_days=2)


def test_a_stable_stream_raises_nothing(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
) -> None:
    _serve_and_replay(quick_model, publisher, workers, kafka, topics, _ten_days())
    with running(_controller(kafka, topics, gcs)) as controller:
        # every full day but the last is judged: the last is closed 4 event-time hours
        # after it ends, and the replay stops before
        wait_for(lambda: controller.drift_judged_through("trips", "v1") == date(2019, 10, 9),
                 90, "the days up to October 9 judged")
        assert controller.drift_events == []
    assert not [e for e in read_model_events(kafka, topics)
                if e.kind in ("drift_detected", "retrain_requested")]


def test_a_shift_in_the_inputs_raises_drift_and_one_retrain_request(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
) -> None:
    _serve_and_replay(quick_model, publisher, workers, kafka, topics,
                      _ten_days(passengers_from_day_6=5))
    with running(_controller(kafka, topics, gcs)) as controller:
        wait_for(lambda: controller.drift_judged_through("trips", "v1") == date(2019, 10, 9),
                 90, "the days up to October 9 judged")
    events = [e for e in read_model_events(kafka, topics)
              if e.kind in ("drift_detected", "retrain_requested")]
    found = {(e.drift.detector, e.drift.window_end) for e in events if e.drift is not None}
    assert ("inputs.passenger_count", date(2019, 10, 7)) in found  # the first full week
    requests = [e.retrain for e in events if e.retrain is not None]
    assert len(requests) == 1
    assert requests[0].champion_version == "v1"
    assert (requests[0].train_start, requests[0].train_end) == (date(2019, 9, 24),
                                                                date(2019, 10, 9))
    # `edml models status` shows them beside the serving state
    shown = status(publisher, "trips")
    assert shown.state.profile == "edml_profile.json"  # named in the model event
    assert {e.drift.detector for e in shown.drift if e.drift} >= {"inputs.passenger_count"}
    assert shown.retrain is not None and shown.retrain.retrain == requests[0]
    # the evidence is on the evaluations topic: windows of every replayed day
    windows = [w for w in (CODEC.decode_if(m.value() or b"", DriftWindow)
                           for m in read_partition(kafka, topics.evaluations)) if w is not None]
    assert {w.day for w in windows if w.requests} == {date(2019, 10, d) for d in range(1, 11)}
    assert sum(w.requests for w in windows) == len(_ten_days())
