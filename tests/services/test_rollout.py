"""A candidate served beside the champion by a real worker, on the real local broker."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from edml.contracts import TripPrediction
from edml.kafka import read_partition
from edml.settings import KafkaSettings, TopicSettings
from model_publisher.publish import publish
from model_publisher.settings import PublisherSettings
from services.batch import answered_by_candidate
from tests.services.workers import CODEC, Workers, read_outputs, real_requests, send, wait_for

CANARY_V2 = 'edml_candidate_info{mode="canary",model_version="v2"}'  # value: its weight

pytestmark = [pytest.mark.kafka, pytest.mark.gcs, pytest.mark.tf, pytest.mark.timeout(300)]


def _shadow(kafka: KafkaSettings, topics: TopicSettings) -> list[TripPrediction]:
    return [CODEC.decode(m.value(), TripPrediction) for partition in range(topics.partitions)
            for m in read_partition(kafka, topics.shadow_predictions, partition)]


def test_a_canary_answers_its_share_and_every_trip_gets_one_main_prediction(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    publish(quick_model, "trips", publisher, version="v1")
    worker = workers.make("w1").start()
    worker.wait_ready("v1")
    publish(quick_model, "trips", publisher, version="v2", mode="canary", weight=0.1)
    wait_for(lambda: worker.metric(CANARY_V2) == 0.1, 60,
             "the candidate loaded beside the champion")

    requests = real_requests(2000)
    send(kafka, topics.records, requests)
    wait_for(lambda: len(read_outputs(kafka, topics).predictions) >= 2000, 90,
             "2000 predictions")
    wait_for(lambda: len(_shadow(kafka, topics)) >= 2000, 30, "2000 shadow predictions")

    main = read_outputs(kafka, topics).predictions
    assert Counter(Counter(p.trip_id for p in main).values()) == {1: 2000}  # one per trip
    served = {p.trip_id: p.model_version for p in main}
    # binomial(2000, 0.1): sd 0.67 points; 10% +- 2.5 points is over 3.5 sd
    assert 0.075 < Counter(served.values())["v2"] / 2000 < 0.125
    assert all((v == "v2") == answered_by_candidate(t, "v2", 0.1) for t, v in served.items())
    shadowed = {p.trip_id: p.model_version for p in _shadow(kafka, topics)}
    assert shadowed.keys() == served.keys()
    assert all(shadowed[t] != served[t] for t in served)  # the other side, never served

    # a restarted worker comes back with the same champion and candidate
    worker.stop()
    again = workers.make("w1").start()
    again.wait_ready("v1")
    wait_for(lambda: again.metric(CANARY_V2) == 0.1, 60,
             "the candidate back beside the champion after a restart")
