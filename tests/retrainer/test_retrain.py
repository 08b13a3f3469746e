"""The retrainer on the real local broker and the GCS emulator: a retrain request becomes
a shadow candidate trained on the trips of its window, read back from the topics."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from edml.codec import Codec
from edml.contracts import SHADOW, ModelEvent, RetrainRequest
from edml.kafka import flush_or_raise, producer
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from model_publisher.publish import current_state, publish
from model_publisher.settings import PublisherSettings
from retrainer.retrain import follow
from retrainer.settings import RetrainSettings
from tests.services.workers import real_trips, send, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.gcs, pytest.mark.tf, pytest.mark.timeout(300)]

CODEC = Codec()
REQUEST = RetrainRequest("retrain-trips-v1-20191014", "inputs.passenger_count",
                         date(2019, 10, 1), date(2019, 10, 14), "v1")


@pytest.fixture
def publisher(kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings
              ) -> PublisherSettings:
    return PublisherSettings(kafka=kafka, topics=topics, storage=gcs, git_commit="0123abcd")


@contextmanager
def _following(settings: RetrainSettings) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=follow, args=(settings, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def _ask(kafka: KafkaSettings, topics: TopicSettings, request: RetrainRequest,
         key: str | None = None) -> None:
    prod = producer(kafka)
    prod.produce(topics.model_events, key=b"trips", value=CODEC.encode(ModelEvent(
        "trips", request.champion_version, "retrain_requested", "controller",
        datetime.now(UTC), retrain=request, model_key=key)))
    flush_or_raise(prod, 30)


def test_a_request_becomes_a_shadow_candidate_trained_on_its_window_from_the_topics(
    quick_model: Path, publisher: PublisherSettings, kafka: KafkaSettings,
    topics: TopicSettings, gcs: StorageSettings, tmp_path: Path,
) -> None:
    publish(quick_model, "trips", publisher, version="v1")
    trips = [t for t in real_trips(20_000, "stream") if t[0].pickup_datetime.day <= 20]
    send(kafka, topics.records, [r for r, _ in trips])
    send(kafka, topics.actuals, [a for _, a in trips])
    in_window = sum(1 for r, _ in trips if r.pickup_datetime.day <= 14)
    settings = RetrainSettings(kafka=kafka, topics=topics, storage=gcs, quick=True,
                               work_dir=tmp_path / "retrain", git_commit="0123abcd",
                               group_id=f"retrainer-{topics.records}")
    with _following(settings):
        _ask(kafka, topics, REQUEST)
        wait_for(lambda: (s := current_state(publisher, "trips")) is not None
                 and s.rollout is not None, 120, "a candidate in the model topic")
        _ask(kafka, topics, REQUEST)  # the same request again: answered already
        # another request is passed over: v1 has a candidate in rollout already
        _ask(kafka, topics, RetrainRequest("other", "test", date(2019, 10, 1),
                                           date(2019, 10, 14), "v1"))
    state = current_state(publisher, "trips")
    assert state is not None and state.version == "v1" and state.rollout is not None
    assert state.rollout.mode == SHADOW
    assert state.rollout.candidate.retrain_request == REQUEST.request_id
    made = json.loads((tmp_path / "retrain" / REQUEST.request_id / "saved_model"
                       / "edml_model.json").read_text())
    assert made["data_window"] == {"start": "2019-10-01", "end": "2019-10-14"}
    rows = made["rows"]
    assert rows["read"] == in_window  # every trip of the window, from the topics
    assert rows["after_cleaning"] > 0.9 * in_window  # the trainer's cleaning rules ran
    # the window's last 3 days validate: its first 11 train (all of them: fewer than a
    # quick run's cap)
    assert rows["train"] == sum(1 for r, _ in trips if r.pickup_datetime.day <= 11)
    assert made["start"] == "warm"  # from v1's own Keras model, kept in its artifact


def test_a_keyed_models_request_is_trained_on_its_keys_trips_and_becomes_its_candidate(
    quick_model: Path, publisher: PublisherSettings, kafka: KafkaSettings,
    topics: TopicSettings, gcs: StorageSettings, tmp_path: Path,
) -> None:
    publish(quick_model, "trips", publisher, version="v1", routed_by="pickup_zone_id")
    publish(quick_model, "trips", publisher, version="k1", key="237")
    trips = [t for t in real_trips(20_000, "keyed") if t[0].pickup_datetime.day <= 14]
    send(kafka, topics.records, [r for r, _ in trips])
    send(kafka, topics.actuals, [a for _, a in trips])
    request = RetrainRequest("retrain-trips-237-k1-20191014", "inputs.passenger_count",
                             date(2019, 10, 1), date(2019, 10, 14), "k1")
    settings = RetrainSettings(kafka=kafka, topics=topics, storage=gcs, quick=True,
                               work_dir=tmp_path / "retrain", git_commit="0123abcd",
                               group_id=f"retrainer-{topics.records}")
    with _following(settings):
        _ask(kafka, topics, request, key="237")
        wait_for(lambda: (s := current_state(publisher, "trips", "237")) is not None
                 and s.rollout is not None, 120, "a candidate for key 237")
    keyed = current_state(publisher, "trips", "237")
    assert keyed is not None and keyed.version == "k1" and keyed.rollout is not None
    assert keyed.rollout.mode == SHADOW and keyed.rollout.candidate.key == "237"
    assert keyed.rollout.candidate.retrain_request == request.request_id
    fleet = current_state(publisher, "trips")
    assert fleet is not None and fleet.version == "v1" and fleet.rollout is None
    made = json.loads((tmp_path / "retrain" / request.request_id / "saved_model"
                       / "edml_model.json").read_text())
    mine = sum(1 for r, _ in trips if r.pickup_zone_id == 237)
    assert made["rows"]["read"] == len(trips)  # the window's, from the topics
    assert made["rows"]["after_cleaning"] == made["rows"]["train"] + \
        made["rows"]["validation"] == mine  # the key's alone were trained on
    assert made["cleaning"]["dropped"]["pickup_zone_id is not 237"] == len(trips) - mine
    # backtested against k1 on the key's validation days before it was published
    assert keyed.rollout.candidate.metrics["backtest_trips"] == made["rows"]["validation"]
