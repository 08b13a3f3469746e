"""A plain confluent-kafka consume -> score -> produce loop: the same work as the scoring
service (``services.batch.score_batch`` on the same SavedModel), with no framework around
it: consume up to the worker's batch size, score them in one call, produce, flush,
commit. Runs until stopped.

    python -m bench.contenders.confluent_loop BOOTSTRAP IN OUT GROUP MODEL_DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.contenders.common import BATCH, BATCH_WAIT_S, kafka_settings, run_until_stopped
from edml.codec import Codec
from edml.kafka import OUTPUT_PRODUCER, consumer, producer
from edml.savedmodel import load_savedmodel
from services.batch import score_batch


def main(bootstrap: str, source: str, sink: str, group: str, model_path: str) -> None:
    kafka = kafka_settings(bootstrap)
    model, codec = load_savedmodel(Path(model_path)), Codec()
    reader = consumer(kafka, group, **{"enable.partition.eof": False,
                                       "fetch.wait.max.ms": max(1, int(BATCH_WAIT_S * 1000))})
    writer = producer(kafka, **OUTPUT_PRODUCER)
    reader.subscribe([source])

    def step() -> None:
        messages = [m for m in reader.consume(BATCH, BATCH_WAIT_S) if m.error() is None]
        if messages:
            result = score_batch(messages, model, "bench", "v1", codec,
                                 int(time.time() * 1000))
            for out in result.predictions:
                writer.produce(sink, key=out.key, value=out.value)
            writer.flush(30)
            reader.commit(asynchronous=True)

    run_until_stopped(step)
    reader.close()


if __name__ == "__main__":
    main(*sys.argv[1:6])
