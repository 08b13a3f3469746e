"""The ceiling: consume -> produce the same bytes -> commit, with the scoring worker's own
client settings and batch size, and no work in between. Runs until stopped.

    python -m bench.contenders.passthrough BOOTSTRAP IN OUT GROUP
"""

from __future__ import annotations

import sys

from bench.contenders.common import BATCH, BATCH_WAIT_S, kafka_settings, run_until_stopped
from edml.kafka import OUTPUT_PRODUCER, consumer, producer


def main(bootstrap: str, source: str, sink: str, group: str) -> None:
    kafka = kafka_settings(bootstrap)
    reader = consumer(kafka, group, **{"enable.partition.eof": False,
                                       "fetch.wait.max.ms": max(1, int(BATCH_WAIT_S * 1000))})
    writer = producer(kafka, **OUTPUT_PRODUCER)
    reader.subscribe([source])

    def step() -> None:
        messages = [m for m in reader.consume(BATCH, BATCH_WAIT_S) if m.error() is None]
        if messages:
            for m in messages:
                writer.produce(sink, key=m.key(), value=m.value())
            writer.flush(30)
            reader.commit(asynchronous=True)

    run_until_stopped(step)
    reader.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
