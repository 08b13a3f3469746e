"""A candidate served beside the champion by a real worker, on the real local broker."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from controller.controller import running
from controller.settings import ControllerSettings
from edml.contracts import RolloutEvidence, RolloutPolicy, ShadowPredictions, TripPrediction
from edml.kafka import read_partition
from edml.settings import KafkaSettings, TopicSettings
from model_publisher.publish import publish
from model_publisher.settings import PublisherSettings
from services.batch import answered_by_candidate
from tests.services.workers import (
    CODEC,
    Workers,
    read_outputs,
    real_requests,
    real_trips,
    send,
    wait_for,
)

CANARY_V2 = 'edml_candidate_info{mode="canary",model_version="v2"}'  # value: its weight

pytestmark = [pytest.mark.kafka, pytest.mark.gcs, pytest.mark.tf, pytest.mark.timeout(300)]


def _shadow(kafka: KafkaSettings, topics: TopicSettings) -> list[TripPrediction]:
    return [prediction for partition in range(topics.partitions)
            for m in read_partition(kafka, topics.shadow_predictions, partition)
            for prediction in CODEC.decode(m.value(), ShadowPredictions).predictions()]


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


def _evaluated_pairs(kafka: KafkaSettings, topics: TopicSettings) -> int:
    evidence = (CODEC.decode_if(m.value() or b"", RolloutEvidence)
                for m in read_partition(kafka, topics.evaluations))
    return sum(e.paired for e in evidence if e is not None)


def _paired_diffs(kafka: KafkaSettings, topics: TopicSettings, champion: str, candidate: str,
                  actuals: dict[str, float]) -> list[float]:
    """The paired differences recomputed from the topics consumers see: both versions'
    predictions of each trip (main and shadow topics) against its actual duration."""
    made: dict[str, dict[str, float]] = {}
    for p in read_outputs(kafka, topics).predictions + _shadow(kafka, topics):
        made.setdefault(p.trip_id, {})[p.model_version] = p.predicted_duration_seconds
    return [abs(m[candidate] - actuals[t]) - abs(m[champion] - actuals[t])
            for t, m in made.items() if champion in m and candidate in m and t in actuals]


def test_the_controller_alone_promotes_a_better_shadow_and_rolls_back_a_worse_canary(
    quick_model: Path, slower_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    policy = RolloutPolicy(min_paired=100)
    publish(slower_model, "trips", publisher, version="v1")  # 10 minutes too long
    worker = workers.make("w1").start()
    worker.wait_ready("v1")
    publish(quick_model, "trips", publisher, version="v2", mode="shadow", policy=policy)
    wait_for(lambda: worker.metric('edml_candidate_info{mode="shadow",model_version="v2"}')
             == 0.0 and "v2" in worker.get("/metrics")[1].decode(), 60, "v2 in shadow")

    trips = real_trips(300, "first")
    send(kafka, topics.records, [request for request, _ in trips])
    wait_for(lambda: len(read_outputs(kafka, topics).predictions) >= 300, 60, "predictions")
    send(kafka, topics.actuals, [done for _, done in trips])
    wait_for(lambda: _evaluated_pairs(kafka, topics) >= 300, 60, "the evidence of 300 pairs")

    with running(ControllerSettings(kafka=kafka, topics=topics,
                                    storage=publisher.storage)) as controller:
        wait_for(lambda: controller.decisions, 30, "the controller's decision")
        promotion = controller.decisions[0]
        assert (promotion.kind, promotion.model_version) == ("promoted", "v2")
        worker.wait_ready("v2")  # the worker follows the new state: v2 is the champion
        actuals = {done.trip_id: done.duration_seconds for _, done in trips}
        diffs = _paired_diffs(kafka, topics, "v1", "v2", actuals)
        d = promotion.decision
        assert d is not None and d.rule == "better" and d.paired == len(diffs) == 300
        assert d.mean_diff_seconds == pytest.approx(sum(diffs) / len(diffs))

        publish(slower_model, "trips", publisher, version="v3", mode="canary", weight=0.5,
                policy=policy)
        wait_for(lambda: worker.metric(
            'edml_candidate_info{mode="canary",model_version="v3"}') == 0.5, 60, "v3 canary")
        more = real_trips(300, "second")
        send(kafka, topics.records, [request for request, _ in more])
        wait_for(lambda: len(read_outputs(kafka, topics).predictions) >= 600, 60,
                 "predictions")
        send(kafka, topics.actuals, [done for _, done in more])
        wait_for(lambda: len(controller.decisions) >= 2, 60, "the second decision")
    rollback = controller.decisions[1]
    assert (rollback.kind, rollback.model_version) == ("rolled_back", "v3")
    assert rollback.decision is not None and rollback.decision.rule == "worse"
    main = read_outputs(kafka, topics)
    assert not main.dead_letters
    assert Counter(Counter(p.trip_id for p in main.predictions).values()) == {1: 600}
    served = Counter(p.model_version for p in main.predictions)
    assert served["v1"] == 300 and 0 < served["v3"] < 300  # a canary's share of the second
