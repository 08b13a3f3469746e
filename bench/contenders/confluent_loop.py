"""Baseline (a): a plain confluent-kafka consume -> score -> produce loop, the practical limit.

The same work as the scoring service (``services.batch.score_batch`` on the same
SavedModel), with no framework around it: consume up to 1,000, score them in one call,
produce, flush, commit.

    python -m bench.contenders.confluent_loop BOOTSTRAP IN OUT MODEL_DIR N
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edml.codec import Codec
from edml.kafka import consumer, producer
from edml.savedmodel import load_savedmodel
from edml.settings import KafkaSettings
from services.batch import score_batch


def main(bootstrap: str, source: str, sink: str, model_path: str, n: int) -> None:
    kafka = KafkaSettings(bootstrap=bootstrap, session_timeout_ms=3000,
                          heartbeat_interval_ms=500)
    model, codec = load_savedmodel(Path(model_path)), Codec()
    reader = consumer(kafka, "bench-confluent", **{"enable.partition.eof": False})
    writer = producer(kafka, **{"linger.ms": 1})
    reader.subscribe([source])
    done = 0
    while done < n:
        messages = [m for m in reader.consume(1000, 0.05) if m.error() is None]
        if not messages:
            continue
        result = score_batch(messages, model, "bench", "v1", codec, int(time.time() * 1000))
        for out in result.predictions:
            writer.produce(sink, key=out.key, value=out.value)
        writer.flush(30)
        reader.commit(asynchronous=True)
        done += len(messages)
    reader.close()


if __name__ == "__main__":
    bootstrap, source, sink, model_path = sys.argv[1:5]
    main(bootstrap, source, sink, model_path, int(sys.argv[5]))
