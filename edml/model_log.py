"""The model topic as a log: every published version in order, and the latest per name.

Compaction keeps only the latest value per key eventually, never at once, and the local
broker does not compact at all, so every reader applies "latest per key wins" itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from edml.codec import Codec
from edml.contracts import ModelKey, ModelMetadata
from edml.errors import DecodeError
from edml.kafka import read_partition
from edml.logs import event, get_logger
from edml.settings import KafkaSettings

__all__ = ["ModelEntry", "latest_keyed", "latest_per_name", "read_model_log"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ModelEntry:
    offset: int
    metadata: ModelMetadata
    timestamp_ms: int = 0  # when the event was produced (its Kafka timestamp)


def read_model_log(kafka: KafkaSettings, topic: str, codec: Codec) -> list[ModelEntry]:
    """Every readable model event of the topic, oldest first.

    An event that does not decode is logged and skipped: one bad event must not hide the
    model every instance should serve. A keyed model's tombstone withdraws it: its earlier
    events are left out, as compaction would remove them.
    """
    entries: list[ModelEntry] = []
    for msg in read_partition(kafka, topic):
        value = msg.value()
        if value is None:  # a tombstone: a keyed model withdrawn (a fleet one is refused)
            withdrawn = _keyed_tombstone(codec, msg.key())
            if withdrawn is not None:
                entries = [e for e in entries
                           if (e.metadata.name, e.metadata.key) != withdrawn]
            continue
        try:
            codec.decode(msg.key() or b"", ModelKey)
            metadata = codec.decode(value, ModelMetadata)
        except DecodeError as exc:
            event(log, "model_event.undecodable", logging.WARNING, topic=topic,
                  offset=msg.offset(), error=str(exc))
            continue
        entries.append(ModelEntry(msg.offset() or 0, metadata, msg.timestamp()[1]))
    return entries


def _keyed_tombstone(codec: Codec, key: bytes | None) -> tuple[str, str] | None:
    """The keyed model a tombstone's key names, if it names one."""
    try:
        model = codec.decode(key or b"", ModelKey)
    except DecodeError:
        return None
    return None if model.key is None else (model.name, model.key)


def latest_per_name(entries: Iterable[ModelEntry]) -> dict[str, ModelEntry]:
    """Latest wins: the last event of each model name's fleet model, in topic order."""
    latest: dict[str, ModelEntry] = {}
    for entry in entries:
        if entry.metadata.key is None:
            latest[entry.metadata.name] = entry
    return latest


def latest_keyed(entries: Iterable[ModelEntry], name: str) -> dict[str, ModelEntry]:
    """Latest wins: the last event of each keyed model of ``name``, by key."""
    latest: dict[str, ModelEntry] = {}
    for entry in entries:
        if entry.metadata.name == name and entry.metadata.key is not None:
            latest[entry.metadata.key] = entry
    return latest
