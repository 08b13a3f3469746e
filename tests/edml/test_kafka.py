"""The contracts through the real local broker."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient

from edml.codec import Codec
from edml.contracts import ModelKey, ModelMetadata
from edml.errors import BrokerError
from edml.kafka import (
    client_config,
    consumer,
    flush_or_raise,
    group_is_empty,
    producer,
    read_partition,
)
from edml.local import LocalStack
from edml.local.processes import free_port
from edml.local.roundtrip import round_trip
from edml.model_log import latest_per_name, read_model_log
from edml.samples import sample_events
from edml.settings import KafkaSettings, TopicSettings

pytestmark = pytest.mark.kafka


def _metadata(name: str, version: str) -> ModelMetadata:
    base = next(v for v, _ in sample_events() if isinstance(v, ModelMetadata))
    return dataclasses.replace(base, name=name, version=version)


def test_each_schema_round_trips_through_kafka(stack: LocalStack) -> None:
    results = round_trip(stack, Codec())
    assert {schema for schema, *_ in results} == {
        "edml.TripRequest", "edml.TripPrediction", "edml.TripCompleted",
        "edml.ModelMetadata", "edml.DeadLetter", "edml.ModelEvent", "edml.RolloutEvidence",
        "edml.ShadowPredictions", "edml.DriftWindow"}
    assert all(equal for *_, equal in results), results


def test_topics_are_created_with_their_partitions(kafka: KafkaSettings,
                                                  topics: TopicSettings) -> None:
    metadata = AdminClient(client_config(kafka)).list_topics(timeout=10).topics
    assert len(metadata[topics.models].partitions) == 1
    assert len(metadata[topics.records].partitions) == topics.partitions


def test_a_late_reader_of_the_model_topic_gets_the_latest_version_per_name(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    codec = Codec()
    prod = producer(kafka)
    published = [("duration", "v1"), ("fare", "v1"), ("duration", "v2"), ("duration", "v3"),
                 ("fare", "v2")]
    for name, version in published:
        prod.produce(topics.models, key=codec.encode(ModelKey(name)),
                     value=codec.encode(_metadata(name, version)))
    flush_or_raise(prod, 10)

    entries = read_model_log(kafka, topics.models, codec)  # starts after every publish

    assert [(e.metadata.name, e.metadata.version) for e in entries] == published
    latest = latest_per_name(entries)
    assert {n: e.metadata.version for n, e in latest.items()} == {"duration": "v3", "fare": "v2"}


def test_an_undecodable_model_event_is_skipped_not_fatal(
    kafka: KafkaSettings, topics: TopicSettings, caplog: pytest.LogCaptureFixture
) -> None:
    codec = Codec()
    prod = producer(kafka)
    key = codec.encode(ModelKey("duration"))
    prod.produce(topics.models, key=key, value=codec.encode(_metadata("duration", "v1")))
    prod.produce(topics.models, key=key, value=b"\xc3\x01not avro at all")
    flush_or_raise(prod, 10)

    latest = latest_per_name(read_model_log(kafka, topics.models, codec))

    assert latest["duration"].metadata.version == "v1"
    assert any(r.getMessage() == "model_event.undecodable" for r in caplog.records)


def test_reading_an_empty_partition_ends_at_once(kafka: KafkaSettings,
                                                 topics: TopicSettings) -> None:
    assert list(read_partition(kafka, topics.models)) == []


def test_an_unreachable_broker_is_a_broker_error_in_bounded_time() -> None:
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}", request_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(BrokerError, match="no answer"):
        list(read_partition(kafka, "edml.models"))
    assert time.monotonic() - started < 20  # a bound on hanging, not a speed claim


def test_a_group_is_empty_until_a_member_joins_and_a_broker_that_cannot_say_is_not_empty(
        kafka: KafkaSettings, topics: TopicSettings) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    assert group_is_empty(kafka, group)  # never seen
    member = consumer(kafka, group)
    member.subscribe([topics.records])
    deadline = time.monotonic() + 30
    while not member.assignment() and time.monotonic() < deadline:
        member.poll(0.1)
    try:
        assert not group_is_empty(kafka, group)
    finally:
        member.close()
    nowhere = KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}")
    assert not group_is_empty(nowhere, group, timeout_s=1.0)
