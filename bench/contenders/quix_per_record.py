"""Baseline (c): the same pipeline in Quix Streams, as a user would write it: a
StreamingDataFrame that decodes, scores and encodes each record, then ``to_topic``.

Quix Streams has no micro-batch step: buffering records in a stateful ``apply`` would
commit offsets before their outputs exist, so this scores one record per model call.

    python -m bench.contenders.quix_per_record BOOTSTRAP IN OUT MODEL_DIR N
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from quixstreams import Application

from edml.codec import Codec
from edml.savedmodel import load_savedmodel
from services.batch import score_batch


class _Message:
    def __init__(self, value: bytes, key: bytes | None, ctx: Any, timestamp_ms: int) -> None:
        self._value, self._key, self._ctx, self._ts = value, key, ctx, timestamp_ms

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return str(self._ctx.topic)

    def partition(self) -> int:
        return int(self._ctx.partition)

    def offset(self) -> int:
        return int(self._ctx.offset)

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)


def main(bootstrap: str, source: str, sink: str, model_path: str, n: int) -> None:
    from quixstreams import message_context

    app = Application(broker_address=bootstrap, consumer_group="bench-quix",
                      auto_offset_reset="earliest", auto_create_topics=False,
                      consumer_extra_config={"session.timeout.ms": 3000,
                                             "heartbeat.interval.ms": 500})
    model, codec = load_savedmodel(Path(model_path)), Codec()
    inbound = app.topic(source, key_deserializer="bytes", value_deserializer="bytes")
    outbound = app.topic(sink, key_serializer="bytes", value_serializer="bytes")
    seen = {"n": 0}

    def score(value: bytes, key: bytes, timestamp: int, headers: Any) -> bytes:
        message = _Message(value, key, message_context(), timestamp)
        result = score_batch([message], model, "bench", "v1", codec, int(time.time() * 1000))
        seen["n"] += 1
        if seen["n"] >= n:
            app.stop()
        return result.predictions[0].value

    sdf = app.dataframe(inbound)
    sdf = sdf.apply(score, metadata=True)
    sdf.to_topic(outbound)
    app.run()


if __name__ == "__main__":
    bootstrap, source, sink, model_path = sys.argv[1:5]
    main(bootstrap, source, sink, model_path, int(sys.argv[5]))
