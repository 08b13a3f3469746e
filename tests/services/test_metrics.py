"""What a worker's metrics say beyond plain counts: its consumer lag per partition, the
versions it refused, and the offline MAE of the versions in use."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from confluent_kafka import KafkaError, TopicPartition

from edml.contracts import ModelMetadata
from edml.samples import sample_events
from services.lag import ConsumerLag
from services.metrics import Metrics, observe_many


class Consumer:
    """What ConsumerLag asks of a confluent-kafka consumer."""

    def __init__(self, committed: dict[int, int], high: dict[int, int]) -> None:
        self.committed_offsets, self.high = committed, high
        self.asked = 0

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.asked += 1
        return [TopicPartition(tp.topic, tp.partition, self.committed_offsets.get(tp.partition,
                                                                                   -1001))
                for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        assert cached  # never a ListOffsets round trip from the scoring thread
        return 0, self.high.get(tp.partition, -1001)


def _lag(metrics: Metrics) -> dict[str, float]:
    return {s.labels["partition"]: s.value for family in metrics.registry.collect()
            if family.name == "edml_consumer_lag_records" for s in family.samples}


def _partitions(*numbers: int) -> list[TopicPartition]:
    return [TopicPartition("trips", n) for n in numbers]


def test_lag_is_the_fetched_high_watermark_minus_the_committed_offset() -> None:
    metrics, now = Metrics(), [0.0]
    lag = ConsumerLag(metrics, clock=lambda: now[0])
    consumer = Consumer(committed={0: 100, 1: 40}, high={0: 150, 1: 40, 2: 9})
    lag.show(consumer, _partitions(0, 1, 2), timeout_s=1)  # asks the group once
    # partition 2 has no committed offset yet: no figure rather than a wrong one
    assert consumer.asked == 1 and _lag(metrics) == {"0": 50, "1": 0}

    lag.committed(None, [TopicPartition("trips", 0, 140), TopicPartition("trips", 2, 5)])
    lag.show(consumer, _partitions(0, 1, 2), timeout_s=1)
    assert _lag(metrics) == {"0": 50, "1": 0}  # at most once a second
    now[0] = 1.5
    lag.show(consumer, _partitions(0, 1, 2), timeout_s=1)
    assert _lag(metrics) == {"0": 10, "1": 0, "2": 4}
    assert consumer.asked == 1  # every partition's commit is known now


def test_a_failed_commit_changes_nothing_and_revoked_partitions_disappear() -> None:
    metrics, now = Metrics(), [0.0]
    lag = ConsumerLag(metrics, clock=lambda: now[0])
    consumer = Consumer(committed={0: 100, 1: 40}, high={0: 150, 1: 60})
    lag.committed(KafkaError(KafkaError._TIMED_OUT), [TopicPartition("trips", 0, 150)])
    lag.show(consumer, _partitions(0, 1), timeout_s=1)
    assert _lag(metrics) == {"0": 50, "1": 20}
    lag.revoked(_partitions(1))
    now[0] = 2.0
    lag.show(consumer, _partitions(0), timeout_s=1)
    assert _lag(metrics) == {"0": 50}


def test_the_group_is_asked_again_only_every_ten_seconds_while_an_offset_is_unknown() -> None:
    metrics, now = Metrics(), [0.0]
    lag = ConsumerLag(metrics, clock=lambda: now[0])
    consumer = Consumer(committed={}, high={0: 150})  # a new group: nothing committed
    for second in range(0, 25):
        now[0] = float(second)
        lag.show(consumer, _partitions(0), timeout_s=1)
    assert consumer.asked == 3 and _lag(metrics) == {}  # at 0, 10 and 20 s


def _metadata(version: str, mae: float) -> ModelMetadata:
    base = next(v for v, _ in sample_events() if isinstance(v, ModelMetadata))
    return dataclasses.replace(base, version=version, metrics={"mae_minutes": mae})


def _samples(metrics: Metrics, name: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels.values()): s.value for family in metrics.registry.collect()
            for s in family.samples if s.name == name}


def test_a_refusal_stands_until_a_version_loads_after_it() -> None:
    metrics = Metrics()
    metrics.refused("v3", "ArtifactError")
    metrics.refused("v3", "ArtifactError")
    assert _samples(metrics, "edml_model_refused") == {("v3", "ArtifactError"): 1}
    assert _samples(metrics, "edml_model_load_failures_total") == {("v3", "ArtifactError"): 2}
    metrics.loaded(1.5)
    assert _samples(metrics, "edml_model_refused") == {}
    assert _samples(metrics, "edml_model_load_failures_total") == {("v3", "ArtifactError"): 2}


def test_the_offline_mae_of_the_champion_and_the_candidate_is_shown_while_they_are_in_use(
) -> None:
    metrics = Metrics()
    metrics.serving("trips", _metadata("v1", 4.0))
    metrics.candidate(_metadata("v2", 3.5), "shadow", 0.0)
    assert _samples(metrics, "edml_model_offline_mae_minutes") == {("v1",): 4.0, ("v2",): 3.5}
    metrics.serving("trips", _metadata("v2", 3.5))  # promoted
    metrics.candidate(None)
    assert _samples(metrics, "edml_model_offline_mae_minutes") == {("v2",): 3.5}
    assert _samples(metrics, "edml_model_info") == {("trips", "v2"): 1}


def test_a_batch_observed_at_once_shows_what_observing_each_value_shows() -> None:
    one_by_one, at_once = Metrics(), Metrics()
    values = np.concatenate([np.random.default_rng(5).exponential(0.05, 5000),
                             [0.0, 0.001, 0.0025, 10.0, 10.5, 1e9]])  # bounds and past them
    for value in values.tolist():
        one_by_one.end_to_end_seconds.labels("v1").observe(value)
    observe_many(at_once.end_to_end_seconds.labels("v1"), values)
    observe_many(at_once.end_to_end_seconds.labels("v1"), np.empty(0))

    def samples(metrics: Metrics) -> dict[str, float]:
        return {f"{s.name}{sorted(s.labels.items())}": s.value
                for metric in metrics.registry.collect()
                if metric.name == "edml_end_to_end_seconds"
                for s in metric.samples if not s.name.endswith("_created")}

    expected = samples(one_by_one)
    assert expected.keys() == samples(at_once).keys()
    assert samples(at_once) == pytest.approx(expected)
