"""Follows the model topic: every worker reads all of it itself, group-less, into its model
table, and says when it has caught up to the end the broker reports.

Only the state after catch-up counts: historical events fill the table without being
offered to anyone, and once caught up the follower calls ``on_caught_up`` (the service
then offers the latest version per name); from then on every event is offered as it comes.
A restarted worker resumes after its stored offset only if the event there is still the one
it applied; otherwise (topic recreated, broker storage lost, the event compacted away) it
reads the topic again from the beginning.

faust 0.15.3's GlobalTable loses live updates across workers and can skip records on
restore; this reader is what proved right every time (see the README).
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from edml.codec import Codec
from edml.contracts import ModelKey, ModelMetadata, model_label
from edml.errors import DecodeError
from edml.kafka import consumer
from edml.logs import event, get_logger
from edml.settings import KafkaSettings
from services.model_table import ModelTable

__all__ = ["ModelFollower", "event_mark"]

log = get_logger(__name__)
_POLL_S = 0.5  # seconds; how quickly a stop request is noticed


def event_mark(topic: str, msg: Message) -> bytes:
    """What identifies one event of the model topic: topic, offset, timestamp, a CRC."""
    value = msg.value() or b""
    return (f"{topic}@{msg.offset()}:{msg.timestamp()[1]}:{zlib.crc32(value):08x}"
            f":{len(value)}").encode()


class ModelFollower:
    def __init__(self, kafka: KafkaSettings, topic: str, table: ModelTable, codec: Codec,
                 on_update: Callable[[ModelMetadata], None],
                 on_caught_up: Callable[[], None] = lambda: None,
                 on_bad_event: Callable[[int, str], None] = lambda offset, why: None,
                 on_withdrawn: Callable[[ModelKey], None] = lambda model: None) -> None:
        self._kafka, self._topic, self._table, self._codec = kafka, topic, table, codec
        self._on_update, self._on_caught_up, self._on_bad_event = (
            on_update, on_caught_up, on_bad_event)
        self._on_withdrawn = on_withdrawn
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
        # the broker answers a fetch at the topic's end after at most 100 ms (not the
        # default 500): the end is how a starting worker knows it has read every event
        reader = consumer(self._kafka, None, **{"fetch.wait.max.ms": 100})
        try:
            reader.assign([TopicPartition(self._topic, 0, self._resume_point(reader))])
            while not self._stop.is_set():
                msg = self._poll(reader)
                if msg is None:
                    continue
                err = msg.error()
                if err is None:
                    self._apply(msg)
                elif err.code() == KafkaError._PARTITION_EOF and not self.caught_up.is_set():
                    event(log, "model_follower.caught_up", topic=self._topic,
                          offset=self._table.offset())
                    self.caught_up.set()
                    self._on_caught_up()
        finally:
            reader.close()

    def _poll(self, reader: Consumer) -> Message | None:
        msg = reader.poll(_POLL_S)
        if msg is not None and (err := msg.error()) is not None and \
                err.code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART) \
                and not err.retriable():
            event(log, "model_follower.kafka_error", logging.WARNING, error=err.str())
        return msg

    def _resume_point(self, reader: Consumer) -> int:
        """After the stored offset if the event there is the one applied, else the start."""
        last = self._table.offset()
        if last is None:
            return OFFSET_BEGINNING
        reader.assign([TopicPartition(self._topic, 0, last)])
        found: bytes | None = None
        while not self._stop.is_set():
            msg = self._poll(reader)
            if msg is None:
                continue  # the broker may be away: nothing to decide on yet
            err = msg.error()
            if err is None:
                found = event_mark(self._topic, msg)
                break
            if err.code() == KafkaError._PARTITION_EOF:
                break  # the topic ends before the stored offset
        reader.unassign()
        if found is not None and found == self._table.mark():
            return last + 1
        event(log, "model_table.rebuild", logging.WARNING, topic=self._topic,
              stored_offset=last, reason="the event at the stored offset is gone or another "
              "(topic recreated, broker storage lost, or compacted): reading from the start")
        self._table.forget_offset()
        return OFFSET_BEGINNING

    def _apply(self, msg: Message) -> None:
        offset, key, value = msg.offset() or 0, msg.key(), msg.value()
        mark = event_mark(self._topic, msg)
        if value is None:
            self._tombstone(offset, key, mark)
            return
        try:
            self._codec.decode(key or b"", ModelKey)
            metadata = self._codec.decode(value, ModelMetadata)
        except DecodeError as exc:
            self._table.advance(offset, mark)
            self._bad(offset, f"undecodable: {exc}")
            return
        self._table.put(offset, metadata, mark)
        event(log, "model_event.applied", model=metadata.name, version=metadata.version,
              offset=offset, live=self.caught_up.is_set())
        if self.caught_up.is_set():  # before catch-up only the final state counts
            self._on_update(metadata)

    def _tombstone(self, offset: int, key: bytes | None, mark: bytes) -> None:
        """A keyed model's tombstone withdraws it (``edml models withdraw``); a fleet
        model is replaced, never withdrawn: its tombstone is refused, and it serves on."""
        try:
            model = self._codec.decode(key or b"", ModelKey)
        except DecodeError as exc:
            self._table.advance(offset, mark)
            self._bad(offset, f"a tombstone with an undecodable key: {exc}")
            return
        if model.key is None:
            self._table.advance(offset, mark)
            self._bad(offset, f"a null value (a tombstone) for the fleet model {model.name}: "
                      "a fleet model is replaced by publishing, never withdrawn")
            return
        self._table.withdraw(offset, model.name, model.key, mark)
        event(log, "model_event.withdrawn", model=model_label(model.name, model.key),
              offset=offset, live=self.caught_up.is_set())
        if self.caught_up.is_set():
            self._on_withdrawn(model)

    def _bad(self, offset: int, why: str) -> None:
        event(log, "model_event.rejected", logging.WARNING, topic=self._topic, offset=offset,
              reason=why)
        if self.caught_up.is_set():
            self._on_bad_event(offset, why)
