"""Quix Streams at its best for this work: the records go to a ``BatchingSink``, which Quix
flushes at each checkpoint, before it commits their offsets (at-least-once); the sink
scores each flushed batch in one model call (``services.batch.score_batch``) and produces
the predictions, delivered before the flush returns. Runs until stopped. Runs in its own
venv (bench/requirements-quix.txt).

    python -m bench.contenders.quix_batching BOOTSTRAP IN OUT GROUP MODEL_DIR STATE_DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from quixstreams import Application
from quixstreams.sinks import BatchingSink, SinkBatch

from bench.contenders.common import BATCH, HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS
from edml.codec import Codec
from edml.kafka import OUTPUT_PRODUCER, flush_or_raise, producer
from edml.savedmodel import load_savedmodel
from edml.settings import KafkaSettings
from services.batch import score_batch

_CHECKPOINT_RECORDS = 4 * BATCH  # the worker's batch size a partition, of the four


class _Message:
    """A sink item, as the scoring code reads a message."""

    def __init__(self, item: Any, topic: str, partition: int) -> None:
        self._item, self._topic, self._partition = item, topic, partition

    def key(self) -> bytes | None:
        return self._item.key  # type: ignore[no-any-return]

    def value(self) -> bytes | None:
        return self._item.value  # type: ignore[no-any-return]

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._item.offset  # type: ignore[no-any-return]

    def timestamp(self) -> tuple[int, int]:
        return (1, self._item.timestamp)


class ScoringSink(BatchingSink):  # type: ignore[misc]
    def __init__(self, kafka: KafkaSettings, sink: str, model_path: str) -> None:
        super().__init__()
        self._model, self._codec = load_savedmodel(Path(model_path)), Codec()
        self._writer, self._sink = producer(kafka, **OUTPUT_PRODUCER), sink

    def write(self, batch: SinkBatch) -> None:
        messages = [_Message(item, batch.topic, batch.partition) for item in batch]
        result = score_batch(messages, self._model, "bench", "v1", self._codec,
                             int(time.time() * 1000))
        for out in result.predictions:
            self._writer.produce(self._sink, key=out.key, value=out.value)
        flush_or_raise(self._writer, 30)


def main(bootstrap: str, source: str, sink: str, group: str, model_path: str,
         state_dir: str) -> None:
    app = Application(broker_address=bootstrap, consumer_group=group,
                      auto_offset_reset="earliest", auto_create_topics=False,
                      commit_every=_CHECKPOINT_RECORDS, commit_interval=1.0,
                      state_dir=state_dir, consumer_extra_config={
                          "session.timeout.ms": SESSION_TIMEOUT_MS,
                          "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS})
    inbound = app.topic(source, key_deserializer="bytes", value_deserializer="bytes")
    app.dataframe(inbound).sink(ScoringSink(KafkaSettings(bootstrap=bootstrap), sink,
                                            model_path))
    app.run()


if __name__ == "__main__":
    main(*sys.argv[1:7])
