"""``edml demo``: start the local stack and send one event of every contract through it."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from edml.codec import Codec
from edml.contracts import Record
from edml.kafka import flush_or_raise, producer, read_partition
from edml.local import LocalStack, StackSettings
from edml.samples import sample_events
from edml.settings import TopicSettings

__all__ = ["round_trip", "run"]


def _topic_of(record: Record, topics: TopicSettings) -> str:
    return {
        "edml.TripRequest": topics.records,
        "edml.TripPrediction": topics.predictions,
        "edml.TripCompleted": topics.actuals,
        "edml.ModelMetadata": topics.models,
        "edml.DeadLetter": topics.dead_letters,
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
        key_bytes = key if isinstance(key, bytes) else codec.encode(key)
        data = codec.encode(value)
        # partition 0 for all, so reading one partition back finds each
        prod.produce(topic, key=key_bytes, value=data, partition=0)
        sent.append((value, topic, data))
    flush_or_raise(prod, kafka.request_timeout_s)
    results = []
    for value, topic, data in sent:
        back = [codec.decode(m.value(), type(value)) for m in read_partition(kafka, topic)]
        results.append((value.SCHEMA, topic, len(data), value in back))
    return results


def run(storage: str = "file") -> int:
    console = Console()
    with console.status("starting the local stack (Tansu broker, object storage)..."), \
            LocalStack(StackSettings(storage=storage)) as stack:  # type: ignore[arg-type]
        console.print(f"broker [bold]{stack.bootstrap}[/], storage [bold]{stack.storage_uri}[/]")
        results = round_trip(stack, Codec())
    table = Table(title="one event of each contract through Kafka and back")
    for column in ("schema", "topic", "bytes", "round trip"):
        table.add_column(column)
    for schema, topic, size, ok in results:
        table.add_row(schema, topic, str(size), "[green]equal[/]" if ok else "[red]DIFFERENT[/]")
    console.print(table)
    console.print("the stack is stopped")
    return 0 if all(ok for *_, ok in results) else 1
