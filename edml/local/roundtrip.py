"""One event of every contract through the local stack and back: a smoke test of a stack."""

from __future__ import annotations

from edml.codec import Codec
from edml.contracts import Record
from edml.kafka import flush_or_raise, producer, read_partition
from edml.local.stack import LocalStack
from edml.samples import sample_events
from edml.settings import TopicSettings

__all__ = ["round_trip"]


def _topic_of(record: Record, topics: TopicSettings) -> str:
    return {
        "edml.TripRequest": topics.records,
        "edml.TripPrediction": topics.predictions,
        "edml.ShadowPredictions": topics.shadow_predictions,
        "edml.TripCompleted": topics.actuals,
        "edml.ModelMetadata": topics.models,
        "edml.DeadLetter": topics.dead_letters,
        "edml.ModelEvent": topics.model_events,
        "edml.RolloutEvidence": topics.evaluations,
        "edml.DriftWindow": topics.evaluations,
    }[record.SCHEMA]


def round_trip(stack: LocalStack, codec: Codec) -> list[tuple[str, str, int, bool]]:
    """Produce each sample event to its topic, read it back, compare.

    Returns (schema, topic, encoded size, equal after the round trip) per event.
    """
    kafka = stack.kafka_settings()
    prod = producer(kafka)
    sent = []
    for value, key in sample_events():
        topic = _topic_of(value, stack.topics)
        key_bytes = key if key is None or isinstance(key, bytes) else codec.encode(key)
        data = codec.encode(value)
        # partition 0 for all, so reading one partition back finds each
        prod.produce(topic, key=key_bytes, value=data, partition=0)
        sent.append((value, topic, data))
    flush_or_raise(prod, kafka.request_timeout_s)
    results = []
    for value, topic, data in sent:
        back = [codec.decode_if(m.value() or b"", type(value))
                for m in read_partition(kafka, topic)]
        results.append((value.SCHEMA, topic, len(data), value in back))
    return results
