"""Follows the model topic: every worker reads all of it itself, group-less, into its model
table, and says when it has caught up to the end the broker reports.

faust 0.15.3's GlobalTable loses live updates across workers and can skip records on
restore; this reader is what proved right every time (see the README).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from edml.codec import Codec
from edml.contracts import ModelKey, ModelMetadata
from edml.errors import DecodeError
from edml.kafka import consumer
from edml.logs import event, get_logger
from edml.settings import KafkaSettings
from services.model_table import ModelTable

__all__ = ["ModelFollower"]

log = get_logger(__name__)
_POLL_S = 0.5  # seconds; how quickly a stop request is noticed


class ModelFollower:
    def __init__(self, kafka: KafkaSettings, topic: str, table: ModelTable, codec: Codec,
                 on_update: Callable[[ModelMetadata], None]) -> None:
        self._kafka, self._topic, self._table, self._codec = kafka, topic, table, codec
        self._on_update = on_update
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-follower", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            self._follow()
        except BaseException as exc:  # surfaced by the service, which stops the worker
            self.error = exc
            event(log, "model_follower.failed", logging.ERROR, error=repr(exc))

    def _follow(self) -> None:
        last = self._table.offset()
        start = OFFSET_BEGINNING if last is None else last + 1
        reader = consumer(self._kafka)
        try:
            reader.assign([TopicPartition(self._topic, 0, start)])
            while not self._stop.is_set():
                msg = reader.poll(_POLL_S)
                if msg is None:
                    continue
                err = msg.error()
                if err is None:
                    self._apply(msg.offset() or 0, msg.key(), msg.value())
                elif err.code() == KafkaError._PARTITION_EOF:
                    if not self.caught_up.is_set():
                        event(log, "model_follower.caught_up", topic=self._topic,
                              offset=self._table.offset())
                    self.caught_up.set()
                elif err.code() != KafkaError.UNKNOWN_TOPIC_OR_PART and not err.retriable():
                    event(log, "model_follower.kafka_error", logging.WARNING, error=err.str())
        finally:
            reader.close()

    def _apply(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            self._table.advance(offset)
            return
        try:
            self._codec.decode(key or b"", ModelKey)
            metadata = self._codec.decode(value, ModelMetadata)
        except DecodeError as exc:
            event(log, "model_event.undecodable", logging.WARNING, topic=self._topic,
                  offset=offset, error=str(exc))
            self._table.advance(offset)
            return
        self._table.put(offset, metadata)
        event(log, "model_event.applied", model=metadata.name, version=metadata.version,
              offset=offset)
        self._on_update(metadata)
